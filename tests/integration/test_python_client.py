"""The generated Python client (clients/python): current with the API, and it moves money.

The client is generated from the OpenAPI document by `clients/regenerate.sh`; the first
test regenerates it into a temporary directory and fails when the committed copy (or the
committed `clients/openapi.json`) differs, naming the command that brings it up to date.
"""

import asyncio
import filecmp
import os
import subprocess
from importlib.metadata import version
from pathlib import Path

import pytest
from ulid import ULID

CLIENTS = Path(__file__).resolve().parents[2] / "clients"
GENERATOR_VERSION = "0.29.1"
"""Pinned in the dev extra: another version of the generator writes other code."""

pytestmark = pytest.mark.usefixtures("books")


def _differences(committed: Path, fresh: Path) -> list[str]:
    """Files that differ, or exist on one side only, under two directory trees."""
    found: list[str] = []

    def walk(compared: filecmp.dircmp[str], prefix: str) -> None:
        found.extend(f"{prefix}{name}" for name in compared.left_only + compared.right_only)
        _, mismatch, errors = filecmp.cmpfiles(
            compared.left, compared.right, compared.common_files, shallow=False
        )
        found.extend(f"{prefix}{name}" for name in mismatch + errors)
        for name, sub in compared.subdirs.items():
            walk(sub, f"{prefix}{name}/")

    walk(filecmp.dircmp(committed, fresh, ignore=["__pycache__", ".ruff_cache"]), "")
    return found


def test_the_committed_client_is_current(tmp_path: Path) -> None:
    """Regenerating from today's code gives the committed schema and client, byte for byte."""
    assert version("openapi-python-client") == GENERATOR_VERSION, "pip install -e '.[dev]'"
    subprocess.run(
        [str(CLIENTS / "regenerate.sh"), str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=120,
        env={**os.environ, "NO_COLOR": "1"},
    )
    fresh_schema = (tmp_path / "openapi.json").read_text()
    stale = "stale: run clients/regenerate.sh and commit clients/"
    assert (CLIENTS / "openapi.json").read_text() == fresh_schema, stale
    assert _differences(CLIENTS / "python", tmp_path / "python") == [], stale


async def test_the_client_moves_money(
    api_url: str, tenant_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Open a funding account and two customers, fund one, move money to the other, and read
    both balances, all through the generated client authenticated with the tenant's token;
    a refusal comes back as the typed error."""
    monkeypatch.syspath_prepend(str(CLIENTS / "python"))
    from ledgerflow_client import AuthenticatedClient  # noqa: PLC0415 - after the path is set
    from ledgerflow_client.api.accounts import create_account, get_account  # noqa: PLC0415
    from ledgerflow_client.api.transfers import create_transfer, get_transfer  # noqa: PLC0415
    from ledgerflow_client.models import (  # noqa: PLC0415
        AccountCreate,
        AccountOut,
        Currency,
        ErrorCode,
        ErrorOut,
        TransferCreate,
        TransferOut,
    )

    async with AuthenticatedClient(base_url=api_url, token=tenant_key) as client:

        async def open_account(*, allow_overdraft: bool = False) -> AccountOut:
            body = AccountCreate(currency=Currency.USD, allow_overdraft=allow_overdraft)
            account = await create_account.asyncio(client=client, body=body)
            assert isinstance(account, AccountOut), account
            return account

        async def move(
            debit: AccountOut, credit: AccountOut, amount: int
        ) -> TransferOut | ErrorOut:
            body = TransferCreate(
                debit_account_id=debit.id,
                credit_account_id=credit.id,
                amount=amount,
                currency=Currency.USD,
            )
            moved = await create_transfer.asyncio(
                client=client, body=body, idempotency_key=f"client-{ULID()}"
            )
            assert moved is not None
            return moved

        async def settled(transfer: object) -> TransferOut:
            assert isinstance(transfer, TransferOut), transfer
            for _ in range(300):  # a cross-shard transfer settles through its saga
                if transfer.status != "processing":
                    return transfer
                await asyncio.sleep(0.1)
                fetched = await get_transfer.asyncio(transfer.id, client=client)
                assert isinstance(fetched, TransferOut), fetched
                transfer = fetched
            raise AssertionError(f"{transfer.id} still processing")

        async def available(account: AccountOut) -> int:
            fetched = await get_account.asyncio(account.id, client=client)
            assert isinstance(fetched, AccountOut), fetched
            return fetched.balance.available

        funding = await open_account(allow_overdraft=True)
        alice, bob = await open_account(), await open_account()
        assert (await settled(await move(funding, alice, 10_000))).status == "posted"
        assert (await settled(await move(alice, bob, 2_500))).status == "posted"
        assert (await available(alice), await available(bob)) == (7_500, 2_500)

        refused = await move(bob, alice, 2_501)
        assert isinstance(refused, ErrorOut), refused
        assert refused.error.code is ErrorCode.INSUFFICIENT_FUNDS
        assert (await available(alice), await available(bob)) == (7_500, 2_500)
