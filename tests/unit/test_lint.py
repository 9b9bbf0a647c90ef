"""Lint and format are part of the test command, so CI checks them on every run."""

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECKED = ["src", "tests", "loadtests"]


def _ruff(*args: str) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("ruff")
    assert executable, "ruff is a dev dependency"
    return subprocess.run(
        [executable, *args, *CHECKED], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_ruff_check_is_clean() -> None:
    """`ruff check` finds nothing."""
    result = _ruff("check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    """Every file is formatted."""
    result = _ruff("format", "--check")
    assert result.returncode == 0, result.stdout + result.stderr
