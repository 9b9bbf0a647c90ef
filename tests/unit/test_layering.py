"""The import-layering contract: ledger <- shards <- workflows <- api <- ledgerflow."""

import shutil
import subprocess
from pathlib import Path


def test_import_contracts_hold() -> None:
    """`lint-imports` keeps every layer from importing the ones above it."""
    root = Path(__file__).resolve().parents[2]
    executable = shutil.which("lint-imports")
    assert executable, "import-linter is a dev dependency"
    result = subprocess.run(
        [executable, "--config", str(root / "pyproject.toml")],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
