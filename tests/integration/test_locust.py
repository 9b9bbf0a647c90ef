"""A short headless Locust run of loadtests/locustfile.py against the session's API: no
request ends in a 5xx, every 202 it follows settles, it reconciles the books at the end
(they balance) and exits 0, and it writes its CSV and HTML report."""

import asyncio
import csv
import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN_S = 6


@pytest.mark.usefixtures("books")
async def test_a_short_headless_locust_run_finds_no_5xx_and_balanced_books(
    api_url: str, tenant_key: str, shard_dsns: list[str], tmp_path: Path
) -> None:
    """Eight users for a few seconds, a third of the transfer tasks as batches: the exit
    code is 0, the stats show transfers, fees and settle times and no 5xx, and the end of
    the run printed the books balanced."""
    env = {
        **os.environ,
        "LEDGERFLOW_API_KEY": tenant_key,
        "LEDGERFLOW_SHARD_DSNS": json.dumps(shard_dsns),
        "LOCUST_BATCH_SHARE": "0.3",
        "LOCUST_BATCH_SIZE": "5",
    }
    # A subprocess driven from this event loop, which also serves the session's API.
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "locust", "-f", str(ROOT / "loadtests" / "locustfile.py"),
        "--host", api_url, "--headless", "-u", "8", "-r", "8", "-t", f"{RUN_S}s",
        "--stop-timeout", "20", "--csv", str(tmp_path / "run"),
        "--html", str(tmp_path / "run.html"), "--only-summary",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
    )  # fmt: skip
    out_bytes, _ = await asyncio.wait_for(process.communicate(), timeout=180)
    out = out_bytes.decode()
    assert process.returncode == 0, out[-4000:]
    assert "books: balanced" in out, out[-4000:]
    with (tmp_path / "run_stats.csv").open() as stats_file:
        rows = {row["Name"]: row for row in csv.DictReader(stats_file)}
    assert int(rows["/v1/transfers"]["Request Count"]) > 0, rows
    assert int(rows["/v1/transfers"]["Failure Count"]) == 0, rows
    with (tmp_path / "run_failures.csv").open() as failures_file:
        failures = list(csv.DictReader(failures_file))
    assert not [f for f in failures if f["Error"].startswith("5")], failures
    if "settle cross-shard" in rows:
        assert int(rows["settle cross-shard"]["Failure Count"]) == 0, rows
    assert (tmp_path / "run.html").stat().st_size > 0
