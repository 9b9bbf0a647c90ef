"""`ledgerflow dev`: one command starts everything, Ctrl-C/SIGTERM stops it all, state survives."""

import asyncio
import os
import signal
import sys
from pathlib import Path

import httpx
import pytest

from ledgerflow.devstack import free_port_block, port_in_use

SHARDS = 2


class DevProcess:
    """A `ledgerflow dev` child process and its ports."""

    def __init__(self, data_dir: Path, base: int) -> None:
        self.data_dir = data_dir
        self.base = base
        self.process: asyncio.subprocess.Process | None = None
        self.output = b""

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.base}"

    @property
    def ports(self) -> list[int]:
        return [self.base + i for i in range(3 + SHARDS)]

    def argv(self) -> list[str]:
        return [
            sys.executable, "-m", "ledgerflow", "dev",
            "--shards", str(SHARDS),
            "--data-dir", str(self.data_dir),
            "--port", str(self.base),
            "--temporal-port", str(self.base + 1),
            "--ui-port", str(self.base + 2),
            "--pg-port-base", str(self.base + 3),
        ]  # fmt: skip

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *self.argv(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "COLUMNS": "200"},
        )
        async with httpx.AsyncClient() as client:
            for _ in range(600):
                if self.process.returncode is not None:
                    break
                try:
                    if (await client.get(f"{self.api}/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        await self.stop(signal.SIGKILL)
        raise AssertionError(f"ledgerflow dev did not start:\n{self.output.decode()}")

    async def stop(self, sig: signal.Signals) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(sig)
        out, _ = await asyncio.wait_for(self.process.communicate(), timeout=60)
        self.output += out
        assert self.process.returncode is not None
        return self.process.returncode


@pytest.fixture
async def dev(tmp_path: Path):
    stack = DevProcess(tmp_path / "state", free_port_block(3 + SHARDS))
    yield stack
    if stack.process is not None and stack.process.returncode is None:
        await stack.stop(signal.SIGKILL)


async def test_dev_runs_stops_and_keeps_state(dev: DevProcess) -> None:
    """Accounts and balances survive a stop and start; SIGTERM and SIGINT each stop every
    service (all ports free again); a second stack on a taken port is refused clearly."""
    await dev.start()
    key = (dev.data_dir / "api_key").read_text().strip()
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=dev.api, headers=headers) as api:
        funding = (
            await api.post("/v1/accounts", json={"currency": "USD", "allow_overdraft": True})
        ).json()
        target = (await api.post("/v1/accounts", json={"currency": "USD"})).json()
        moved = await api.post(
            "/v1/transfers",
            json={
                "debit_account_id": funding["id"],
                "credit_account_id": target["id"],
                "amount": 1234,
                "currency": "USD",
            },
            headers={"Idempotency-Key": "dev-test-1"},
        )
        assert moved.status_code in (201, 202), moved.text

    clash = await asyncio.create_subprocess_exec(
        *dev.argv()[:-2], "--pg-port-base", str(dev.base + 50),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    clash_output, _ = await asyncio.wait_for(clash.communicate(), timeout=60)
    assert clash.returncode == 2
    assert f"port {dev.base} is already in use" in clash_output.decode()

    assert await dev.stop(signal.SIGTERM) == 0, dev.output.decode()
    assert b"stopped everything" in dev.output
    assert not [p for p in dev.ports if port_in_use("127.0.0.1", p)]

    await dev.start()
    async with httpx.AsyncClient(base_url=dev.api, headers=headers) as api:
        for _ in range(100):
            balance = (await api.get(f"/v1/accounts/{target['id']}")).json()["balance"]
            if balance["posted"] == 1234:
                break
            await asyncio.sleep(0.2)
        assert balance == {"posted": 1234, "pending": 0, "held": 0, "available": 1234}
    assert await dev.stop(signal.SIGINT) == 0, dev.output.decode()
    assert not [p for p in dev.ports if port_in_use("127.0.0.1", p)]
