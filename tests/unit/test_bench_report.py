"""The bench's report from measured rows, without services: rates per whole second, the
table's rows (unavailable ones included), the JSON's ratio to pgbench, and a PNG with the
throughput-against-shards panel when several shard counts ran."""

import io
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console

from ledgerflow.bench.measure import Outcome, ScenarioResult
from ledgerflow.bench.pgbench import PgbenchResult
from ledgerflow.bench.plot import write_png
from ledgerflow.bench.report import BenchReport, Books, RunReport, print_table

PGBENCH = PgbenchResult(
    tps=1000.0, latency_average_ms=4.0, transactions=2000, failed=0, clients=4, threads=2,
    scale=4, duration_s=2.0, server_version="postgres (PostgreSQL) 18.6",
)  # fmt: skip


def _row(scenario: str, shards: int, *, per_second: int, elapsed_s: float) -> ScenarioResult:
    result = ScenarioResult(scenario=scenario, shards=shards)
    accepted = Outcome(transfers=1, statuses=Counter({201: 1}), errors=Counter())
    for tick in range(int(elapsed_s * per_second)):
        result.record(at_s=tick / per_second, latency_s=0.010, outcome=accepted)
    result.record(
        at_s=0.5,
        latency_s=0.2,
        outcome=Outcome(0, Counter({402: 1}), Counter({"insufficient_funds": 1})),
    )
    result.elapsed_s = elapsed_s
    return result


def _report() -> BenchReport:
    report = BenchReport(
        started_at=datetime.now(UTC), duration_s=2.0, concurrency=4, batch_size=5,
        machine={"cpus": 2, "memory_gib": 24.0}, pgbench=PGBENCH,
    )  # fmt: skip
    for shards in (1, 2):
        run = RunReport(shards=shards, url="http://127.0.0.1:1", books=Books(checked=True))
        run.scenarios.append(_row("single", shards, per_second=100 * shards, elapsed_s=2.4))
        batch = ScenarioResult(scenario="batch", shards=shards)
        batch.unavailable = "endpoint_unavailable (HTTP 405)"
        run.scenarios.append(batch)
        report.runs.append(run)
    return report


def test_rates_cover_whole_seconds_and_the_tail_still_counts() -> None:
    row = _row("single", 1, per_second=100, elapsed_s=2.4)
    assert row.rates() == [100.0, 100.0]
    assert row.transfers == 240
    assert row.errors == Counter({"insufficient_funds": 1})
    assert 10.0 <= row.percentile_ms(50) <= row.percentile_ms(99) <= 200.5


def test_the_json_gives_each_row_its_ratio_to_pgbench_and_the_table_names_every_row(
    tmp_path: Path,
) -> None:
    report = _report()
    document = report.to_json()
    single = document["runs"][1]["scenarios"][0]
    assert single["ratio_to_pgbench"] == pytest.approx(single["transfers_per_s"] / 1000.0, abs=1e-3)
    assert single["errors"] == {"insufficient_funds": 1}
    assert document["runs"][0]["scenarios"][1]["available"] is False
    assert document["books_ok"] is True
    out = io.StringIO()
    print_table(report, Console(file=out, width=160))
    table = out.getvalue()
    assert "endpoint_unavailable (HTTP 405)" in table
    assert "pgbench TPC-B" in table
    assert "insufficient_funds ×1" in table
    assert "books (1 shard): balanced" in table
    write_png(report, tmp_path / "bench.png")
    assert (tmp_path / "bench.png").read_bytes()[:4] == b"\x89PNG"
