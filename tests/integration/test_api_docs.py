"""The API reference renders in a real browser with no internet: headless Chromium loads
/docs (Swagger UI) and /redoc from the test API server while every other host name fails
to resolve, and the rendered page lists the operations.

Chromium comes from the system (Debian's `chromium` package). When it is missing and the
suite runs as root with apt-get (as CI does), the test session installs it, bounded in time;
otherwise, or when that fails, the tests are skipped with the reason.
"""

import asyncio
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

_BROWSERS = ("chromium", "chromium-browser", "google-chrome")
_INSTALL_TIMEOUT_S = 420
"""apt-get update and install together (about a minute on CI's machines)."""
_RENDER_TIMEOUT_S = 120
_TEST_TIMEOUT_S = _INSTALL_TIMEOUT_S + 2 * _RENDER_TIMEOUT_S
"""pytest-timeout counts the fixture's install against the first test that needs it."""


def _find_browser() -> str | None:
    return next((path for name in _BROWSERS if (path := shutil.which(name))), None)


def _install_chromium() -> str:
    """Install Debian's chromium with apt-get; returns why not, or '' when done."""
    if os.environ.get("LEDGERFLOW_TEST_INSTALL_CHROMIUM", "1") == "0":
        return "LEDGERFLOW_TEST_INSTALL_CHROMIUM=0"
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return "installing it needs root and apt-get (apt-get install -y chromium)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    deadline = time.monotonic() + _INSTALL_TIMEOUT_S
    try:
        for command in (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "chromium"],
        ):
            remaining_s = max(1.0, deadline - time.monotonic())
            subprocess.run(command, check=True, capture_output=True, env=env, timeout=remaining_s)
    except (OSError, subprocess.SubprocessError) as error:
        return f"apt-get install chromium failed: {error}"
    return ""


@pytest.fixture(scope="session")
def browser() -> str:
    """The path of a headless-capable Chromium, installed when possible."""
    found = _find_browser()
    if found is None:
        why_not = _install_chromium()
        found = _find_browser()
        if found is None:
            pytest.skip(f"Chromium is not installed and could not be: {why_not}")
    return found


async def render(browser: str, url: str, profile: Path) -> str:
    """The DOM of `url` after the page's scripts ran, with only loopback reachable."""
    process = await asyncio.create_subprocess_exec(
        browser,
        "--headless",
        "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        f"--user-data-dir={profile}",
        # Offline: any host but the test server's fails to resolve, CDNs included.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--virtual-time-budget=20000",
        "--dump-dom",
        url,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=_RENDER_TIMEOUT_S)
    assert process.returncode == 0, err.decode(errors="replace")[-3000:]
    return out.decode(errors="replace")


async def test_the_pages_load_nothing_from_elsewhere(api_url: str) -> None:
    """/docs and /redoc name no URL outside this server, and their assets are served."""
    async with httpx.AsyncClient(base_url=api_url) as client:
        for page in ("/docs", "/redoc"):
            html = (await client.get(page)).text
            assert not re.search(r"https?://", html), html
            for asset in re.findall(r"""(?:src|href)=['"](/docs/assets/[^'"]+)['"]""", html):
                response = await client.get(asset)
                assert response.status_code == 200, asset
                assert len(response.content) > 1000, asset


@pytest.mark.timeout(_TEST_TIMEOUT_S)
async def test_swagger_ui_renders_every_operation_offline(
    browser: str, api_url: str, tmp_path: Path
) -> None:
    """Swagger UI draws an operation block for each documented operation, and offers the
    Authorize button for the Bearer scheme."""
    async with httpx.AsyncClient(base_url=api_url) as client:
        spec = (await client.get("/openapi.json")).json()
    dom = await render(browser, f"{api_url}/docs", tmp_path / "profile")
    assert "opblock" in dom, dom[-3000:]
    for operations in spec["paths"].values():
        for operation in operations.values():
            block_id = f"operations-{operation['tags'][0]}-{operation['operationId']}"
            assert f'id="{block_id}"' in dom, block_id
    assert "authorize" in dom.lower()


@pytest.mark.timeout(_TEST_TIMEOUT_S)
async def test_redoc_renders_offline(browser: str, api_url: str, tmp_path: Path) -> None:
    """ReDoc draws the operations too."""
    dom = await render(browser, f"{api_url}/redoc", tmp_path / "profile")
    for operation_id in ("create_transfer", "list_accounts", "get_transfer"):
        assert f"operation/{operation_id}" in dom, operation_id
