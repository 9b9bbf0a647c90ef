"""The import-layering contract: ledger <- shards <- workflows <- api <- ledgerflow."""

import ast
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


_DATABASE_CALLS = frozenset(
    {
        "connection",
        "acquire",
        "transaction",
        "execute",
        "executemany",
        "fetch",
        "fetchrow",
        "fetchval",
        "fetchmany",
        "cursor",
        "prepare",
        "copy_records_to_table",
        "copy_to_table",
        "copy_from_query",
        "copy_from_table",
    }
)


def test_workflows_run_no_sql() -> None:
    """Every statement runs in `shards`: no module under src/workflows draws a connection
    or calls one (import-linter keeps it from naming one; this keeps it from using one it
    was handed)."""

    root = Path(__file__).resolve().parents[2] / "src" / "workflows"
    calls = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in _DATABASE_CALLS
            ):
                calls.append(f"{path.relative_to(root)}:{node.lineno} .{node.func.attr}()")
    assert len(list(root.rglob("*.py"))) > 10, "the scan found the workflows package"
    assert calls == [], calls


_STATEMENT_CALLS = _DATABASE_CALLS - {"connection", "acquire", "transaction"}


def test_the_api_runs_no_sql() -> None:
    """The API draws connections (so one request's reads share one) but runs no statement
    on them: it hands them to `shards`, where every statement is."""
    root = Path(__file__).resolve().parents[2] / "src" / "api"
    calls = [
        f"{path.relative_to(root)}:{node.lineno} .{node.func.attr}()"
        for path in sorted(root.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in _STATEMENT_CALLS
    ]
    assert len(list(root.rglob("*.py"))) > 10, "the scan found the api package"
    assert calls == [], calls
