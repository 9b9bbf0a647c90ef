"""A mixed concurrent load of single- and cross-shard transfers ends with exact balances."""

import asyncio
import random
from collections import Counter

import httpx
import pytest

from shards.cluster import ShardCluster
from shards.reconcile import reconcile
from tests.integration.cross_shard import account_on, settled
from tests.integration.helpers import accounts_by_shard, balance, transfer

pytestmark = pytest.mark.usefixtures("books")

ACCOUNTS_PER_SHARD = 2
OPENING_BALANCE = 5_000
TRANSFERS = 300


async def test_mixed_load_ends_with_exact_balances(
    api: httpx.AsyncClient, cluster: ShardCluster
) -> None:
    """300 concurrent transfers among 8 accounts on 4 shards, most crossing shards: every
    accepted one settles, every refused one moves nothing, and each balance equals what a
    tiny in-memory model of the accepted transfers predicts. Reconciliation run over and
    over during the load finds nothing wrong while money is in flight."""
    by_shard = await accounts_by_shard(api, per_shard=ACCOUNTS_PER_SHARD)
    accounts = [a["id"] for shard in by_shard.values() for a in shard[:ACCOUNTS_PER_SHARD]]
    shard_of = {a["id"]: a["shard"] for shard in by_shard.values() for a in shard}
    for shard in by_shard:
        funding = await account_on(api, shard, allow_overdraft=True)
        for account in by_shard[shard][:ACCOUNTS_PER_SHARD]:
            response = await transfer(api, funding["id"], account["id"], OPENING_BALANCE)
            assert response.status_code == 201, response.text

    rng = random.Random(20_251_125)
    planned = [(*rng.sample(accounts, 2), rng.randint(1, 1_500)) for _ in range(TRANSFERS)]
    load = asyncio.gather(*(transfer(api, d, c, amount) for d, c, amount in planned))
    reports = []
    while not load.done():
        reports.append(await reconcile(cluster))
    responses = await load
    assert all(r.ok for r in reports), [r.problems for r in reports if not r.ok]
    assert any(any(r.in_flight.values()) for r in reports), "no check saw a saga moving"
    amounts = [v for r in reports for v in (*r.in_flight.values(), *r.credited_unposted.values())]
    assert all(type(v) is int for v in amounts), "amounts are integer minor units"

    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {201, 202, 402}, statuses
    assert statuses[402], "the load should exhaust some accounts"
    crossing = sum(shard_of[d] != shard_of[c] for d, c, _ in planned)
    assert crossing > TRANSFERS // 2

    await settled(api)
    model = dict.fromkeys(accounts, OPENING_BALANCE)
    for (debit, credit, amount), response in zip(planned, responses, strict=True):
        if response.status_code in (201, 202):
            model[debit] -= amount
            model[credit] += amount
    assert all(value >= 0 for value in model.values())
    for account in accounts:
        assert await balance(api, account) == {
            "posted": model[account],
            "pending": 0,
            "held": 0,
            "available": model[account],
        }
    assert sum(model.values()) == OPENING_BALANCE * len(accounts)
