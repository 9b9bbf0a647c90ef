"""Costs bounded by what a request touches, with a long history beside it.

    python loadtests/bench_history.py --data-dir /tmp/ledgerflow-history [--rows 1000000]

Starts the bench stack on one shard (durable PostgreSQL, the Temporal dev server, one
worker, one API), then writes on that shard, in a few statements, two histories with their
entries and account totals, so the books stay exact:
- `--rows` holds of one unit from one account, pending, expiring six days ahead (what the
  funds timers' due-holds query must not walk);
- `--rows` posted transfers of one unit from an account with a daily limit, made between
  seven days and 25 hours ago, with the rows of table `outgoing` the posting path wrote for
  them (what the daily-limit sum must not read).

Then it measures, through the HTTP API:
1. a hold placed to expire in a second is released by the funds timers within
   `--expiry-deadline-s` (15 s) of its `expires_at`, three times;
2. transfers from the limited account against transfers from an unlimited one, in
   interleaved rounds at `--concurrency`: the p99 of each and their ratio, which must stay
   within `--p99-ratio-max` (1.2).

Prints one JSON line with both figures and the `EXPLAIN` of the two queries on the real
rows, reconciles the books, and exits 1 when a target is missed or the books are off.
"""

import argparse
import asyncio
import json
import os
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from ulid import ULID

from ledger import ids
from ledger.limits import REPORT_STATEMENT_TIMEOUT_MS
from ledgerflow.bench.stack import started_stack
from shards import holds, posting
from shards.cluster import ShardCluster
from shards.db import Connection
from shards.reconcile import reconcile

_ACCOUNT = """select id, debits_posted, credits_posted, debits_pending, credits_pending,
version from accounts where id = $1 for update"""


async def _post(session: aiohttp.ClientSession, path: str, body: dict) -> dict:
    headers = {"Idempotency-Key": f"history-{ULID()}"}
    async with session.post(path, json=body, headers=headers) as response:
        answer = await response.json(content_type=None)
        assert response.status in (200, 201), (response.status, answer)
        return answer


def _ids(slot: int, rows: int, since: datetime, step: timedelta) -> list[str]:
    start = int(since.timestamp() * 1000)
    millis = step.total_seconds() * 1000
    return [
        ids.transfer_id(slot, start + int(i * millis), os.urandom(ids.ENTROPY_BYTES))
        for i in range(rows)
    ]


async def _history(
    conn: Connection,
    *,
    tenant: str,
    debit: str,
    credit: str,
    rows: int,
    pending: bool,
    since: datetime,
    until: datetime,
) -> None:
    """`rows` movements of one unit from `debit` to `credit` (credit-normal accounts on this
    shard), stamped from `since` to `until`: holds (pending, expiring six days ahead) or
    posted transfers with their `outgoing` rows. Entries, totals and versions are written
    as the posting path writes them."""
    step = (until - since) / rows
    transfer_ids = _ids(ids.slot_of(debit), rows, since, step)
    layer = "pending" if pending else "posted"
    async with conn.transaction():
        d = await conn.fetchrow(_ACCOUNT, debit)
        c = await conn.fetchrow(_ACCOUNT, credit)
        assert d is not None
        assert c is not None
        await conn.execute(
            """insert into transfers (id, tenant_id, debit_account_id, credit_account_id, amount,
                   currency, status, cross_shard, source_shard, destination_shard, created_at,
                   updated_at, expires_at)
               select u.id, $2, $3, $4, 1, 'USD', $5, false, 0, 0, u.at, u.at,
                      case when $8 then clock_timestamp() + interval '6 days' end
               from (select id, $6::timestamptz + (n - 1) * $7::interval as at
                     from unnest($1::text[]) with ordinality as t(id, n)) as u""",
            transfer_ids,
            tenant,
            debit,
            credit,
            "pending" if pending else "posted",
            since,
            step,
            pending,
        )
        # Credit-normal: posted = credits - debits, held = debits pending, pending =
        # credits pending; available = posted - held.
        d_posted = d["credits_posted"] - d["debits_posted"]
        c_posted = c["credits_posted"] - c["debits_posted"]
        await conn.execute(
            """insert into entries (account_id, version, transfer_id, currency, layer, side,
                   amount, posted_after, available_after, pending_after, created_at)
               select $2, $3 + u.n, u.id, 'USD', $4, 'debit', 1,
                      $5 - case when $4 = 'posted' then u.n else 0 end,
                      $6 - u.n, $7, $8::timestamptz + (u.n - 1) * $9::interval
               from unnest($1::text[]) with ordinality as u(id, n)""",
            transfer_ids,
            debit,
            d["version"],
            layer,
            d_posted,
            d_posted - d["debits_pending"],
            d["credits_pending"],
            since,
            step,
        )
        await conn.execute(
            """insert into entries (account_id, version, transfer_id, currency, layer, side,
                   amount, posted_after, available_after, pending_after, created_at)
               select $2, $3 + u.n, u.id, 'USD', $4, 'credit', 1,
                      $5 + case when $4 = 'posted' then u.n else 0 end,
                      $6 + case when $4 = 'posted' then u.n else 0 end,
                      $7 + case when $4 = 'pending' then u.n else 0 end,
                      $8::timestamptz + (u.n - 1) * $9::interval
               from unnest($1::text[]) with ordinality as u(id, n)""",
            transfer_ids,
            credit,
            c["version"],
            layer,
            c_posted,
            c_posted - c["debits_pending"],
            c["credits_pending"],
            since,
            step,
        )
        debit_column, credit_column = f"debits_{layer}", f"credits_{layer}"
        for account, column in ((debit, debit_column), (credit, credit_column)):
            await conn.execute(
                f"update accounts set {column} = {column} + $2, version = version + $2,"
                " entry_at = greatest(entry_at, $3) where id = $1",
                account,
                rows,
                until,
            )
        if not pending:
            await conn.execute(
                """insert into outgoing (account_id, transfer_id, amount, created_at)
                   select $2, u.id, 1, $3::timestamptz + (u.n - 1) * $4::interval
                   from unnest($1::text[]) with ordinality as u(id, n)""",
                transfer_ids,
                debit,
                since,
                step,
            )
    await conn.execute("analyze transfers")
    await conn.execute("analyze entries")
    await conn.execute("analyze outgoing")


async def _explain(conn: Connection, limited: str) -> dict[str, dict[str, object]]:
    """The plans of the two queries on the real rows: what each reads."""
    now = await conn.fetchval("select clock_timestamp()")
    plans: dict[str, dict[str, object]] = {}
    for name, query, args in (
        ("due_holds", holds._DUE, (100, now)),
        ("daily_outgoing", posting._OUTGOING_24H, ([limited], now - timedelta(days=1))),
    ):
        async with conn.transaction():
            plan = await conn.fetchval(f"explain (analyze, buffers, format json) {query}", *args)
        top = json.loads(plan)[0]
        plans[name] = {
            "execution_ms": round(top["Execution Time"], 3),
            "shared_buffers_read": top["Plan"].get("Shared Hit Blocks", 0)
            + top["Plan"].get("Shared Read Blocks", 0),
            "plan": _nodes(top["Plan"]),
        }
    return plans


def _nodes(node: dict) -> list[str]:
    """Each node of a plan as one line: its type, its index and conditions, rows read."""
    found = [
        " ".join(
            str(part)
            for part in (
                node["Node Type"],
                node.get("Index Name", ""),
                node.get("Index Cond", ""),
                node.get("Filter", ""),
                f"rows={node.get('Actual Rows')}",
            )
            if part
        )
    ]
    for child in node.get("Plans", []):
        found.extend(_nodes(child))
    return found


async def _timed(session: aiohttp.ClientSession, body: dict) -> float:
    started = time.perf_counter()
    await _post(session, "/v1/transfers", body)
    return (time.perf_counter() - started) * 1000


async def _latencies(
    session: aiohttp.ClientSession, debit: str, sink: str, count: int, concurrency: int
) -> list[float]:
    body = {"debit_account_id": debit, "credit_account_id": sink, "amount": 1, "currency": "USD"}
    gate = asyncio.Semaphore(concurrency)

    async def one() -> float:
        async with gate:
            return await _timed(session, body)

    return list(await asyncio.gather(*(one() for _ in range(count))))


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


async def _run(target_url: str, key: str, dsns: list[str], args: argparse.Namespace) -> dict:
    headers = {"Authorization": f"Bearer {key}"}
    # Writing a history of a million rows takes longer than a serving statement may:
    # a report's timeout.
    cluster = await ShardCluster.connect(
        dsns, pool_size_max=2, statement_timeout_ms=REPORT_STATEMENT_TIMEOUT_MS
    )
    try:
        async with aiohttp.ClientSession(base_url=target_url, headers=headers) as session:
            new = {"currency": "USD"}
            funding = await _post(session, "/v1/accounts", {**new, "allow_overdraft": True})
            payer = await _post(session, "/v1/accounts", new)
            payee = await _post(session, "/v1/accounts", new)
            sink = await _post(session, "/v1/accounts", new)
            # The two senders alike but for the daily limit; both may overdraw, so the
            # limited one's history needs no funding of its own.
            limited = await _post(
                session,
                "/v1/accounts",
                {**new, "allow_overdraft": True, "limits": {"daily_outgoing": 10**15}},
            )
            unlimited = await _post(session, "/v1/accounts", {**new, "allow_overdraft": True})
            await _post(
                session,
                "/v1/transfers",
                {
                    "debit_account_id": funding["id"],
                    "credit_account_id": payer["id"],
                    "amount": 10 * args.rows,
                    "currency": "USD",
                },
            )
            async with cluster.shards[0].connection() as conn:
                tenant_id = await conn.fetchval(
                    "select tenant_id from accounts where id = $1", payer["id"]
                )
                now = datetime.now(UTC)
                started = time.perf_counter()
                await _history(
                    conn,
                    tenant=tenant_id,
                    debit=limited["id"],
                    credit=sink["id"],
                    rows=args.rows,
                    pending=False,
                    since=now - timedelta(days=7),
                    until=now - timedelta(hours=25),
                )
                await _history(
                    conn,
                    tenant=tenant_id,
                    debit=payer["id"],
                    credit=payee["id"],
                    rows=args.rows,
                    pending=True,
                    since=datetime.now(UTC),
                    until=datetime.now(UTC) + timedelta(seconds=1),
                )
                written_s = time.perf_counter() - started
                plans = await _explain(conn, limited["id"])

            expiry_lags = []
            for _ in range(3):
                hold = await _post(
                    session,
                    "/v1/transfers",
                    {
                        "debit_account_id": payer["id"],
                        "credit_account_id": payee["id"],
                        "amount": 1,
                        "currency": "USD",
                        "pending": True,
                        "expires_in": 1,
                    },
                )
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    async with session.get(f"/v1/transfers/{hold['id']}") as response:
                        if (await response.json())["status"] == "expired":
                            break
                    await asyncio.sleep(0.2)
                async with cluster.shards[0].connection() as conn:
                    lag = await conn.fetchval(
                        "select extract(epoch from updated_at - expires_at)::float8"
                        " from transfers where id = $1 and status = 'expired'",
                        hold["id"],
                    )
                expiry_lags.append(None if lag is None else round(lag, 2))

            limited_ms: list[float] = []
            unlimited_ms: list[float] = []
            await _latencies(session, unlimited["id"], sink["id"], 200, args.concurrency)
            for _ in range(args.rounds):
                limited_ms += await _latencies(
                    session, limited["id"], sink["id"], args.per_round, args.concurrency
                )
                unlimited_ms += await _latencies(
                    session, unlimited["id"], sink["id"], args.per_round, args.concurrency
                )
        report = await reconcile(cluster)
    finally:
        await cluster.close()
    ratio = _p99(limited_ms) / _p99(unlimited_ms)
    return {
        "rows": args.rows,
        "history_written_s": round(written_s, 1),
        "expiry_lag_s": expiry_lags,
        "expiry_deadline_s": args.expiry_deadline_s,
        "transfers_each": len(limited_ms),
        "limited_p50_ms": round(statistics.median(limited_ms), 1),
        "unlimited_p50_ms": round(statistics.median(unlimited_ms), 1),
        "limited_p99_ms": round(_p99(limited_ms), 1),
        "unlimited_p99_ms": round(_p99(unlimited_ms), 1),
        "p99_ratio": round(ratio, 3),
        "p99_ratio_max": args.p99_ratio_max,
        "plans": plans,
        "books_ok": report.ok,
        "problems": report.problems[:5],
    }


def main() -> None:
    """Run the measurement and print its JSON line; exit 1 when a target was missed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-round", type=int, default=400)
    parser.add_argument("--expiry-deadline-s", type=float, default=15.0)
    parser.add_argument("--p99-ratio-max", type=float, default=1.2)
    args = parser.parse_args()
    with started_stack(args.data_dir, shard_count=1) as (target, config):
        result = asyncio.run(_run(target.url, target.api_key, config.shard_dsns, args))
    print(json.dumps(result))
    ok = (
        result["books_ok"]
        and all(lag is not None and lag <= args.expiry_deadline_s for lag in result["expiry_lag_s"])
        and result["p99_ratio"] <= args.p99_ratio_max
    )
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
