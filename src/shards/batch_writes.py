"""Everything a posting batch writes, in one statement and one round trip.

The batch holds its account locks until it commits, and a shard's clearing account is in
every cross-shard batch, so each round trip inside the lock is paid by every waiting
batch. Entries, account totals, transfer rows, outbox rows and operation results are
therefore written by one static statement of data-modifying CTEs over arrays; an empty
array writes nothing.
"""

import json
from dataclasses import dataclass, field
from datetime import datetime

from ledger.accounts import AccountState
from ledger.errors import LedgerError
from ledger.posting import Entry, Movement
from ledger.transfers import SagaStep, finishing, opening_status
from shards.db import Connection
from shards.posting_types import PostingRequest, result_json

# Statuses and saga steps come from `ledger.transfers`, as parameters: the statement
# names none of them.
_OPENS_TRANSFER = frozenset({Movement.TRANSFER, Movement.RESERVE_FUNDS})
_FINISHES_TRANSFER = frozenset({Movement.POST_HOLD, Movement.RELEASE_HOLD})

_WRITE_BATCH = """
with new_entries as (
    insert into entries (account_id, version, transfer_id, currency, layer, side, amount,
                         posted_after, available_after)
    select a, v, t, c, l, s, amount, pa::numeric, aa::numeric
    from unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[],
                $6::text[], $7::bigint[], $8::text[], $9::text[])
         as u(a, v, t, c, l, s, amount, pa, aa)
), new_totals as (
    update accounts a set debits_posted = u.dp::numeric, credits_posted = u.cp::numeric,
                          debits_pending = u.dpe::numeric, credits_pending = u.cpe::numeric,
                          version = u.v
    from unnest($10::text[], $11::text[], $12::text[], $13::text[], $14::text[],
                $15::bigint[]) as u(id, dp, cp, dpe, cpe, v)
    where a.id = u.id
), opened as (
    insert into transfers (id, tenant_id, debit_account_id, credit_account_id, amount,
                           currency, status, cross_shard, source_shard, destination_shard,
                           saga_step, metadata)
    select u.id, u.tenant, u.debit, u.credit, u.amount, u.currency, u.status, u.is_cross,
           u.src, u.dst, u.step, u.metadata::jsonb
    from unnest($16::text[], $17::text[], $18::text[], $19::text[], $20::bigint[], $21::text[],
                $22::boolean[], $23::int[], $24::int[], $25::text[], $31::text[], $32::text[])
         as u(id, tenant, debit, credit, amount, currency, is_cross, src, dst, metadata, status,
              step)
    returning id, created_at
), new_holds as (
    insert into saga_outbox (transfer_id, tenant_id, debit_account_id, credit_account_id,
                             amount, currency, source_shard, destination_shard)
    select u.id, u.tenant, u.debit, u.credit, u.amount, u.currency, u.src, u.dst
    from unnest($16::text[], $17::text[], $18::text[], $19::text[], $20::bigint[], $21::text[],
                $22::boolean[], $23::int[], $24::int[])
         as u(id, tenant, debit, credit, amount, currency, is_cross, src, dst)
    where u.is_cross
), finished as (
    update transfers t set status = u.status, saga_step = u.step,
                           failure_code = u.failure_code, updated_at = now()
    from unnest($26::text[], $27::text[], $28::text[], $33::text[])
         as u(id, status, failure_code, step)
    where t.id = u.id
), finished_holds as (
    update saga_outbox set finished_at = now() where transfer_id = any($26::text[])
), results as (
    update operations o set result = u.result::jsonb
    from unnest($29::text[], $30::text[]) as u(key, result)
    where o.key = u.key
)
select id, created_at from opened
"""


def _opening_step(request: PostingRequest) -> str | None:
    """The saga step a new transfer starts at: `reserved` when a saga settles it."""
    return str(SagaStep.RESERVED) if request.movement is Movement.RESERVE_FUNDS else None


@dataclass(slots=True)
class BatchWrites:
    """What a batch writes, collected in memory while the domain rules run."""

    entries: list[tuple[str, Entry]] = field(default_factory=list)
    opened: list[PostingRequest] = field(default_factory=list)
    finished: list[PostingRequest] = field(default_factory=list)
    touched: set[str] = field(default_factory=set)
    results: list[tuple[str, str]] = field(default_factory=list)

    def add(self, request: PostingRequest, entries: list[Entry]) -> None:
        """Record an applied movement and its entries."""
        assert entries
        self.entries.extend((request.transfer_id, e) for e in entries)
        self.touched.update(e.account_id for e in entries)
        if request.movement in _OPENS_TRANSFER:
            self.opened.append(request)
        elif request.movement in _FINISHES_TRANSFER:
            self.finished.append(request)
        self.results.append((request.operation_key, result_json(None)))

    def refuse(self, request: PostingRequest, error: LedgerError) -> None:
        """Record a refusal, so a repeat of the operation is refused the same way."""
        self.results.append((request.operation_key, result_json(error)))

    async def flush(
        self, conn: Connection, accounts: dict[str, AccountState]
    ) -> dict[str, datetime]:
        """Write everything in one round trip; returns each new transfer's creation time."""
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
            [r.movement is Movement.RESERVE_FUNDS for r in opened],
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
        )
        return {row["id"]: row["created_at"] for row in rows}
