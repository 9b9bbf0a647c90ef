"""How fast the funds timers release holds that all expire at once.

    python loadtests/bench_hold_expiry.py --data-dir /tmp/ledgerflow-expiry [--holds 10000]
        [--across]

Starts the bench stack (durable shards, the Temporal dev server, one worker, one API),
places `--holds` holds through the batch endpoint (non-atomic batches of 500, each hold
expiring `--expires-in` seconds after the first was placed, so every one of them falls due
within the same minute), then reads the shards until none is pending and prints, from the
transfers' own rows: how many expired, the last deadline, and how long after its deadline
the last hold was released. Ends by reconciling the books (exit 1 if they are off, or if a
hold was not released within `--deadline-s` of its expiry).

With `--across` every hold is between accounts on two shards: the saga opens it, and its
expiry releases it on the payer's shard and, through a follow-up, on the payee's; the
release is then timed on the payee's shard, where it happens last.
"""

import argparse
import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from ulid import ULID

from ledgerflow.bench.stack import started_stack
from shards.cluster import ShardCluster
from shards.reconcile import reconcile

BATCH = 500
ACCOUNTS_PER_SHARD = 20


async def _post(session: aiohttp.ClientSession, path: str, body: dict) -> dict:
    headers = {"Idempotency-Key": f"expiry-{ULID()}"}
    async with session.post(path, json=body, headers=headers) as response:
        answer = await response.json(content_type=None)
        assert response.status in (200, 201), (response.status, answer)
        return answer


async def _place(url: str, key: str, holds: int, expires_at: datetime, *, across: bool) -> float:
    """Open accounts on every shard, fund them, place the holds; returns seconds taken."""
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(base_url=url, headers=headers) as session:
        by_shard: dict[int, list[str]] = {}
        funding: dict[int, str] = {}
        while len(by_shard) < 1 or min(len(v) for v in by_shard.values()) < ACCOUNTS_PER_SHARD:
            account = await _post(session, "/v1/accounts", {"currency": "USD"})
            by_shard.setdefault(account["shard"], []).append(account["id"])
            if account["shard"] not in funding:
                payer = await _post(
                    session, "/v1/accounts", {"currency": "USD", "allow_overdraft": True}
                )
                funding.setdefault(payer["shard"], payer["id"])
        shards = sorted(by_shard)
        pairs = [
            (
                accounts[i],
                by_shard[shards[(shards.index(shard) + 1) % len(shards)]][i]
                if across
                else accounts[(i + 1) % len(accounts)],
            )
            for shard, accounts in by_shard.items()
            if shard in funding
            for i in range(ACCOUNTS_PER_SHARD)
        ]
        assert not across or len(shards) > 1, "--across needs two shards"
        for debit, _ in pairs:
            shard = next(s for s, a in by_shard.items() if debit in a)
            item = {"debit_account_id": funding[shard], "credit_account_id": debit}
            await _post(session, "/v1/transfers", {**item, "amount": 10**9, "currency": "USD"})
        started = time.perf_counter()
        for first in range(0, holds, BATCH):
            items = []
            for n in range(first, min(first + BATCH, holds)):
                debit, credit = pairs[n % len(pairs)]
                expires_in = max(1, int((expires_at - datetime.now(UTC)).total_seconds()))
                items.append(
                    {
                        "debit_account_id": debit,
                        "credit_account_id": credit,
                        "amount": 1 + n % 50,
                        "currency": "USD",
                        "pending": True,
                        "expires_in": expires_in,
                    }
                )
            answer = await _post(
                session, "/v1/transfers/batch", {"transfers": items, "atomic": False}
            )
            refused = [item for item in answer["data"] if item["status"] not in (201, 202)]
            assert not refused, refused[:3]
        return time.perf_counter() - started


_LAG_ACROSS = """
select max(extract(epoch from f.applied_at - t.expires_at))::float8
from remote_postings f join transfers t on t.id = f.transfer_id
where t.status = 'expired' and f.movement = 'void_credit'
"""


async def _watch(dsns: list[str], holds: int, timeout_s: float) -> dict:
    """Wait until no hold is pending (or still opening) and no follow-up is open; returns
    what the rows say."""
    cluster = await ShardCluster.connect(dsns)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            pending = 0
            for shard in cluster.shards:
                async with shard.connection() as conn:
                    pending += await conn.fetchval(
                        "select count(*) from transfers where status in ('pending', 'processing')"
                    )
                    pending += await conn.fetchval(
                        "select count(*) from remote_postings where applied_at is null"
                    )
            if pending == 0 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        expired, last_deadline, worst_lag = 0, None, 0.0
        for shard in cluster.shards:
            async with shard.connection() as conn:
                row = await conn.fetchrow(
                    "select count(*) as n, max(expires_at) as last,"
                    " max(extract(epoch from updated_at - expires_at))::float8 as lag"
                    " from transfers where status = 'expired'"
                )
                across_lag = await conn.fetchval(_LAG_ACROSS)
            expired += row["n"]
            if row["last"] is not None:
                last_deadline = max(filter(None, [last_deadline, row["last"]]))
                worst_lag = max(worst_lag, float(row["lag"]), across_lag or 0.0)
        report = await reconcile(cluster)
        return {
            "holds": holds,
            "expired": expired,
            "still_pending": pending,
            "last_deadline": None if last_deadline is None else last_deadline.isoformat(),
            "worst_release_after_deadline_s": round(worst_lag, 2),
            "books_ok": report.ok,
            "problems": report.problems[:5],
        }
    finally:
        await cluster.close()


def main() -> None:
    """Run the measurement and print its JSON line; exit 1 when it failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--holds", type=int, default=10_000)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--expires-in", type=float, default=60.0)
    parser.add_argument("--deadline-s", type=float, default=60.0)
    parser.add_argument("--across", action="store_true", help="holds between two shards")
    args = parser.parse_args()
    with started_stack(args.data_dir, shard_count=args.shards) as (target, config):
        expires_at = datetime.now(UTC) + timedelta(seconds=args.expires_in)
        placing_s = asyncio.run(
            _place(target.url, target.api_key, args.holds, expires_at, across=args.across)
        )
        wait_s = max(0.0, (expires_at - datetime.now(UTC)).total_seconds())
        result = asyncio.run(_watch(config.shard_dsns, args.holds, wait_s + args.deadline_s))
    result["across"] = args.across
    result["placing_s"] = round(placing_s, 1)
    result["holds_placed_per_s"] = round(args.holds / placing_s)
    print(json.dumps(result))
    ok = (
        result["books_ok"]
        and result["expired"] == args.holds
        and result["worst_release_after_deadline_s"] <= args.deadline_s
    )
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
