"""`ledgerflow dev`: the whole system on one machine, from one command.

N embedded PostgreSQL shards, the Temporal dev server with its UI, one worker and the API,
all under one data directory that survives restarts. Ctrl-C or SIGTERM stops everything
this command started, in reverse order.
"""

import asyncio
import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from ledgerflow.composition import Wiring
from ledgerflow.devstack import (
    EmbeddedPostgres,
    PortInUseError,
    TemporalDevServer,
    port_in_use,
    postgres_bin_path,
    temporal_executable,
)
from ledgerflow.runtime import run_loop, tune_gc
from ledgerflow.serving import serve_api, stop_on_signals
from ledgerflow.settings import Settings
from ledgerflow.stackfile import StackInfo
from ledgerflow.temporal import SEARCH_ATTRIBUTE_TYPES
from shards.api_keys import ApiKeyCatalog
from shards.migrate import migrate_all

LAYOUT_FILE = "layout.json"
API_KEY_FILE = "api_key"
LOOPBACK = "127.0.0.1"
"""Where the shards and Temporal listen, whatever `--host` says: the embedded shards trust
every local connection and the dev server has no authentication, so only the API (which
checks API keys) may be exposed on other interfaces."""


@dataclass(frozen=True, slots=True)
class DevOptions:
    """What `ledgerflow dev` was asked for."""

    data_dir: Path
    shards: int
    host: str
    port: int
    pg_port_base: int
    temporal_port: int
    ui_port: int
    tracing: bool = False
    """Trace requests and sagas (`ledgerflow.tracing` installed an exporter)."""


class DevError(Exception):
    """The dev stack refuses to start; the message says why and what to do."""


def _check_layout(options: DevOptions) -> None:
    """A data directory keeps its shard count: re-sharding is a slot move, not a flag."""
    path = options.data_dir / LAYOUT_FILE
    if path.exists():
        stored = json.loads(path.read_text())["shards"]
        if stored != options.shards:
            raise DevError(
                f"{options.data_dir} holds {stored} shards, not {options.shards}; "
                f"use --shards {stored} or another --data-dir"
            )
    else:
        path.write_text(json.dumps({"shards": options.shards}) + "\n")


def _check_ports(options: DevOptions) -> None:
    wanted = [(options.host, options.port, "the API")]
    wanted += [
        (LOOPBACK, options.temporal_port, "Temporal gRPC"),
        (LOOPBACK, options.ui_port, "the Temporal UI"),
    ]
    wanted += [
        (LOOPBACK, options.pg_port_base + i, f"PostgreSQL shard {i}") for i in range(options.shards)
    ]
    for host, port, what in wanted:
        if port_in_use(host, port):
            raise PortInUseError(port, what)


def _api_key(data_dir: Path, settings: Settings) -> str:
    """The bootstrap key: `LEDGERFLOW_API_KEY` if set, else one kept in the data dir."""
    if settings.api_key:
        return settings.api_key
    path = data_dir / API_KEY_FILE
    if path.exists():
        return path.read_text().strip()
    secret = f"lf_sk_{secrets.token_urlsafe(32)}"
    path.write_text(secret + "\n")
    path.chmod(0o600)
    return secret


def dev_services(
    options: DevOptions, settings: Settings
) -> tuple[list[EmbeddedPostgres], TemporalDevServer]:
    """The shards and the Temporal dev server `ledgerflow dev` runs, all on loopback."""
    shards = [
        EmbeddedPostgres(
            options.data_dir / f"shard-{i}", port=options.pg_port_base + i, host=LOOPBACK
        )
        for i in range(options.shards)
    ]
    temporal = TemporalDevServer(
        db_file=options.data_dir / "temporal.db",
        port=options.temporal_port,
        ui_port=options.ui_port,
        host=LOOPBACK,
        namespace=settings.temporal_namespace,
        search_attributes=SEARCH_ATTRIBUTE_TYPES,
        log_file=options.data_dir / "temporal.log",
    )
    return shards, temporal


def run_dev(options: DevOptions, settings: Settings, console: Console) -> None:
    """Start everything, serve until a signal, then stop everything that was started.

    Raises:
        DevError, PortInUseError: the stack cannot start; nothing is left running.
    """
    options.data_dir.mkdir(parents=True, exist_ok=True)
    _check_layout(options)
    # The `local` extra: fail before starting anything when it is not installed.
    postgres_bin_path()
    temporal_executable()
    _check_ports(options)
    shards, temporal = dev_services(options, settings)
    started: list[EmbeddedPostgres | TemporalDevServer] = []
    try:
        with console.status("starting PostgreSQL shards and the Temporal dev server"):
            for shard in shards:
                shard.start()
                started.append(shard)
            temporal.start()
            started.append(temporal)
        run_loop(_serve(options, settings, console, [s.dsn for s in shards], temporal))
    finally:
        for service in reversed(started):
            service.stop()
        console.print("[bold]stopped[/bold] everything `ledgerflow dev` started")


async def _serve(
    options: DevOptions,
    settings: Settings,
    console: Console,
    dsns: list[str],
    temporal: TemporalDevServer,
) -> None:
    stop = asyncio.Event()
    stop_on_signals(stop)
    applied = await migrate_all(dsns)
    secret = _api_key(options.data_dir, settings)
    wiring = Wiring.from_settings(
        settings, shard_dsns=dsns, temporal_address=temporal.address, tracing=options.tracing
    )
    async with wiring.cluster() as cluster:
        await ApiKeyCatalog(cluster).create(tenant_id=settings.bootstrap_tenant, secret=secret)
        client = await wiring.temporal_client()
        api_url = f"http://{options.host}:{options.port}"
        StackInfo(shard_dsns=dsns, temporal_address=temporal.address, api_url=api_url).write(
            options.data_dir
        )
        worker = asyncio.create_task(wiring.run_worker(client=client, cluster=cluster, stop=stop))
        api = asyncio.create_task(
            serve_api(wiring.app(), host=options.host, port=options.port, stop=stop)
        )
        tune_gc()
        _banner(console, options, api_url, temporal, secret, applied, settings)
        done, _ = await asyncio.wait({worker, api}, return_when=asyncio.FIRST_COMPLETED)
        stop.set()
        await asyncio.gather(worker, api, return_exceptions=True)
        for task in done:
            task.result()


def _banner(
    console: Console,
    options: DevOptions,
    api_url: str,
    temporal: TemporalDevServer,
    secret: str,
    applied: dict[int, list[str]],
    settings: Settings,
) -> None:
    migrated = sum(len(names) for names in applied.values())
    key_source = "from LEDGERFLOW_API_KEY" if settings.api_key else f"kept in {options.data_dir}"
    console.print(
        f"[bold green]Ledgerflow is running[/bold green] with {options.shards} shards "
        f"({migrated} migrations applied)\n"
        f"  API          {api_url}\n"
        f"  OpenAPI docs {api_url}/docs\n"
        f"  Temporal UI  {temporal.ui_url}\n"
        f"  API key      {secret}  ({key_source}, tenant '{settings.bootstrap_tenant}')\n"
        f"  data         {options.data_dir.resolve()}\n"
        f"Try: curl -H 'Authorization: Bearer {secret}' {api_url}/v1/accounts\n"
        "Press Ctrl-C to stop."
    )
