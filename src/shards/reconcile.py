"""Reconciliation: prove that no money was created or lost.

Per shard: the entries of each currency and layer sum to zero; every account's four totals
equal the sums of its entries, and its version equals its entry count; no account that
may not overdraw (and has no floor of its own, `min_available`) is below zero available.

Across shards, exact while sagas run: each shard's clearing accounts hold as pending
credits exactly what its open sagas and its transfers waiting for review reserved (one
snapshot); and every movement through the clearing accounts is matched, read in causal
order so that a saga moving during the check cannot look like a gap:
1. the posts (credits to a source shard's clearing account), read on every shard first;
2. the credits (debits of a destination's clearing account), read on every shard next:
   every post of step 1 has its credit, of the same amount, because a saga credits before
   it posts;
3. the cross-shard transfers, read on every shard last: every credit of step 2 belongs to
   a transfer of the same amount that was reserved and not released, because a saga
   reserves before it credits and never releases a credited transfer.
So the clearing accounts of all shards sum to the money in flight: reserved, or credited
and not yet posted; zero when no saga is running.

Per shard, delayed credits: the availability account holds, posted and pending alike,
exactly the credits still waiting for their `available_on`.
"""

from collections import defaultdict
from dataclasses import dataclass, field

import asyncpg

from ledger.accounts import NormalBalance, balance_of
from ledger.ids import AVAILABILITY_PREFIX, CLEARING_PREFIX
from ledger.money import format_minor
from ledger.transfers import TransferStatus
from shards.cluster import ShardCluster


@dataclass(slots=True)
class Report:
    """What reconciliation found; `ok` when nothing."""

    problems: list[str] = field(default_factory=list)
    accounts_checked: int = 0
    entries_checked: int = 0
    in_flight: dict[str, int] = field(default_factory=dict)
    """Money reserved by open sagas, per currency."""
    credited_unposted: dict[str, int] = field(default_factory=dict)
    """Money sagas credited and had not yet posted when the check read it, per currency."""

    @property
    def ok(self) -> bool:
        """Whether the books balance."""
        return not self.problems

    def in_flight_summary(self) -> str:
        """The money sagas had in flight, as `ledgerflow verify` prints it."""
        reserved = ", ".join(format_minor(v, c) for c, v in self.in_flight.items() if v)
        credited = ", ".join(format_minor(v, c) for c, v in self.credited_unposted.items() if v)
        return (
            f"reserved {reserved or 'nothing'}, credited and not yet posted {credited or 'nothing'}"
        )


_ZERO_SUM = """
select currency, layer, sum(case when side = 'credit' then amount else -amount end) as net
from entries group by currency, layer
having sum(case when side = 'credit' then amount else -amount end) <> 0
"""

_ACCOUNT_TOTALS = """
select a.id, a.normal_balance, a.allow_overdraft, a.min_available,
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
        cluster.shards[shard].connection() as conn,
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
    # An account with its own floor (`min_available`, perhaps an overdraft line) is held to
    # it when it moves money; the floor may change later, so only the zero floor of an
    # account that may not overdraw is an invariant of the books.
    if not row["allow_overdraft"] and row["min_available"] is None and balance.available < 0:
        report.problems.append(
            f"shard {shard}: account {account} is overdrawn: {balance.available} available"
        )


_CLEARING_PENDING = """
select currency, sum(credits_pending) as held from accounts where id like $1
group by currency
"""

# A transfer across shards waiting for review is reserved too, with no outbox row until it
# is approved: it waits for a person, not a saga, so it is not counted as in flight.
_OPEN_RESERVES = """
select currency, sum(saga) as reserved, sum(review) as reviewing from (
    select currency, amount as saga, 0 as review from saga_outbox where finished_at is null
    union all
    select currency, 0, amount from transfers where cross_shard and status = 'requires_review'
) as r group by currency
"""

_CLEARING_MOVES = """
select transfer_id, amount, currency from entries
where account_id like $1 and layer = 'posted' and side = $2
"""

_CROSS_SHARD_TRANSFERS = """
select id, amount, currency, status from transfers where cross_shard
"""

Move = tuple[int, str]
"""(amount, currency) of one transfer's movement through a clearing account."""


async def check_clearing(cluster: ShardCluster, report: Report) -> None:
    """The cross-shard invariants (see the module docstring), exact while sagas run."""
    reserved: dict[str, int] = defaultdict(int)
    for shard in cluster.shards:
        async with (
            shard.connection() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            held = {
                r["currency"]: r["held"]
                for r in await conn.fetch(_CLEARING_PENDING, f"{CLEARING_PREFIX}%")
            }
            open_reserves = {
                r["currency"]: (r["reserved"], r["reviewing"])
                for r in await conn.fetch(_OPEN_RESERVES)
            }
        for currency in set(held) | set(open_reserves):
            by_sagas, in_review = open_reserves.get(currency, (0, 0))
            reserved[currency] += by_sagas
            if held.get(currency, 0) != by_sagas + in_review:
                report.problems.append(
                    f"shard {shard.index}: clearing {currency} holds "
                    f"{held.get(currency, 0)} pending but its open sagas reserve "
                    f"{by_sagas} and its reviews {in_review}"
                )
    report.in_flight = dict(reserved)

    posts = await _clearing_moves(cluster, "credit", "posted", report)
    credits = await _clearing_moves(cluster, "debit", "credited", report)
    transfers: dict[str, tuple[int, str, str]] = {}
    for shard in cluster.shards:
        async with shard.connection() as conn:
            for r in await conn.fetch(_CROSS_SHARD_TRANSFERS):
                transfers[r["id"]] = (r["amount"], r["currency"], r["status"])

    for transfer_id, move in posts.items():
        if credits.get(transfer_id) != move:
            report.problems.append(
                f"transfer {transfer_id}: posted {move[0]} {move[1]} on its source shard "
                f"but credited {_describe(credits.get(transfer_id))}"
            )
    credited_unposted: dict[str, int] = defaultdict(int)
    for transfer_id, (amount, currency) in credits.items():
        found = transfers.get(transfer_id)
        if found is None or found[:2] != (amount, currency) or found[2] == TransferStatus.FAILED:
            report.problems.append(
                f"transfer {transfer_id}: credited {amount} {currency} but its reserve is "
                + ("missing" if found is None else f"{found[0]} {found[1]}, {found[2]}")
            )
        if transfer_id not in posts:
            credited_unposted[currency] += amount
    report.credited_unposted = dict(credited_unposted)


async def _clearing_moves(
    cluster: ShardCluster, side: str, what: str, report: Report
) -> dict[str, Move]:
    """Every posted-layer `side` entry of every clearing account, by transfer, one shard
    after another; a transfer moved twice is a problem."""
    moves: dict[str, Move] = {}
    for shard in cluster.shards:
        async with shard.connection() as conn:
            rows = await conn.fetch(_CLEARING_MOVES, f"{CLEARING_PREFIX}%", side)
        for r in rows:
            if r["transfer_id"] in moves:
                report.problems.append(f"transfer {r['transfer_id']}: {what} twice")
            moves[r["transfer_id"]] = (r["amount"], r["currency"])
    return moves


def _describe(move: Move | None) -> str:
    return "nothing" if move is None else f"{move[0]} {move[1]}"


_AVAILABILITY_ACCOUNTS = """
select currency, credits_posted - debits_posted as posted, debits_pending - credits_pending
       as pending
from accounts where id like $1
"""

_WAITING_CREDITS = """
select currency, sum(amount) as waiting from transfers
where available_on is not null and available_at is null group by currency
"""


async def check_availability(cluster: ShardCluster, report: Report) -> None:
    """Each shard's availability account holds, on both layers, exactly the delayed credits
    still waiting (one snapshot per shard): what it took from payers and has not yet given
    to payees."""
    for shard in cluster.shards:
        async with (
            shard.connection() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            accounts = await conn.fetch(_AVAILABILITY_ACCOUNTS, f"{AVAILABILITY_PREFIX}%")
            waiting = {r["currency"]: r["waiting"] for r in await conn.fetch(_WAITING_CREDITS)}
        held = {r["currency"]: (r["posted"], r["pending"]) for r in accounts}
        for currency in set(held) | set(waiting):
            expected = waiting.get(currency, 0)
            if held.get(currency, (0, 0)) != (expected, expected):
                report.problems.append(
                    f"shard {shard.index}: availability {currency} holds (posted, pending) "
                    f"{held.get(currency, (0, 0))} but {expected} waits to become available"
                )


async def reconcile(cluster: ShardCluster) -> Report:
    """Check every invariant on every shard and across shards."""
    report = Report()
    for shard in cluster.shards:
        await check_shard(cluster, shard.index, report)
    await check_clearing(cluster, report)
    await check_availability(cluster, report)
    return report
