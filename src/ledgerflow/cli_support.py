"""What every `ledgerflow` command shares: the consoles, the settings, one-line errors."""

import dataclasses
import json
import sys
from collections.abc import Coroutine, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ledger.errors import LedgerError
from ledgerflow.config import ConfigError, Endpoints, endpoints
from ledgerflow.logs import configure_logging
from ledgerflow.runtime import run_loop
from ledgerflow.settings import Settings
from ledgerflow.tracing import check_tracing_environment, process_tracing
from shards.cluster import SHARD_FAILURES, ShardMapError
from shards.db import DatabaseError

T = TypeVar("T")

console = Console(soft_wrap=True)
errors = Console(stderr=True)

JsonFlag = Annotated[
    bool, typer.Option("--json", help="Print JSON on stdout instead of a table, for scripts.")
]


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """A titled table on the console, one row per item; cells are printed as given (escape
    any that a caller controls)."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        assert len(row) == len(columns)
        table.add_row(*row)
    console.print(table)


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def print_json(value: object) -> None:
    """Write `value` as JSON on stdout (dataclasses as objects, datetimes in ISO 8601),
    bypassing rich, whose wrapping and markup would corrupt it."""
    sys.stdout.write(json.dumps(value, default=_json_default, indent=2) + "\n")


DataDir = Annotated[
    Path | None,
    typer.Option(help="State directory of the dev stack (default ./.ledgerflow)."),
]


def settings_for(data_dir: Path | None = None) -> Settings:
    """The settings from the environment, with the data directory given on the command line."""
    try:
        settings = Settings()
    except (ValidationError, SettingsError) as error:
        raise fail(f"bad LEDGERFLOW_* setting: {error}") from None
    if data_dir is not None:
        settings = settings.model_copy(update={"data_dir": data_dir})
    configure_logging(level=settings.log_level, json_lines=settings.env == "production")
    return settings


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print `error: message` (literally, no markup) and return the exit to raise."""
    errors.print(f"[bold red]error:[/bold red] {escape(message)}")
    return typer.Exit(code)


# Any database error ends the command with one line; its cause is in the message.
_SHARD_ERRORS: tuple[type[Exception], ...] = (*SHARD_FAILURES, DatabaseError)


def run_async(body: Coroutine[Any, Any, T]) -> T:
    """Run a command's async body; a shard or Temporal that cannot be reached, or fails
    midway, is a one-line error and exit code 2, not a traceback."""
    try:
        return run_loop(body)
    except LedgerError as error:
        raise fail(error.message) from None
    except ShardMapError as error:
        raise fail(str(error)) from None
    except _SHARD_ERRORS as error:
        raise fail(f"a shard failed: {error}") from None


def endpoints_for(settings: Settings) -> Endpoints:
    """Where the shards and Temporal are: the settings, or the running dev stack."""
    try:
        return endpoints(settings)
    except ConfigError as error:
        raise fail(str(error)) from None


@contextmanager
def traced(service_name: str) -> Iterator[bool]:
    """`ledgerflow.tracing.process_tracing` for a command: yields whether spans are exported;
    an unsupported OTLP setting is a one-line error."""
    try:
        check_tracing_environment()
    except LedgerError as error:
        raise fail(error.message) from None
    with process_tracing(service_name) as tracing:
        yield tracing
