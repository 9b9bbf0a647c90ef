"""The cross-shard benchmark (loadtests/bench_stack.py, then bench_cross_shard.py), short:
it must run end to end on its own stack, print its figures and find the books balanced."""

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STACK_READY_S = 120


def test_the_cross_shard_benchmark_runs_and_finds_the_books_balanced(tmp_path: Path) -> None:
    """A few seconds of load from 16 clients on a fresh two-shard stack, with a small
    one-workflow-per-transfer baseline: the script exits 0 (it exits 1 when reconciliation
    finds a problem), reports at least one and at most one saga per transfer, and finds
    nothing left in flight once the sagas caught up."""
    data_dir = tmp_path / "bench"
    stack_file = data_dir / "bench-stack.json"
    data_dir.mkdir()
    with (data_dir / "stack.log").open("wb") as log:
        stack = subprocess.Popen(
            [sys.executable, str(ROOT / "loadtests" / "bench_stack.py"), "--data-dir", data_dir],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + STACK_READY_S
            while not stack_file.exists():
                assert stack.poll() is None, (data_dir / "stack.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "the bench stack did not start"
                time.sleep(0.5)
            done = subprocess.run(
                [
                    sys.executable,
                    str(ROOT / "loadtests" / "bench_cross_shard.py"),
                    "--stack-file",
                    str(stack_file),
                    "--concurrency",
                    "16",
                    "--duration",
                    "4",
                    "--accounts-per-shard",
                    "4",
                    "--baseline-transfers",
                    "20",
                    "--baseline-concurrency",
                    "4",
                ],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
        finally:
            stack.send_signal(signal.SIGTERM)
            stack.wait(timeout=60)

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert out.startswith("stack: 2 shards, sagas of at most 60 transfers"), out
    answered = re.search(r"(\d+) transfers in [\d.]+s = [\d,]+ transfers/s", out)
    assert answered is not None, out
    assert int(answered[1]) > 0, out
    sagas = re.search(r"sagas: ([\d,]+) workflows settled them", out)
    assert sagas is not None, out
    assert 0 < int(sagas[1].replace(",", "")) <= int(answered[1]), out
    books = (
        r"books: balanced; [\d,]+ accounts and [\d,]+ entries on 2 shards; "
        r"in flight: reserved nothing, credited and not yet posted nothing"
    )
    assert re.search(books, out), out
    assert re.search(r"one workflow per transfer: [\d.]+ transfers/s", out), out
    assert re.search(r"CPU during the load .* api process \d+%", out), out
