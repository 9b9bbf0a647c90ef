"""The benchmark harness (`ledgerflow bench`) against the session's API, on a tiny duration:
every row it reports is in the documented JSON shape, the transfers it counts are the ones
the API accepted, and the books it reconciles balance. Shape, not speed."""

import asyncio
import json
from pathlib import Path

import pytest

from ledgerflow.bench.harness import BenchPlan, run_bench
from ledgerflow.bench.load import LoadShape
from ledgerflow.bench.plot import write_png
from ledgerflow.bench.scenarios import Scenario
from ledgerflow.bench.stack import Target

ROW_KEYS = {
    "scenario", "shards", "available", "unavailable_reason", "transfers", "requests",
    "elapsed_s", "transfers_per_s", "ratio_to_pgbench", "latency_ms", "statuses", "errors",
    "timeline", "settle_s", "note",
}  # fmt: skip
LATENCY_KEYS = {"p50", "p95", "p99", "max", "mean", "count", "distribution"}


@pytest.mark.usefixtures("books")
async def test_the_bench_reports_every_scenario_beside_pgbench_in_the_documented_shape(
    api_url: str, tenant_key: str, shard_dsns: list[str], temporal_address: str, tmp_path: Path
) -> None:
    """A second per scenario from 4 clients, pgbench for a second, the per-transfer workflow
    baseline: the JSON has one row per scenario (and `hot-spread` beside `hot`), each with
    its latencies, timeline and ratio to pgbench; batches count items; the books balance
    (the bench's own check, and the session's `books` after it); the PNG is written."""
    plan = BenchPlan(
        scenarios=(
            Scenario.SINGLE,
            Scenario.BATCH,
            Scenario.CROSS,
            Scenario.HOT,
            Scenario.HOLD,
            Scenario.HOLD_CROSS,
        ),
        shape=LoadShape(duration_s=1.0, concurrency=4, batch_size=5),
        accounts_per_shard=2,
    )
    target = Target(
        url=api_url, api_key=tenant_key, temporal_address=temporal_address, shard_dsns=shard_dsns
    )
    # The harness runs its own event loops; the session's API serves from this one.
    report = await asyncio.to_thread(
        run_bench, plan, target=target, shard_counts=[], work_dir=tmp_path / "work"
    )
    report.write_json(tmp_path / "bench.json")
    write_png(report, tmp_path / "bench.png")

    document = json.loads((tmp_path / "bench.json").read_text())
    assert document["version"] == 1
    assert document["books_ok"] is True
    assert document["concurrency"] == 4
    assert document["machine"]["cpus"] >= 1
    pgbench = document["pgbench"]
    assert pgbench["tps"] > 0
    assert pgbench["clients"] == 4
    assert pgbench["server_version"].startswith("postgres (PostgreSQL)")
    (run,) = document["runs"]
    assert run["books"] == {**run["books"], "checked": True, "ok": True, "problems": []}
    rows = {row["scenario"]: row for row in run["scenarios"]}
    assert list(rows) == [
        "single",
        "batch",
        "cross",
        "hot",
        "hot-spread",
        "hold",
        "hold-cross",
        "temporal-per-transfer",
    ]
    for name, row in rows.items():
        assert set(row) == ROW_KEYS, name
        if not row["available"]:
            continue
        assert set(row["latency_ms"]) == LATENCY_KEYS, name
        assert row["transfers"] > 0, name
        assert row["transfers_per_s"] > 0, name
        ratio = row["transfers_per_s"] / pgbench["tps"]
        assert row["ratio_to_pgbench"] == pytest.approx(ratio, abs=0.001), name
        assert 0 < row["latency_ms"]["p50"] <= row["latency_ms"]["p95"] <= row["latency_ms"]["p99"]
        assert row["timeline"]["transfers_per_s"], name
    for name in ("single", "cross", "hot", "hot-spread", "hold", "hold-cross"):
        row = rows[name]
        assert row["available"], row
        assert set(row["statuses"]) <= {"201", "202"}, row
        assert row["errors"] == {}, row
        assert sum(row["statuses"].values()) == row["transfers"] == row["requests"]
    batch = rows["batch"]
    # The batch endpoint is served: transfers are items, five to a request.
    assert batch["available"], batch
    assert batch["errors"] == {}, batch
    assert batch["transfers"] == 5 * batch["requests"] > 0, batch
    # Rates are rounded to 0.1/s in the JSON, the ratio from the unrounded ones.
    hot_ratio = rows["hot"]["transfers_per_s"] / rows["hot-spread"]["transfers_per_s"]
    assert run["hot_ratio"] == pytest.approx(hot_ratio, abs=0.01)
    assert rows["temporal-per-transfer"]["transfers"] > 0
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
