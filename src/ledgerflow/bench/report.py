"""The bench's outputs: one table on the terminal, a JSON document and a PNG.

The JSON shape (version 1), documented in docs/performance.md:

    {"version": 1, "started_at": ISO 8601, "duration_s", "concurrency", "batch_size",
     "machine": {"cpus", "memory_gib"},
     "pgbench": {"tps", "latency_average_ms", "transactions", "failed", "clients", "threads",
                 "scale", "duration_s", "server_version"} | null,
     "runs": [{"shards": N | null, "url", "scenarios": [ROW, ...],
               "hot_ratio": float | null,
               "books": {"checked", "ok", "accounts_checked", "entries_checked",
                         "in_flight", "problems"}}],
     "books_ok": bool}

with each ROW as `ScenarioResult.to_json` writes it: scenario, shards, available,
unavailable_reason, transfers, requests, elapsed_s, transfers_per_s, ratio_to_pgbench,
latency_ms {p50, p95, p99, max, mean, count, distribution [[percentile, ms], ...]},
statuses {"201": n, ...}, errors {code: n}, timeline {bucket_s, transfers_per_s [...]},
settle_s, note.
"""

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ledgerflow.bench.load import HOT_SPREAD
from ledgerflow.bench.measure import ScenarioResult, error_summary
from ledgerflow.bench.pgbench import PgbenchResult
from ledgerflow.bench.scenarios import Scenario

REPORT_VERSION = 1
TABLE_WIDTH = 160


@dataclass(slots=True)
class Books:
    """What the reconciliation at the end of a run found."""

    checked: bool
    ok: bool = True
    accounts_checked: int = 0
    entries_checked: int = 0
    in_flight: str = ""
    problems: list[str] = field(default_factory=list)


@dataclass(slots=True)
class RunReport:
    """The scenarios of one stack and its books."""

    shards: int | None
    url: str
    scenarios: list[ScenarioResult] = field(default_factory=list)
    books: Books = field(default_factory=lambda: Books(checked=False))

    @property
    def hot_ratio(self) -> float | None:
        """`hot` transfers/s over `hot-spread` transfers/s, when both ran."""
        rates = {r.scenario: r.transfers_per_s for r in self.scenarios}
        spread = rates.get(HOT_SPREAD)
        return rates[Scenario.HOT] / spread if spread and Scenario.HOT in rates else None


@dataclass(slots=True)
class BenchReport:
    """Everything one `ledgerflow bench` measured."""

    started_at: datetime
    duration_s: float
    concurrency: int
    batch_size: int
    machine: dict[str, Any]
    pgbench: PgbenchResult | None = None
    pgbench_error: str | None = None
    runs: list[RunReport] = field(default_factory=list)

    @property
    def books_ok(self) -> bool:
        """Every checked run's books balance."""
        return all(run.books.ok for run in self.runs)

    def to_json(self) -> dict[str, Any]:
        """The documented JSON shape."""
        tps = self.pgbench.tps if self.pgbench else None
        return {
            "version": REPORT_VERSION,
            "started_at": self.started_at.isoformat(),
            "duration_s": self.duration_s,
            "concurrency": self.concurrency,
            "batch_size": self.batch_size,
            "machine": self.machine,
            "pgbench": self.pgbench.to_json() if self.pgbench else None,
            "pgbench_error": self.pgbench_error,
            "runs": [
                {
                    "shards": run.shards,
                    "url": run.url,
                    "scenarios": [r.to_json(pgbench_tps=tps) for r in run.scenarios],
                    "hot_ratio": None if run.hot_ratio is None else round(run.hot_ratio, 3),
                    "books": {
                        "checked": run.books.checked,
                        "ok": run.books.ok,
                        "accounts_checked": run.books.accounts_checked,
                        "entries_checked": run.books.entries_checked,
                        "in_flight": run.books.in_flight,
                        "problems": run.books.problems,
                    },
                }
                for run in self.runs
            ],
            "books_ok": self.books_ok,
        }

    def write_json(self, path: Path) -> None:
        """Write `to_json()` to `path`."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")


def _ms(value: float) -> str:
    return f"{value:,.1f}"


def _row(result: ScenarioResult, pgbench_tps: float | None, hot_ratio: float | None) -> list[str]:
    shards = "-" if result.shards is None else str(result.shards)
    if result.unavailable is not None:
        return [result.scenario, shards, "-", "-", "-", "-", result.unavailable, "-"]
    rate = result.transfers_per_s
    ratio = f"{rate / pgbench_tps:.2f}×" if pgbench_tps else "-"
    errors = error_summary(result.errors)
    if result.scenario == Scenario.HOT and hot_ratio is not None:
        errors += f" ({hot_ratio:.2f}× of {HOT_SPREAD})"
    return [
        result.scenario,
        shards,
        f"{rate:,.0f}",
        _ms(result.percentile_ms(50)),
        _ms(result.percentile_ms(95)),
        _ms(result.percentile_ms(99)),
        errors,
        ratio,
    ]


def print_table(report: BenchReport, console: Console) -> None:
    """The one table: every scenario of every run, the pgbench limit and the books."""
    table = Table(
        title=f"ledgerflow bench: {report.duration_s:g} s per scenario, "
        f"{report.concurrency} clients"
    )
    for column in ("scenario", "shards", "transfers/s", "p50 ms", "p95 ms", "p99 ms"):
        table.add_column(column, justify="left" if column == "scenario" else "right")
    table.add_column("errors by code")
    table.add_column("× pgbench", justify="right")
    tps = report.pgbench.tps if report.pgbench else None
    for run in report.runs:
        for result in run.scenarios:
            table.add_row(*_row(result, tps, run.hot_ratio))
    if report.pgbench is not None:
        pg = report.pgbench
        table.add_row(
            "pgbench TPC-B",
            "-",
            f"{pg.tps:,.0f}",
            f"avg {pg.latency_average_ms:,.1f}",
            "-",
            "-",
            f"failed ×{pg.failed}" if pg.failed else "-",
            "1.00×",
        )
    elif report.pgbench_error:
        table.add_row("pgbench TPC-B", "-", "-", "-", "-", "-", report.pgbench_error, "-")
    # Off a terminal rich assumes 80 columns and would fold every cell; a log is wide.
    out = console if console.is_terminal else Console(file=console.file, width=TABLE_WIDTH)
    out.print(table)
    for run in report.runs:
        where = f"{run.shards} shard{'' if run.shards == 1 else 's'}" if run.shards else run.url
        if not run.books.checked:
            out.print(f"books ({where}): not checked (no shard DSNs; give --shard-dsns)")
            continue
        for problem in run.books.problems:
            out.print(f"[red]✗[/red] books ({where}): {problem}", markup=True)
        verdict = "[green]balanced[/green]" if run.books.ok else "[red]NOT BALANCED[/red]"
        out.print(
            f"books ({where}): {verdict}; {run.books.accounts_checked:,} accounts and "
            f"{run.books.entries_checked:,} entries; in flight: {run.books.in_flight}"
        )
