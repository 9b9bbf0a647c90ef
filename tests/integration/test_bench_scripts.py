"""`ledgerflow bench` as a user runs it, on a stack it starts itself: it prints the table,
writes the JSON and the PNG, and exits 0 because the books balance."""

import json
import subprocess
import sys
from pathlib import Path

ARGUMENTS = (
    "--shards 1 --scenarios single,cross --duration 1 --concurrency 4 --accounts-per-shard 2 "
    "--no-pgbench --no-baseline"
)


def test_the_bench_command_starts_its_own_stack_and_finds_the_books_balanced(
    tmp_path: Path,
) -> None:
    """One shard, one second of single-shard load and of the cross-shard scenario it cannot
    run there: the table names both rows, the cross row says why it did not run, the JSON
    and the PNG exist, and the work directory is the fresh one it was given."""
    work = tmp_path / "work"
    paths = ["--work-dir", str(work), "--json-out", str(tmp_path / "bench.json")]
    paths += ["--png-out", str(tmp_path / "bench.png")]
    done = subprocess.run(
        [sys.executable, "-m", "ledgerflow", "bench", *ARGUMENTS.split(), *paths],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "ledgerflow bench: 1 s per scenario, 4 clients" in done.stdout, done.stdout
    assert "needs at least 2 shards" in done.stdout, done.stdout
    assert "books (1 shard): balanced" in done.stdout, done.stdout
    document = json.loads((tmp_path / "bench.json").read_text())
    (run,) = document["runs"]
    assert run["shards"] == 1
    single, cross = run["scenarios"]
    assert single["scenario"] == "single"
    assert single["transfers"] > 0
    assert cross["available"] is False
    assert document["pgbench"] is None
    assert (tmp_path / "bench.png").stat().st_size > 0
    assert (work / "shards-1" / "shard-0" / "PG_VERSION").exists()
