"""Reconciliation: prove that no money was created or lost.

Per shard: the entries of each currency and layer sum to zero; every account's four totals
equal the sums of its entries, and its version equals its entry count; no account is below
the lower of its floor (`min_available`, else zero unless it may overdraw) and zero.

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

Holds and delayed credits across shards move the other way round: their source posts first
(a capture, the saga's post of a delayed credit), and the destination follows
(`shards.followups`). For them the credits are read once more before the posts, and every
such transfer was credited no more than its source posted; what its source posted and its
destination has not yet credited is owed (a delayed credit still waiting for its date
excepted: that is pending on the destination by design). A source's clearing account holds
as pending credits its open sagas' reserves, what its open holds across shards still hold,
and the reserves of transfers waiting for review.

Per shard, delayed credits: the availability account holds, posted and pending alike,
exactly the credits still waiting for their `available_on`.

Money in flight (a saga, a follow-up, a raise reserved for an increment) settles within
seconds; what has been in flight longer than `max_in_flight_s` (10 minutes) is a problem,
named with its transfers, not a pass.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

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
    owed: dict[str, int] = field(default_factory=dict)
    """Money a source shard posted (a capture, a delayed credit made available) and its
    destination had not yet credited, per currency."""
    followups_open: int = 0
    """Follow-ups recorded on source shards and not yet applied on their destinations."""
    raises_open: int = 0
    """Raises reserved on destination shards whose increments the source has not yet been
    seen to take or refuse (`shards.raises`)."""
    unreachable: list[int] = field(default_factory=list)
    """Shards that did not answer: their own checks and every check across shards were not
    run, so the report is incomplete (`ledgerflow verify` exits 3)."""

    @property
    def complete(self) -> bool:
        """Whether every shard was checked."""
        return not self.unreachable

    @property
    def ok(self) -> bool:
        """Whether the books balance."""
        return not self.problems

    def in_flight_summary(self) -> str:
        """The money sagas had in flight, as `ledgerflow verify` prints it."""
        reserved = ", ".join(format_minor(v, c) for c, v in self.in_flight.items() if v)
        credited = ", ".join(format_minor(v, c) for c, v in self.credited_unposted.items() if v)
        owed = ", ".join(format_minor(v, c) for c, v in self.owed.items() if v)
        return (
            f"reserved {reserved or 'nothing'}, credited and not yet posted"
            f" {credited or 'nothing'}, posted and not yet credited {owed or 'nothing'},"
            f" {self.followups_open} follow-ups open, {self.raises_open} raises unsettled"
        )

    @property
    def settling(self) -> bool:
        """Whether money was moving between shards when the check read it."""
        return (
            any(self.in_flight.values())
            or any(self.credited_unposted.values())
            or any(self.owed.values())
            or self.followups_open > 0
            or self.raises_open > 0
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
    # Every account is held to the lower of its floor and zero: its `min_available`
    # (perhaps an overdraft line), else zero unless it may overdraw. An account opens at
    # zero, movements never take it below its floor, and new limits whose floor it is
    # overdrawn past are refused (`limits_below_balance`); a positive floor it has not
    # reached yet it may stand below.
    floor = row["min_available"]
    if floor is None and not row["allow_overdraft"]:
        floor = 0
    if floor is not None and balance.available < min(floor, 0):
        report.problems.append(
            f"shard {shard}: account {account} is overdrawn: {balance.available} available,"
            f" below its floor of {floor}"
        )


_CLEARING_PENDING = """
select currency, sum(credits_pending) as held from accounts where id like $1
group by currency
"""

_OPEN_RESERVES = """
select currency, sum(amount) as reserved from saga_outbox
where finished_at is null group by currency
"""

# What the clearing account holds for transfers no saga has open: holds across shards
# (what they still hold) and transfers waiting for review (reserved, no outbox row until
# approved: they wait for a person, not a saga, so they are not money in flight).
_HELD_ACROSS = """
select currency,
       sum(case when status = 'pending' then amount - captured_amount else amount end) as held
from transfers
where cross_shard and status in ('pending', 'requires_review')
group by currency
"""

_OPEN_FOLLOWUPS = "select count(*) from remote_postings where applied_at is null"
_OPEN_RAISES = "select count(*) from raise_reservations where settled_at is null"

_CLEARING_MOVES = """
select transfer_id, amount, currency from entries
where account_id like $1 and layer = 'posted' and side = $2
"""

_CROSS_SHARD_TRANSFERS = """
select id, amount, currency, status, captured_amount, expires_at, available_on, available_at,
       available_on is not null and exists (
           select 1 from remote_postings r
           where r.transfer_id = transfers.id and r.movement = 'post_credit'
       ) as fell_due
from transfers where cross_shard
"""


@dataclass(slots=True)
class Move:
    """A transfer's movements through the clearing accounts on one side: their sum and how
    many there were (two moves are equal when their sums are)."""

    amount: int
    currency: str
    count: int = field(default=1, compare=False)


@dataclass(frozen=True, slots=True)
class CrossShardTransfer:
    """A cross-shard transfer as reconciliation reads it on its source shard."""

    id: str
    amount: int
    currency: str
    status: str
    captured_amount: int
    expires_at: datetime | None
    available_on: datetime | None
    available_at: datetime | None
    fell_due: bool
    """A delayed credit whose source recorded the destination's `POST_CREDIT`: due there
    now; its `available_at` is set once the destination applied it."""

    @property
    def follows_source(self) -> bool:
        """A hold or a delayed credit: its destination follows what its source posted."""
        return self.expires_at is not None or self.available_on is not None

    @property
    def owes_destination(self) -> bool:
        """Whether what its source posted is due on its destination now: a delayed credit
        waits for its date, pending there."""
        return self.available_on is None or self.available_at is not None or self.fell_due


async def check_clearing(cluster: ShardCluster, report: Report) -> None:
    """The cross-shard invariants (see the module docstring), exact while sagas run: what
    each clearing account holds pending, then every movement through them."""
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
            open_reserves = {r["currency"]: r["reserved"] for r in await conn.fetch(_OPEN_RESERVES)}
            held_across = {r["currency"]: r["held"] for r in await conn.fetch(_HELD_ACROSS)}
            report.followups_open += await conn.fetchval(_OPEN_FOLLOWUPS)
            report.raises_open += await conn.fetchval(_OPEN_RAISES)
        for currency in set(held) | set(open_reserves) | set(held_across):
            reserved[currency] += open_reserves.get(currency, 0)
            expected = open_reserves.get(currency, 0) + held_across.get(currency, 0)
            if held.get(currency, 0) != expected:
                report.problems.append(
                    f"shard {shard.index}: clearing {currency} holds "
                    f"{held.get(currency, 0)} pending but its open sagas reserve "
                    f"{open_reserves.get(currency, 0)} and its holds and reviews across shards"
                    f" hold {held_across.get(currency, 0)}"
                )
    report.in_flight = dict(reserved)
    await _check_clearing_moves(cluster, report)


async def _check_clearing_moves(cluster: ShardCluster, report: Report) -> None:
    """Every movement through the clearing accounts is matched (the module docstring says
    in which order they are read)."""
    # Holds and delayed credits: credited (read first) no more than posted (read next).
    credited_before = await _clearing_moves(cluster, "debit")
    posts = await _clearing_moves(cluster, "credit")
    # Sagas: every post (read first) has its credit (read next).
    credits = await _clearing_moves(cluster, "debit")
    transfers: dict[str, CrossShardTransfer] = {}
    for shard in cluster.shards:
        async with shard.connection() as conn:
            for r in await conn.fetch(_CROSS_SHARD_TRANSFERS):
                transfers[r["id"]] = CrossShardTransfer(**dict(r))

    credited_unposted: dict[str, int] = defaultdict(int)
    owed: dict[str, int] = defaultdict(int)
    for transfer_id in sorted(set(posts) | set(credits)):
        transfer = transfers.get(transfer_id)
        posted, credited = posts.get(transfer_id), credits.get(transfer_id)
        if transfer is not None and transfer.follows_source:
            _check_followed(transfer, posted, credited_before.get(transfer_id), report)
            if posted is not None and transfer.owes_destination:
                owed[posted.currency] += max(
                    0, posted.amount - (credited.amount if credited else 0)
                )
            continue
        for move, what in ((posted, "posted"), (credited, "credited")):
            if move is not None and move.count > 1:
                report.problems.append(f"transfer {transfer_id}: {what} twice")
        if posted is not None and credited != posted:
            report.problems.append(
                f"transfer {transfer_id}: posted {posted.amount} {posted.currency} on its "
                f"source shard but credited {_describe(credited)}"
            )
        if credited is None:
            continue
        if (
            transfer is None
            or (transfer.amount, transfer.currency) != (credited.amount, credited.currency)
            or transfer.status == TransferStatus.FAILED
        ):
            report.problems.append(
                f"transfer {transfer_id}: credited {credited.amount} {credited.currency} but its"
                " reserve is "
                + (
                    "missing"
                    if transfer is None
                    else f"{transfer.amount} {transfer.currency}, {transfer.status}"
                )
            )
        if posted is None:
            credited_unposted[credited.currency] += credited.amount
    report.credited_unposted = dict(credited_unposted)
    report.owed = dict(owed)


def _check_followed(
    transfer: CrossShardTransfer, posted: Move | None, credited: Move | None, report: Report
) -> None:
    """A hold or delayed credit across shards: its destination never credited more than its
    source posted, nor its source posted more than it captured (or, a delayed credit,
    than its amount)."""
    posted_amount = posted.amount if posted else 0
    if credited is not None and credited.amount > posted_amount:
        report.problems.append(
            f"transfer {transfer.id}: credited {credited.amount} {credited.currency} on its "
            f"destination but its source posted only {posted_amount}"
        )
    ceiling = transfer.captured_amount if transfer.expires_at is not None else transfer.amount
    if posted_amount > ceiling:
        report.problems.append(
            f"transfer {transfer.id}: posted {posted_amount} on its source shard, more than the"
            f" {ceiling} it captured or moved"
        )
    if (
        credited is not None
        and transfer.available_on is not None
        and transfer.available_at is None
        and not transfer.fell_due
    ):
        report.problems.append(f"transfer {transfer.id}: credited before it became available")


async def _clearing_moves(cluster: ShardCluster, side: str) -> dict[str, Move]:
    """Every posted-layer `side` entry of every clearing account, summed by transfer, one
    shard after another."""
    moves: dict[str, Move] = {}
    for shard in cluster.shards:
        async with shard.connection() as conn:
            rows = await conn.fetch(_CLEARING_MOVES, f"{CLEARING_PREFIX}%", side)
        for r in rows:
            move = moves.get(r["transfer_id"])
            if move is None:
                moves[r["transfer_id"]] = Move(r["amount"], r["currency"])
            else:
                move.amount += r["amount"]
                move.count += 1
    return moves


def _describe(move: Move | None) -> str:
    return "nothing" if move is None else f"{move.amount} {move.currency}"


_AVAILABILITY_ACCOUNTS = """
select currency, credits_posted - debits_posted as posted, debits_pending - credits_pending
       as pending
from accounts where id like $1
"""

_WAITING_CREDITS = """
select currency, sum(amount) as waiting from transfers
where available_on is not null and available_at is null and not cross_shard
group by currency
"""


async def check_availability(cluster: ShardCluster, report: Report) -> None:
    """Each shard's availability account holds, on both layers, exactly the delayed credits
    still waiting (one snapshot per shard): what it took from payers and has not yet given
    to payees."""
    for shard in cluster.reachable:
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


MAX_IN_FLIGHT_S = 600.0
"""Money in flight longer than this is a finding (`ledgerflow verify --max-in-flight`)."""

# Each bounded by its partial index of what is open, and by a parameter: the time.
_LONG_IN_FLIGHT = (
    (
        "a saga has not finished it",
        "select transfer_id, created_at from saga_outbox"
        " where finished_at is null and created_at < $1 order by created_at limit 20",
    ),
    (
        "its follow-up on the destination is not applied",
        "select transfer_id, created_at from remote_postings"
        " where applied_at is null and created_at < $1 order by created_at limit 20",
    ),
    (
        "the raise reserved for its increment is not settled",
        "select transfer_id, created_at from raise_reservations"
        " where settled_at is null and created_at < $1 order by created_at limit 20",
    ),
)


async def check_in_flight(cluster: ShardCluster, report: Report, *, max_s: float) -> None:
    """Money in flight for longer than `max_s` is a problem, named with its transfers: a
    saga, a follow-up or a reserved raise normally settles within seconds, so one that is
    still open is stuck (a refused follow-up, a shard long down), not merely settling."""
    for shard in cluster.reachable:
        async with shard.connection() as conn:
            now = await conn.fetchval("select clock_timestamp()")
            for why, query in _LONG_IN_FLIGHT:
                for row in await conn.fetch(query, now - timedelta(seconds=max_s)):
                    age = (now - row["created_at"]).total_seconds()
                    report.problems.append(
                        f"shard {shard.index}: transfer {row['transfer_id']} has had money in"
                        f" flight for {age:.0f} s (more than {max_s:.0f}): {why}"
                    )


async def reconcile(cluster: ShardCluster, *, max_in_flight_s: float = MAX_IN_FLIGHT_S) -> Report:
    """Check every invariant on every shard and across shards, and that no money has been
    in flight longer than `max_in_flight_s`."""
    report = Report(unreachable=sorted(cluster.unreachable))
    for shard in cluster.reachable:
        await check_shard(cluster, shard.index, report)
    if report.complete:
        # Across shards every shard is read: with one down, these are not run at all.
        await check_clearing(cluster, report)
    await check_availability(cluster, report)
    await check_in_flight(cluster, report, max_s=max_in_flight_s)
    return report
