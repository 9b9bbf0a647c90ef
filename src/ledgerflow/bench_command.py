"""The `ledgerflow bench` command: parses the options, runs `ledgerflow.bench.harness`, and
prints the table. Its heavy imports (aiohttp, hdrhistogram, matplotlib: the `bench` extra)
happen when it runs, so the image's CLI starts without them."""

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ledgerflow.bench.scenarios import DEFAULT_SCENARIOS, Scenario
from ledgerflow.cli_support import DataDir, console, fail, settings_for
from ledgerflow.config import ConfigError, endpoints
from ledgerflow.dev import API_KEY_FILE
from ledgerflow.devstack import DevStackError
from ledgerflow.logs import configure_logging

if TYPE_CHECKING:
    from ledgerflow.bench.stack import Target

SHARD_COUNT_MAX = 16


def _scenarios(text: str) -> tuple[Scenario, ...]:
    if text == "all":
        return tuple(Scenario)
    try:
        return tuple(Scenario(name.strip()) for name in text.split(",") if name.strip())
    except ValueError:
        choices = ", ".join(s.value for s in Scenario)
        message = f"choose from {choices}, or all"
        raise typer.BadParameter(message, param_hint="--scenarios") from None


def _shard_counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise typer.BadParameter(
            "a comma-separated list of shard counts, e.g. 1,2,4", param_hint="--shards"
        ) from None
    if not counts or not all(1 <= n <= SHARD_COUNT_MAX for n in counts):
        raise typer.BadParameter(
            f"each shard count between 1 and {SHARD_COUNT_MAX}", param_hint="--shards"
        )
    return counts


def bench(
    scenarios: Annotated[
        str,
        typer.Option(help=f"Comma-separated: {', '.join(Scenario)}; or all."),
    ] = ",".join(DEFAULT_SCENARIOS),
    duration: Annotated[
        float, typer.Option(min=0.5, max=3600, help="Seconds per scenario.")
    ] = 10.0,
    concurrency: Annotated[int, typer.Option(min=1, max=1000, help="Concurrent clients.")] = 64,
    batch_size: Annotated[int, typer.Option(min=1, max=1000, help="Items per batch.")] = 100,
    accounts_per_shard: Annotated[int, typer.Option(min=2, max=1000)] = 16,
    shards: Annotated[
        str, typer.Option(help="Shard counts of the stacks it starts, e.g. 1,2,4.")
    ] = "2",
    url: Annotated[str | None, typer.Option(help="A running stack's API URL.")] = None,
    api_key: Annotated[str | None, typer.Option(envvar="LEDGERFLOW_API_KEY")] = None,
    temporal_address: Annotated[
        str | None, typer.Option(help="The running stack's Temporal, for the baseline.")
    ] = None,
    shard_dsns: Annotated[
        str | None, typer.Option(help="The running stack's shard DSNs, comma-separated.")
    ] = None,
    json_out: Annotated[Path | None, typer.Option(help="Write the JSON report here.")] = None,
    png_out: Annotated[Path | None, typer.Option(help="Write the PNG here.")] = None,
    work_dir: Annotated[
        Path | None, typer.Option(help="Fresh directory for the stacks (default: a temporary one).")
    ] = None,
    pgbench: Annotated[bool, typer.Option(help="Measure pgbench TPC-B.")] = True,
    baseline: Annotated[bool, typer.Option(help="Measure one workflow per transfer.")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Drive every scenario through the HTTP API for a fixed duration and print one table:
    transfers/s, p50/p95/p99, errors by code and the ratio to pgbench TPC-B on a scratch
    PostgreSQL of the same build. Without --url it starts its own stack per --shards count.
    Exits 1 when the books do not balance afterwards.

    Needs the `bench` extra (`pip install 'ledgerflow[bench]'`); the image leaves it out.
    """
    chosen = _scenarios(scenarios)
    counts = _shard_counts(shards)
    try:
        from ledgerflow.bench import harness  # noqa: PLC0415 - the bench extra
        from ledgerflow.bench.accounts import BenchSetupError  # noqa: PLC0415 - the bench extra
        from ledgerflow.bench.load import LoadShape  # noqa: PLC0415 - the bench extra
        from ledgerflow.bench.report import print_table  # noqa: PLC0415 - the bench extra
    except ImportError as error:
        raise fail(
            f"`ledgerflow bench` needs the bench extra: pip install 'ledgerflow[bench]' ({error})"
        ) from None
    plan = harness.BenchPlan(
        scenarios=chosen,
        shape=LoadShape(duration_s=duration, concurrency=concurrency, batch_size=batch_size),
        accounts_per_shard=accounts_per_shard,
        baseline=baseline,
        pgbench=pgbench,
    )
    target = None
    if url is not None:
        target = _running_target(url, api_key, temporal_address, shard_dsns, data_dir=data_dir)
    if work_dir is not None and work_dir.exists() and any(work_dir.iterdir()):
        raise fail(f"{work_dir} is not empty; the bench starts on a fresh directory")
    # The stacks' start-up and shutdown lines would bury the table.
    configure_logging(level="warning")
    scratch = work_dir or Path(tempfile.mkdtemp(prefix="ledgerflow-bench-"))
    shown = not quiet and sys.stdout.isatty() and not os.environ.get("CI")
    try:
        with harness.live_progress(duration, enabled=shown, console=console) as progress_for:
            report = harness.run_bench(
                plan,
                target=target,
                shard_counts=counts,
                work_dir=scratch,
                progress_for=progress_for,
            )
    except (OSError, RuntimeError, DevStackError, BenchSetupError) as error:
        raise fail(f"the bench failed: {error}") from None
    finally:
        if work_dir is None:
            shutil.rmtree(scratch, ignore_errors=True)
    print_table(report, console)
    if json_out is not None:
        report.write_json(json_out)
    if png_out is not None:
        from ledgerflow.bench.plot import write_png  # noqa: PLC0415 - matplotlib, when asked

        write_png(report, png_out)
    if not report.books_ok:
        raise fail("the books do not balance", code=1)


def _running_target(
    url: str,
    api_key: str | None,
    temporal_address: str | None,
    shard_dsns: str | None,
    *,
    data_dir: Path | None,
) -> "Target":
    """The stack at `url`; what is not given comes from the settings or the dev stack."""
    from ledgerflow.bench.stack import Target as RunningStack  # noqa: PLC0415 - the bench extra

    settings = settings_for(data_dir)
    key_file = settings.data_dir / API_KEY_FILE
    api_key = api_key or (key_file.read_text().strip() if key_file.exists() else None)
    if not api_key:
        raise fail("give --api-key (or LEDGERFLOW_API_KEY) with --url")
    dsns = [d for d in (shard_dsns or "").split(",") if d]
    if not dsns or temporal_address is None:
        try:
            found = endpoints(settings)
            dsns = dsns or found.shard_dsns
            temporal_address = temporal_address or found.temporal_address
        except ConfigError:
            pass
    return RunningStack(
        url=url, api_key=api_key, temporal_address=temporal_address, shard_dsns=dsns
    )
