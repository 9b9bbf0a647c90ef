"""`ledgerflow verify` proves the books, and names the account when they do not balance."""

import asyncio
import json
import os
import sys

import httpx
import pytest

from shards.cluster import ShardCluster
from tests.integration.helpers import create_account, transfer

pytestmark = pytest.mark.usefixtures("books")


async def _verify(dsns: list[str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ledgerflow",
        "verify",
        env={**os.environ, "LEDGERFLOW_SHARD_DSNS": json.dumps(dsns), "COLUMNS": "200"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_verify_passes_and_catches_a_tampered_account(
    api: httpx.AsyncClient, cluster: ShardCluster, shard_dsns: list[str]
) -> None:
    """verify exits 0 on balanced books, and 1 naming the account whose totals were
    changed behind the ledger's back; entries themselves cannot be changed at all."""
    funding = await create_account(api, allow_overdraft=True)
    target = None
    while target is None or target["shard"] != funding["shard"]:
        target = await create_account(api)
    assert (await transfer(api, funding["id"], target["id"], 700)).status_code == 201

    code, output = await _verify(shard_dsns)
    assert code == 0, output
    assert "the books balance" in output

    pool = cluster.shards[target["shard"]].pool
    async with pool.acquire() as conn:
        await conn.execute(
            "update accounts set credits_posted = credits_posted + 1 where id = $1", target["id"]
        )
    try:
        code, output = await _verify(shard_dsns)
        assert code == 1, output
        assert target["id"] in output
        assert "credits_posted" in output
    finally:
        async with pool.acquire() as conn:
            await conn.execute(
                "update accounts set credits_posted = credits_posted - 1 where id = $1",
                target["id"],
            )
    async with pool.acquire() as conn:
        with pytest.raises(Exception, match="immutable"):
            await conn.execute("update entries set amount = 1 where account_id = $1", target["id"])


async def test_verify_with_a_shard_unreachable_is_a_one_line_error(
    shard_dsns: list[str],
) -> None:
    """A shard that does not answer is exit code 2 and one line naming it, not a traceback
    (and not a verdict on the books)."""
    unreachable = "postgresql://postgres@127.0.0.1:1/ledgerflow"
    code, output = await _verify([*shard_dsns[:-1], unreachable])
    assert code == 2, output
    assert f"shard {len(shard_dsns) - 1} is unreachable" in output
    assert "Traceback" not in output
    assert len(output.strip().splitlines()) <= 3
