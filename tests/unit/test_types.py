"""Type checks are part of the test command: mypy, strict for ledger, the default elsewhere."""

import shutil
import subprocess
from pathlib import Path


def test_mypy_finds_no_type_errors() -> None:
    """`mypy` over src (configured in pyproject.toml) reports nothing."""
    root = Path(__file__).resolve().parents[2]
    executable = shutil.which("mypy")
    assert executable, "mypy is a dev dependency"
    result = subprocess.run(
        [executable, "--config-file", str(root / "pyproject.toml")],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout, result.stdout
