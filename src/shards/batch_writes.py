"""Everything a posting batch writes, in one statement and one round trip.

The batch holds its account locks until it commits, and a shard's clearing account is in
every cross-shard batch, so each round trip inside the lock is paid by every waiting
batch. Entries, account totals, transfer rows, outbox rows and operation results are
therefore written by one static statement of data-modifying CTEs over arrays; an empty
array writes nothing.
"""

import json
from dataclasses import dataclass, field, replace
from datetime import datetime

from ledger.accounts import AccountState
from ledger.errors import LedgerError
from ledger.posting import Entry, Movement
from ledger.transfers import (
    SagaStep,
    SettlementKind,
    TransferStatus,
    event_for,
    finishing,
    opening_status,
)
from shards.db import Connection
from shards.posting_types import PostingRequest, increment_key, result_json
from shards.transfers import TransferRecord, transfer_from_json

# Statuses and saga steps come from `ledger.transfers`, as parameters: the statement
# names none of them.
_OPENS_TRANSFER = frozenset(
    {
        Movement.TRANSFER,
        Movement.RESERVE_FUNDS,
        Movement.HOLD,
        Movement.HOLD_FOR_REVIEW,
        Movement.DEFER_DEBIT,
        Movement.RESERVE_FOR_REVIEW,
    }
)
_CROSS_SHARD = frozenset({Movement.RESERVE_FUNDS, Movement.RESERVE_FOR_REVIEW})
"""Movements that open a cross-shard transfer; a reserve for review gets its outbox row
only once approved (`shards.review`), so no saga can take it before."""
_FINISHES_TRANSFER = frozenset({Movement.POST_HOLD, Movement.RELEASE_HOLD})

_WRITE_BATCH = """
with stamp as (
    -- Under the account locks: no later writer of these accounts can take an earlier
    -- time, and a clock that stepped back cannot take an account's entries back in time.
    select greatest(clock_timestamp(), max(entry_at)) as at
    from accounts where id = any($10::text[])
), new_entries as (
    insert into entries (account_id, version, transfer_id, currency, layer, side, amount,
                         posted_after, available_after, pending_after, created_at)
    select a, v, t, c, l, s, amount, pa::numeric, aa::numeric, pe::numeric, stamp.at
    from unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[],
                $6::text[], $7::bigint[], $8::text[], $9::text[], $34::text[])
         as u(a, v, t, c, l, s, amount, pa, aa, pe), stamp
), new_totals as (
    update accounts a set debits_posted = u.dp::numeric, credits_posted = u.cp::numeric,
                          debits_pending = u.dpe::numeric, credits_pending = u.cpe::numeric,
                          version = u.v, entry_at = stamp.at
    from unnest($10::text[], $11::text[], $12::text[], $13::text[], $14::text[],
                $15::bigint[]) as u(id, dp, cp, dpe, cpe, v), stamp
    where a.id = u.id
), opened as (
    insert into transfers (id, tenant_id, debit_account_id, credit_account_id, amount,
                           currency, status, cross_shard, source_shard, destination_shard,
                           saga_step, metadata, expires_at, workflow_id, available_on)
    select u.id, u.tenant, u.debit, u.credit, u.amount, u.currency, u.status, u.is_cross,
           u.src, u.dst, u.step, u.metadata::jsonb, u.expires, u.workflow, u.available_on
    from unnest($16::text[], $17::text[], $18::text[], $19::text[], $20::bigint[], $21::text[],
                $22::boolean[], $23::int[], $24::int[], $25::text[], $31::text[], $32::text[],
                $38::timestamptz[], $39::text[], $40::timestamptz[])
         as u(id, tenant, debit, credit, amount, currency, is_cross, src, dst, metadata, status,
              step, expires, workflow, available_on)
    returning *
), new_holds as (
    insert into saga_outbox (transfer_id, tenant_id, debit_account_id, credit_account_id,
                             amount, currency, source_shard, destination_shard, workflow_id,
                             claimed_at, kind)
    select u.id, u.tenant, u.debit, u.credit, u.amount, u.currency, u.src, u.dst, u.workflow,
           case when u.workflow is null then null else now() end, u.kind
    from unnest($16::text[], $17::text[], $18::text[], $19::text[], $20::bigint[], $21::text[],
                $22::boolean[], $23::int[], $24::int[], $39::text[], $41::text[])
         as u(id, tenant, debit, credit, amount, currency, is_cross, src, dst, workflow, kind)
    where u.kind is not null
), finished as (
    update transfers t set status = u.status, saga_step = u.step,
                           failure_code = u.failure_code, updated_at = now()
    from unnest($26::text[], $27::text[], $28::text[], $33::text[])
         as u(id, status, failure_code, step)
    where t.id = u.id
    returning t.*
), new_events as (
    insert into events (id, tenant_id, type, transfer_id, data, created_at)
    select event_id(stamp.at, $37::int),
           x.tenant_id, u.type, x.id, to_jsonb(x), stamp.at
    from (select * from opened union all select * from finished) as x
    join unnest($35::text[], $36::text[]) as u(id, type) on u.id = x.id
    cross join stamp
), finished_holds as (
    update saga_outbox set finished_at = now() where transfer_id = any($26::text[])
), results as (
    update operations o set result = u.result::jsonb
    from unnest($29::text[], $30::text[]) as u(key, result)
    where o.key = u.key
), changed as (
    -- Changes of holds: each transfer once, as the batch's last change of it left it.
    update transfers t set status = u.status, amount = u.amount, captured_amount = u.captured,
                           captures = t.captures || u.captures::jsonb, updated_at = stamp.at,
                           failure_code = coalesce(u.failure_code, t.failure_code),
                           saga_step = coalesce(u.step, t.saga_step)
    from unnest($42::text[], $43::text[], $44::bigint[], $45::bigint[], $46::text[],
                $62::text[], $63::text[])
         as u(id, status, amount, captured, captures, failure_code, step), stamp
    where t.id = u.id
    returning t.*
), to_saga as (
    -- An approved review across shards enters the outbox as a reserve just made would:
    -- the hand-over or the sweep claims it (`shards.outbox`).
    insert into saga_outbox (transfer_id, tenant_id, debit_account_id, credit_account_id,
                             amount, currency, source_shard, destination_shard, kind)
    select x.id, x.tenant_id, x.debit_account_id, x.credit_account_id, x.amount, x.currency,
           x.source_shard, x.destination_shard, $65
    from changed as x
    where x.id = any($64::text[])
), change_events as (
    insert into events (id, tenant_id, type, transfer_id, data, created_at)
    select event_id(stamp.at, $37::int), x.tenant_id, u.type, x.id, to_jsonb(x), stamp.at
    from changed as x
    join unnest($47::text[], $48::text[]) as u(id, type) on u.id = x.id
    cross join stamp
), new_followups as (
    insert into remote_postings (operation_key, transfer_id, tenant_id, movement,
                                 debit_account_id, credit_account_id, amount, currency,
                                 source_shard, destination_shard)
    select * from unnest($49::text[], $50::text[], $51::text[], $52::text[], $53::text[],
                         $54::text[], $55::bigint[], $56::text[], $57::int[], $58::int[])
    on conflict (operation_key) do nothing
), decisions_by as (
    insert into operations (key, transfer_id, result)
    select u.key, u.t, '{"ok": true}'::jsonb from unnest($66::text[], $67::text[]) as u(key, t)
    on conflict do nothing
), new_outgoing as (
    insert into outgoing (account_id, transfer_id, amount, created_at)
    select u.a, u.t, u.amount, stamp.at
    from unnest($59::text[], $60::text[], $61::bigint[]) as u(a, t, amount), stamp
)
select id, created_at, null::jsonb as changed from opened
union all
select id, created_at, to_jsonb(changed) from changed
"""


def _opening_step(request: PostingRequest) -> str | None:
    """The saga step a new transfer starts at: `reserved` when a saga settles it."""
    return str(SagaStep.RESERVED) if request.movement in _CROSS_SHARD else None


def _outbox_kind(request: PostingRequest) -> str | None:
    """What the saga makes of a new transfer, when one is to take it now."""
    if request.movement is not Movement.RESERVE_FUNDS:
        return None
    return str(request.settlement_kind)


def _events(
    opened: list[PostingRequest],
    finished: list[PostingRequest],
    endings: list[tuple[TransferStatus, SagaStep]],
) -> tuple[list[str], list[str]]:
    """(transfer ids, event types) of the changes this batch reports in the event feed: a
    transfer that opens final (posted on one shard) and every transfer a saga finishes."""
    reported = [(r.transfer_id, event_for(opening_status(r.movement))) for r in opened]
    reported += [
        (r.transfer_id, event_for(status)) for r, (status, _) in zip(finished, endings, strict=True)
    ]
    kept = [(t, str(e)) for t, e in reported if e is not None]
    return [t for t, _ in kept], [e for _, e in kept]


@dataclass(frozen=True, slots=True)
class HoldAfter:
    """A hold as a change leaves it: what the transfer row is updated to."""

    transfer_id: str
    status: TransferStatus
    amount: int
    captured: int
    captures: tuple[dict[str, object], ...]
    """Captures to append to the row's list."""
    failure_code: str | None = None
    step: str | None = None
    """The saga step it leaves (None: as it was)."""
    to_saga: bool = False
    """An approved review across shards: the transfer enters the outbox."""


@dataclass(slots=True)
class BatchWrites:
    """What a batch writes, collected in memory while the domain rules run."""

    entries: list[tuple[str, Entry]] = field(default_factory=list)
    opened: list[PostingRequest] = field(default_factory=list)
    finished: list[PostingRequest] = field(default_factory=list)
    touched: set[str] = field(default_factory=set)
    results: list[tuple[str, str]] = field(default_factory=list)
    changes: dict[str, HoldAfter] = field(default_factory=dict)
    """Each changed hold as the batch's last change left it, by transfer id."""
    change_events: list[tuple[str, str]] = field(default_factory=list)
    followups: list[PostingRequest] = field(default_factory=list)
    decided_under: list[tuple[str, str]] = field(default_factory=list)
    """(request key, transfer id) of the review decisions applied, as operations."""
    outgoing: list[tuple[str, str, int]] = field(default_factory=list)
    """(account id, transfer id, signed amount) for the daily limits (migration 0012)."""
    raises: list[PostingRequest] = field(default_factory=list)
    """Raises of holds across shards reserved here (`RAISE_CREDIT`, migration 0013)."""

    def add(self, request: PostingRequest, entries: list[Entry], *, keyed: bool = True) -> None:
        """Record an applied movement and its entries (and its result under its own key,
        unless it is a step of a change that has the key)."""
        assert entries
        self.entries.extend((request.transfer_id, e) for e in entries)
        self.touched.update(e.account_id for e in entries)
        if request.movement in _OPENS_TRANSFER:
            self.opened.append(request)
        elif request.movement in _FINISHES_TRANSFER:
            self.finished.append(request)
        if request.movement is Movement.RAISE_CREDIT:
            self.raises.append(request)
        if keyed:
            self.results.append((request.operation_key, result_json(None)))

    def absorb(self, other: "BatchWrites") -> None:
        """Take in what `other` collected (the movements of one item, applied all or
        none)."""
        assert not other.changes
        self.entries.extend(other.entries)
        self.opened.extend(other.opened)
        self.finished.extend(other.finished)
        self.touched.update(other.touched)
        self.results.extend(other.results)
        self.outgoing.extend(other.outgoing)
        self.raises.extend(other.raises)

    def change(
        self,
        operation_key: str,
        after: HoldAfter,
        event: str | None,
        followups: list[PostingRequest],
    ) -> None:
        """Record an applied change of a hold: the row it leaves, its event, what the
        destination owes (across shards), and its result under its key."""
        earlier = self.changes.get(after.transfer_id)
        if earlier is not None:
            after = replace(after, captures=(*earlier.captures, *after.captures))
        self.changes[after.transfer_id] = after
        if event is not None:
            self.change_events.append((after.transfer_id, event))
        self.followups.extend(followups)
        self.results.append((operation_key, result_json(None)))

    def refuse(self, operation_key: str, error: LedgerError) -> None:
        """Record a refusal, so a repeat of the operation is refused the same way."""
        self.results.append((operation_key, result_json(error)))

    async def flush(
        self, conn: Connection, accounts: dict[str, AccountState], *, shard: int
    ) -> tuple[dict[str, datetime], dict[str, TransferRecord]]:
        """Write everything in one round trip; returns each new transfer's creation time,
        and each changed hold as the batch left it."""
        changes = list(self.changes.values())
        followups = self.followups
        touched = [accounts[a] for a in sorted(self.touched)]
        entries = [e for _, e in self.entries]
        opened, finished = self.opened, self.finished
        endings = [finishing(r.movement) for r in finished]
        rows = await conn.fetch(
            _WRITE_BATCH,
            [e.account_id for e in entries],
            [e.version_after for e in entries],
            [t for t, _ in self.entries],
            [accounts[e.account_id].currency for e in entries],
            [str(e.layer) for e in entries],
            [str(e.side) for e in entries],
            [e.amount for e in entries],
            # Balances and totals are numeric columns, sent as text: a system account's
            # may pass the bigint range (see migration 0002).
            [str(e.posted_after) for e in entries],
            [str(e.available_after) for e in entries],
            [a.id for a in touched],
            [str(a.debits_posted) for a in touched],
            [str(a.credits_posted) for a in touched],
            [str(a.debits_pending) for a in touched],
            [str(a.credits_pending) for a in touched],
            [a.version for a in touched],
            [r.transfer_id for r in opened],
            [r.tenant_id for r in opened],
            [r.debit_account_id for r in opened],
            [r.credit_account_id for r in opened],
            [r.amount for r in opened],
            [r.currency for r in opened],
            [r.movement in _CROSS_SHARD for r in opened],
            [r.source_shard for r in opened],
            [r.destination_shard for r in opened],
            [json.dumps(r.metadata) for r in opened],
            [r.transfer_id for r in finished],
            [str(status) for status, _ in endings],
            [r.failure_code for r in finished],
            [k for k, _ in self.results],
            [r for _, r in self.results],
            [str(opening_status(r.movement)) for r in opened],
            [_opening_step(r) for r in opened],
            [str(step) for _, step in endings],
            [str(e.pending_after) for e in entries],
            *_events(opened, finished, endings),
            shard,
            [r.expires_at for r in opened],
            [r.workflow_id for r in opened],
            [r.available_on for r in opened],
            [_outbox_kind(r) for r in opened],
            [c.transfer_id for c in changes],
            [str(c.status) for c in changes],
            [c.amount for c in changes],
            [c.captured for c in changes],
            [json.dumps(list(c.captures)) for c in changes],
            [t for t, _ in self.change_events],
            [e for _, e in self.change_events],
            [r.operation_key for r in followups],
            [r.transfer_id for r in followups],
            [r.tenant_id for r in followups],
            [str(r.movement) for r in followups],
            [r.debit_account_id for r in followups],
            [r.credit_account_id for r in followups],
            [r.amount for r in followups],
            [r.currency for r in followups],
            [r.source_shard for r in followups],
            [r.destination_shard for r in followups],
            [a for a, _, _ in self.outgoing],
            [t for _, t, _ in self.outgoing],
            [amount for _, _, amount in self.outgoing],
            [c.failure_code for c in changes],
            [c.step for c in changes],
            [c.transfer_id for c in changes if c.to_saga],
            str(SettlementKind.TRANSFER),
            [k for k, _ in self.decided_under],
            [t for _, t in self.decided_under],
        )
        if self.raises:
            # Rare (an increment across shards), so a round trip of its own.
            await _reserve_raises(conn, self.raises)
        created = {r["id"]: r["created_at"] for r in rows if r["changed"] is None}
        changed = {
            r["id"]: transfer_from_json(r["changed"]) for r in rows if r["changed"] is not None
        }
        return created, changed


async def _reserve_raises(conn: Connection, raises: list[PostingRequest]) -> None:
    """Record the raises reserved in this batch under their increments' keys on the
    source, until the source decided (`shards.raises`)."""
    await conn.execute(
        "insert into raise_reservations (operation_key, transfer_id, tenant_id,"
        " debit_account_id, credit_account_id, amount, currency, source_shard,"
        " destination_shard)"
        " select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"
        " $6::bigint[], $7::text[], $8::int[], $9::int[])",
        [increment_key(r.operation_key) for r in raises],
        [r.transfer_id for r in raises],
        [r.tenant_id for r in raises],
        [r.debit_account_id for r in raises],
        [r.credit_account_id for r in raises],
        [r.amount for r in raises],
        [r.currency for r in raises],
        [r.source_shard for r in raises],
        [r.destination_shard for r in raises],
    )
