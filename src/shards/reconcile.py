"""Reconciliation: prove that no money was created or lost.

Per shard: the entries of each currency and layer sum to zero; every account's four totals
equal the sums of its entries, and its version equals its entry count; no account that
may not overdraw is below zero available.

Across shards: the clearing accounts' pending credits equal the money reserved by open
sagas, and their posted balances sum to minus the money credited but not yet posted —
zero when no saga is running.
"""

from collections import defaultdict
from dataclasses import dataclass, field

import asyncpg

from ledger.accounts import NormalBalance, balance_of
from ledger.ids import CLEARING_PREFIX
from shards.cluster import ShardCluster


@dataclass(slots=True)
class Report:
    """What reconciliation found; `ok` when nothing."""

    problems: list[str] = field(default_factory=list)
    accounts_checked: int = 0
    entries_checked: int = 0
    in_flight: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether the books balance."""
        return not self.problems


_ZERO_SUM = """
select currency, layer, sum(case when side = 'credit' then amount else -amount end) as net
from entries group by currency, layer
having sum(case when side = 'credit' then amount else -amount end) <> 0
"""

_ACCOUNT_TOTALS = """
select a.id, a.normal_balance, a.allow_overdraft,
       a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending, a.version,
       coalesce(e.dp, 0) as e_dp, coalesce(e.cp, 0) as e_cp,
       coalesce(e.dpe, 0) as e_dpe, coalesce(e.cpe, 0) as e_cpe,
       coalesce(e.n, 0) as e_n, coalesce(e.v, 0) as e_v
from accounts a left join (
    select account_id,
           sum(amount) filter (where layer = 'posted' and side = 'debit') as dp,
           sum(amount) filter (where layer = 'posted' and side = 'credit') as cp,
           sum(amount) filter (where layer = 'pending' and side = 'debit') as dpe,
           sum(amount) filter (where layer = 'pending' and side = 'credit') as cpe,
           count(*) as n, max(version) as v
    from entries group by account_id
) e on e.account_id = a.id
"""


async def check_shard(cluster: ShardCluster, shard: int, report: Report) -> None:
    """The per-shard invariants, checked in one repeatable-read snapshot."""
    async with (
        cluster.shards[shard].pool.acquire() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        for row in await conn.fetch(_ZERO_SUM):
            report.problems.append(
                f"shard {shard}: {row['currency']} {row['layer']} entries sum to "
                f"{row['net']}, not 0"
            )
        rows = await conn.fetch(_ACCOUNT_TOTALS)
        report.entries_checked += await conn.fetchval("select count(*) from entries")
    for row in rows:
        report.accounts_checked += 1
        _check_account(shard, row, report)


def _check_account(shard: int, row: asyncpg.Record, report: Report) -> None:
    account = row["id"]
    pairs = [
        ("debits_posted", "e_dp"),
        ("credits_posted", "e_cp"),
        ("debits_pending", "e_dpe"),
        ("credits_pending", "e_cpe"),
    ]
    for stored, summed in pairs:
        if row[stored] != row[summed]:
            report.problems.append(
                f"shard {shard}: account {account} {stored} is {row[stored]} but its "
                f"entries sum to {row[summed]}"
            )
    if not row["version"] == row["e_n"] == row["e_v"]:
        report.problems.append(
            f"shard {shard}: account {account} version {row['version']} but it has "
            f"{row['e_n']} entries (last version {row['e_v']})"
        )
    balance = balance_of(
        NormalBalance(str(row["normal_balance"])),
        debits_posted=row["debits_posted"],
        credits_posted=row["credits_posted"],
        debits_pending=row["debits_pending"],
        credits_pending=row["credits_pending"],
    )
    if not row["allow_overdraft"] and balance.available < 0:
        report.problems.append(
            f"shard {shard}: account {account} is overdrawn: {balance.available} available"
        )


async def check_clearing(cluster: ShardCluster, report: Report) -> None:
    """The cross-shard invariant over clearing accounts and open sagas."""
    clearing_pending: dict[str, int] = defaultdict(int)
    clearing_posted: dict[str, int] = defaultdict(int)
    reserved: dict[str, int] = defaultdict(int)
    open_by_destination: dict[int, list[tuple[str, int, str]]] = defaultdict(list)
    for shard in cluster.shards:
        async with (
            shard.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            for row in await conn.fetch(
                "select currency, sum(credits_pending) as pend,"
                " sum(credits_posted - debits_posted) as net from accounts"
                " where id like $1 group by currency",
                f"{CLEARING_PREFIX}%",
            ):
                clearing_pending[row["currency"]] += row["pend"]
                clearing_posted[row["currency"]] += row["net"]
            for row in await conn.fetch(
                "select transfer_id, amount, currency, destination_shard from saga_outbox"
                " where finished_at is null"
            ):
                reserved[row["currency"]] += row["amount"]
                open_by_destination[row["destination_shard"]].append(
                    (row["transfer_id"], row["amount"], row["currency"])
                )
    credited = await _credited_in_flight(cluster, open_by_destination)
    report.in_flight = dict(reserved)
    for currency in set(clearing_pending) | set(reserved) | set(clearing_posted):
        if clearing_pending[currency] != reserved[currency]:
            report.problems.append(
                f"clearing {currency}: pending credits {clearing_pending[currency]} but open "
                f"sagas reserve {reserved[currency]}"
            )
        if clearing_posted[currency] + credited[currency] != 0:
            report.problems.append(
                f"clearing {currency}: posted balances sum to {clearing_posted[currency]} but "
                f"{credited[currency]} is credited and not yet posted"
            )


async def _credited_in_flight(
    cluster: ShardCluster, open_by_destination: dict[int, list[tuple[str, int, str]]]
) -> dict[str, int]:
    """Money of open sagas whose credit step already committed on the destination."""
    credited: dict[str, int] = defaultdict(int)
    for destination, transfers in open_by_destination.items():
        amounts = {f"{t}:credit": (amount, currency) for t, amount, currency in transfers}
        async with cluster.shards[destination].pool.acquire() as conn:
            rows = await conn.fetch(
                "select key from operations where key = any($1::text[])"
                " and (result ->> 'ok')::boolean",
                list(amounts),
            )
        for row in rows:
            amount, currency = amounts[row["key"]]
            credited[currency] += amount
    return credited


async def reconcile(cluster: ShardCluster) -> Report:
    """Check every invariant on every shard and across shards."""
    report = Report()
    for shard in cluster.shards:
        await check_shard(cluster, shard.index, report)
    await check_clearing(cluster, report)
    return report
