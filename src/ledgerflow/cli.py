"""The `ledgerflow` command."""

import json
import re
import sys
from dataclasses import asdict, replace
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from api.app import ApiConfig, create_app
from ledger.errors import LedgerError
from ledger.limits import REPORT_STATEMENT_TIMEOUT_MS, STUCK_TRANSFERS_LIMIT_MAX
from ledger.money import format_minor
from ledgerflow.bench_command import bench
from ledgerflow.cli_support import (
    DataDir,
    JsonFlag,
    console,
    endpoints_for,
    errors,
    fail,
    print_json,
    print_table,
    run_async,
    settings_for,
    traced,
)
from ledgerflow.composition import Wiring, run_worker_process, serve_api_process
from ledgerflow.config import Endpoints
from ledgerflow.dev import DevError, DevOptions, run_dev
from ledgerflow.devstack import DevStackError, PortInUseError
from ledgerflow.keys_commands import keys_app
from ledgerflow.settings import Settings
from ledgerflow.temporal import (
    TemporalAuth,
    connect_temporal,
    exit_without_finalizing,
    register_search_attributes,
)
from shards.cluster import ShardCluster
from shards.followups import OpenFollowup, find_open_followups
from shards.migrate import migrate_all
from shards.reconcile import Report, reconcile
from shards.review import WaitingReview, find_waiting_reviews
from shards.transfers import TransferRecord, find_stuck_transfers

app = typer.Typer(
    help="Ledgerflow: a sharded double-entry ledger.", no_args_is_help=True, add_completion=False
)
transfers_app = typer.Typer(help="Transfers, for operators.", no_args_is_help=True)
temporal_app = typer.Typer(help="Temporal cluster set-up.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(transfers_app, name="transfers")
app.add_typer(temporal_app, name="temporal")


def _print_version(wanted: bool) -> None:
    if wanted:
        console.print(f"ledgerflow {installed_version('ledgerflow')}")
        raise typer.Exit


@app.callback()
def ledgerflow(
    _version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Ledgerflow: a sharded double-entry ledger."""


@app.command()
def dev(
    shards: Annotated[int, typer.Option(min=1, max=16, help="Embedded PostgreSQL shards.")] = 4,
    data_dir: Annotated[Path, typer.Option(help="Where all state lives.")] = Path(".ledgerflow"),
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="API port.")] = 8000,
    pg_port_base: Annotated[int, typer.Option(help="Shard i listens on this + i.")] = 54320,
    temporal_port: Annotated[int, typer.Option(help="Temporal gRPC port.")] = 7233,
    ui_port: Annotated[int, typer.Option(help="Temporal Web UI port.")] = 8233,
) -> None:
    """Run the whole system locally: shards, Temporal with its UI, a worker and the API."""
    settings = settings_for(data_dir)
    options = DevOptions(
        data_dir=data_dir,
        shards=shards,
        host=host,
        port=port,
        pg_port_base=pg_port_base,
        temporal_port=temporal_port,
        ui_port=ui_port,
    )
    try:
        with traced("ledgerflow-dev") as tracing:
            run_dev(replace(options, tracing=tracing), settings, console)
    except PortInUseError as error:
        raise fail(f"{error}; stop whatever uses it or choose another port") from None
    except (DevError, DevStackError) as error:
        raise fail(str(error)) from None


@app.command()
def api(data_dir: DataDir = None) -> None:
    """Serve the HTTP API against separately run shards and Temporal."""
    settings = settings_for(data_dir)
    found = endpoints_for(settings)
    with traced("ledgerflow-api") as tracing:
        wiring = _wiring(settings, found, tracing=tracing)
        run_async(serve_api_process(wiring, host=settings.host, port=settings.port))


@app.command()
def worker(data_dir: DataDir = None) -> None:
    """Run the settlement workflows and activities against a Temporal cluster."""
    settings = settings_for(data_dir)
    found = endpoints_for(settings)
    with traced("ledgerflow-worker") as tracing:
        wiring = _wiring(settings, found, tracing=tracing)
        run_async(
            run_worker_process(
                wiring,
                metrics_address=settings.worker_metrics_address,
                health_address=settings.worker_health_address,
            )
        )


def _wiring(settings: Settings, found: Endpoints, *, tracing: bool) -> Wiring:
    """The system `ledgerflow api` and `worker` run in: the settings, the services found,
    and Temporal's credentials (a certificate that cannot be read is a one-line error)."""
    try:
        auth = TemporalAuth.from_settings(settings)
    except LedgerError as error:
        raise fail(error.message) from None
    return Wiring.from_settings(
        settings,
        shard_dsns=found.shard_dsns,
        temporal_address=found.temporal_address,
        temporal_auth=auth,
        tracing=tracing,
    )


@app.command()
def migrate(data_dir: DataDir = None) -> None:
    """Apply pending schema migrations on every shard and store the shard map."""
    found = endpoints_for(settings_for(data_dir))
    applied = run_async(migrate_all(found.shard_dsns))
    for shard, names in applied.items():
        console.print(f"shard {shard}: {', '.join(names) if names else 'up to date'}")


@app.command()
def verify(
    as_json: JsonFlag = False,
    data_dir: DataDir = None,
    max_in_flight: Annotated[
        str,
        typer.Option(
            "--max-in-flight",
            help="Money in flight longer than this (a saga, a follow-up, a raise) is a"
            " finding: 30s, 10m, 2h.",
        ),
    ] = "10m",
) -> None:
    """Prove the books: every shard balances and the clearing accounts match what is in flight.

    Exits 1 naming each account that is off, and each transfer whose money has been in
    flight longer than --max-in-flight. With a shard down it checks the others, names the
    shards it could not reach and exits 3 (incomplete), unless it found a problem.
    """
    max_in_flight_s = _duration_s(max_in_flight)
    found = endpoints_for(settings_for(data_dir))

    async def main() -> Report:
        cluster = await ShardCluster.connect(
            found.shard_dsns,
            pool_size_max=2,
            statement_timeout_ms=REPORT_STATEMENT_TIMEOUT_MS,
            reachable_only=True,
        )
        try:
            report = await reconcile(cluster, max_in_flight_s=max_in_flight_s)
        finally:
            await cluster.close()
        if as_json:
            print_json(
                {
                    "ok": report.ok,
                    "complete": report.complete,
                    "shards": len(cluster.shards),
                    **asdict(report),
                }
            )
            return report
        for problem in report.problems:
            errors.print(f"[red]✗[/red] {escape(problem)}")
        _name_unreachable(report.unreachable)
        console.print(
            f"checked {report.accounts_checked} accounts and {report.entries_checked} entries "
            f"on {len(cluster.shards) - len(report.unreachable)} of {len(cluster.shards)}"
            f" shards; in flight: {report.in_flight_summary()}"
        )
        return report

    report = run_async(main())
    if not report.ok:
        raise fail("the books do not balance", code=1)
    if not report.complete:
        raise fail(
            "incomplete: not every shard could be checked (nor anything across shards)",
            code=INCOMPLETE,
        )
    if not as_json:
        console.print("[bold green]✓ the books balance[/bold green]")


INCOMPLETE = 3
"""The exit code of a report that could not read every shard (and found nothing wrong in
the others)."""


def _name_unreachable(unreachable: list[int]) -> None:
    for index in unreachable:
        errors.print(
            f"[yellow]![/yellow] shard {index} did not answer: what it holds is not in this report"
        )


_DURATION = re.compile(r"^(\d+)([smhd])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration_s(text: str) -> int:
    match = _DURATION.match(text)
    if match is None:
        raise typer.BadParameter("use a number and a unit: 30s, 5m, 2h, 1d")
    return int(match.group(1)) * _SECONDS[match.group(2)]


@transfers_app.command("stuck")
def transfers_stuck(
    older_than: Annotated[str, typer.Option(help="Age, e.g. 30s, 5m, 2h.")] = "5m",
    limit: Annotated[int, typer.Option(min=1, max=STUCK_TRANSFERS_LIMIT_MAX)] = 100,
    as_json: JsonFlag = False,
    data_dir: DataDir = None,
) -> None:
    """List money in flight for longer than a while: cross-shard transfers still
    processing, with their saga, and follow-ups of holds and delayed credits across shards
    that their destination has not applied, with its refusal. Exits 1 if there is any."""
    seconds = _duration_s(older_than)
    found = endpoints_for(settings_for(data_dir))

    async def main() -> tuple[list[TransferRecord], list[OpenFollowup], list[int]]:
        cluster = await ShardCluster.connect(
            found.shard_dsns,
            pool_size_max=1,
            statement_timeout_ms=REPORT_STATEMENT_TIMEOUT_MS,
            reachable_only=True,
        )
        try:
            return (
                await find_stuck_transfers(cluster, older_than_s=seconds, limit=limit),
                await find_open_followups(cluster, older_than_s=seconds, limit=limit),
                sorted(cluster.unreachable),
            )
        finally:
            await cluster.close()

    rows, followups, unreachable = run_async(main())
    # Found money in flight: 1; nothing found, but a shard was not read: 3 (incomplete).
    code = 1 if rows or followups else (INCOMPLETE if unreachable else 0)
    if as_json:
        print_json({"transfers": rows, "followups": followups, "unreachable": unreachable})
        raise typer.Exit(code)
    _name_unreachable(unreachable)
    if not rows and not followups:
        if unreachable:
            raise fail("incomplete: not every shard could be read", code=INCOMPLETE)
        console.print(f"✓ no money has been in flight for more than {older_than}")
        return
    if rows:
        print_table(
            f"transfers processing for more than {older_than}",
            ("transfer", "amount", "shards", "step", "workflow", "created"),
            (
                (
                    row.id,
                    format_minor(row.amount, row.currency),
                    f"{row.source_shard}→{row.destination_shard}",
                    row.saga_step or "",
                    row.workflow_id or "(not handed over)",
                    row.created_at.isoformat(timespec="seconds"),
                )
                for row in rows
            ),
        )
    if followups:
        print_table(
            f"follow-ups not applied for more than {older_than}",
            ("transfer", "owed", "amount", "shards", "recorded", "refusal"),
            (
                (
                    followup.transfer_id,
                    str(followup.movement),
                    format_minor(followup.amount, followup.currency),
                    f"{followup.source_shard}→{followup.destination_shard}",
                    followup.created_at.isoformat(timespec="seconds"),
                    escape(followup.refusal or "(not refused: is its shard down?)"),
                )
                for followup in followups
            ),
        )
    raise typer.Exit(1)


@transfers_app.command("review")
def transfers_review(
    limit: Annotated[int, typer.Option(min=1, max=STUCK_TRANSFERS_LIMIT_MAX)] = 100,
    as_json: JsonFlag = False,
    data_dir: DataDir = None,
) -> None:
    """List transfers waiting for review, oldest first, with their review workflow (in the
    Temporal UI: WorkflowType="ReviewTransfer" AND ExecutionStatus="Running")."""
    found = endpoints_for(settings_for(data_dir))

    async def main() -> list[WaitingReview]:
        cluster = await ShardCluster.connect(
            found.shard_dsns, pool_size_max=1, statement_timeout_ms=REPORT_STATEMENT_TIMEOUT_MS
        )
        try:
            return await find_waiting_reviews(cluster, limit=limit)
        finally:
            await cluster.close()

    rows = run_async(main())
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("✓ no transfer is waiting for review")
        return
    print_table(
        "transfers waiting for review",
        ("transfer", "tenant", "amount", "debit account", "workflow", "held since"),
        (
            (
                row.transfer_id,
                row.tenant_id,
                format_minor(row.amount, row.currency),
                row.debit_account_id,
                row.workflow_id or "(starting)",
                row.created_at.isoformat(timespec="seconds"),
            )
            for row in rows
        ),
    )


@temporal_app.command("register-search-attributes")
def temporal_register_search_attributes(data_dir: DataDir = None) -> None:
    """Register Ledgerflow's custom search attributes on a Temporal cluster (idempotent)."""
    settings = settings_for(data_dir)
    found = endpoints_for(settings)

    async def main() -> list[str]:
        client = await connect_temporal(
            found.temporal_address,
            settings.temporal_namespace,
            auth=TemporalAuth.from_settings(settings),
        )
        return await register_search_attributes(client, settings.temporal_namespace)

    added = run_async(main())
    console.print(f"registered: {', '.join(added) if added else 'all were already there'}")


@app.command()
def openapi(
    output: Annotated[
        Path | None, typer.Option(help="Write the document here instead of stdout.")
    ] = None,
) -> None:
    """Print the API's OpenAPI document (what /openapi.json serves), without any service."""
    document = json.dumps(create_app(ApiConfig(shard_dsns=[])).openapi(), indent=2) + "\n"
    if output is None:
        sys.stdout.write(document)
    else:
        output.write_text(document, encoding="utf-8")


app.command(name="bench")(bench)


def main() -> None:
    """The `ledgerflow` command (and `python -m ledgerflow`)."""
    try:
        app(prog_name="ledgerflow")
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    exit_without_finalizing(code)
