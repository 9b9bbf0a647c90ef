"""The saga outbox on a source shard: claiming reserved transfers for a settlement workflow.

The reserve writes an outbox row in its own transaction (`shards.posting`), and the post or
release finishes it. In between, the row records which workflow settles the transfer.
A row is claimed at most once (`workflow_id is null` is part of the claim), and the claim
and `transfers.workflow_id` change in one transaction, so a transfer never has two sagas.

The hand-over (`workflows.handover`), the sweep (`workflows.sweep`) and the saga's credit
step (`workflows.settlement`) read and write the outbox through these functions only. Each
takes the shard and draws its own connection, waited for at most `POOL_ACQUIRE_TIMEOUT_S`.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from ledger.transfers import (
    EventType,
    SagaStep,
    SettlementKind,
    TransferStatus,
    check_step,
    check_transition,
)
from shards.cluster import SHARD_FAILURES, Shard
from shards.db import DatabaseError, Record
from shards.events import reported

OUTBOX_FAILURES: tuple[type[Exception], ...] = (*SHARD_FAILURES, DatabaseError)
"""What a function here raises when the shard failed or refused the statement; it wrote
nothing. A hand-over that meets one leaves its reserved transfers to the sweep: their rows
are durable either way."""

_ROW_COLUMNS = (
    "transfer_id, tenant_id, debit_account_id, credit_account_id, amount, currency,"
    " source_shard, destination_shard, workflow_id, kind"
)


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One open hand-over: a reserved transfer and the workflow recorded for it, if any."""

    transfer_id: str
    tenant_id: str
    debit_account_id: str
    credit_account_id: str
    amount: int
    currency: str
    source_shard: int
    destination_shard: int
    workflow_id: str | None
    kind: SettlementKind = SettlementKind.TRANSFER
    """What the saga makes of the transfer."""


def _row(record: Record) -> OutboxRow:
    return OutboxRow(**{**dict(record), "kind": SettlementKind(record["kind"])})


_CLAIM = f"""
with locked as (
    select transfer_id from saga_outbox
    where transfer_id = any($1::text[]) and workflow_id is not distinct from $2
      and finished_at is null
    order by transfer_id for update
), named as (
    select coalesce($3, $4 || min(transfer_id)) as workflow_id from locked
    having count(*) > 0
), claimed as (
    update saga_outbox o set workflow_id = n.workflow_id, claimed_at = now()
    from locked l, named n where o.transfer_id = l.transfer_id
    returning {", ".join(f"o.{c.strip()}" for c in _ROW_COLUMNS.split(","))}
), marked as (
    update transfers t set workflow_id = n.workflow_id, updated_at = now()
    from locked l, named n where t.id = l.transfer_id
)
select * from claimed order by transfer_id
"""


async def claim(
    shard: Shard,
    *,
    transfer_ids: Sequence[str],
    workflow_id_prefix: str = "",
    workflow_id: str | None = None,
    recorded_workflow_id: str | None = None,
) -> tuple[str | None, list[OutboxRow]]:
    """Claim the open rows among `transfer_ids` still recorded under `recorded_workflow_id`.

    With `recorded_workflow_id=None` this claims unclaimed rows (the hand-over); with an id
    it re-claims rows of a workflow that closed early. The claimed rows are settled by
    `workflow_id` if given, else by `workflow_id_prefix` followed by the first claimed
    transfer id: that id was never claimed before, so the workflow id is new.

    One statement, so one round trip: it locks the rows in id order (waiting for, then
    skipping, rows another claimer takes), names the workflow, and records it on the
    outbox rows and the transfers. A statement is its own transaction (read committed);
    an explicit BEGIN and COMMIT would only add two round trips to every hand-over.

    Returns (workflow id, claimed rows), or (None, []) when nothing was left to claim.
    Raises:
        asyncpg.PostgresError: the shard refused the statement; nothing was claimed.
        `shards.cluster.SHARD_FAILURES`: the shard failed; nothing was claimed.
    """
    assert workflow_id is not None or workflow_id_prefix
    async with shard.connection() as conn:
        records = await conn.fetch(
            _CLAIM, list(transfer_ids), recorded_workflow_id, workflow_id, workflow_id_prefix
        )
    rows = [_row(r) for r in records]
    if not rows:
        return None, []
    claimed_id = rows[0].workflow_id
    assert claimed_id is not None
    assert all(r.workflow_id == claimed_id for r in rows)
    return claimed_id, rows


async def recorded_workflows(shard: Shard, transfer_ids: Sequence[str]) -> dict[str, str | None]:
    """For each open row among `transfer_ids`, the workflow recorded for it (None: unclaimed).

    Finished rows are left out: nothing is left to wait for.

    Raises:
        asyncpg.PostgresError, `shards.cluster.SHARD_FAILURES`: the shard failed.
    """
    async with shard.connection() as conn:
        rows = await conn.fetch(
            "select transfer_id, workflow_id from saga_outbox"
            " where transfer_id = any($1::text[]) and finished_at is null",
            list(transfer_ids),
        )
    return {r["transfer_id"]: r["workflow_id"] for r in rows}


@dataclass(frozen=True, slots=True)
class StaleRows:
    """The open rows a sweep looks at on one shard, read apart so neither crowds out the
    other."""

    unclaimed: list[OutboxRow]
    """Rows no saga was started for, created more than the threshold ago, oldest first."""
    claimed: list[OutboxRow]
    """Rows whose workflow was neither created nor checked (`mark_checked`) within the
    threshold, those checked longest ago first."""


_STALE_UNCLAIMED = f"""
select {_ROW_COLUMNS} from saga_outbox
where finished_at is null and workflow_id is null
  and created_at < now() - make_interval(secs => $1)
order by created_at limit $2
"""

_STALE_CLAIMED = f"""
select {_ROW_COLUMNS} from saga_outbox
where finished_at is null and workflow_id is not null
  and coalesce(swept_at, created_at) < now() - make_interval(secs => $1)
order by coalesce(swept_at, created_at) limit $2
"""


async def stale_rows(shard: Shard, *, older_than_s: float, limit: int) -> StaleRows:
    """Open rows older than `older_than_s` seconds, up to `limit` unclaimed and `limit`
    claimed ones.

    However many sagas are running, they cannot push a row no saga was started for out of
    the window. Rows whose workflow was just checked go to the back of the line, so rows of
    sagas that run for long (a post retrying while a shard is down) cannot fill the window
    sweep after sweep: every claimed row is checked in turn.

    Raises:
        asyncpg.PostgresError, `shards.cluster.SHARD_FAILURES`: the shard failed.
    """
    async with shard.connection() as conn:
        unclaimed = await conn.fetch(_STALE_UNCLAIMED, older_than_s, limit)
        claimed = await conn.fetch(_STALE_CLAIMED, older_than_s, limit)
    return StaleRows([_row(r) for r in unclaimed], [_row(r) for r in claimed])


async def mark_checked(shard: Shard, workflow_ids: Sequence[str]) -> None:
    """Record that the sweep checked the workflows of these open rows just now.

    Raises:
        asyncpg.PostgresError, `shards.cluster.SHARD_FAILURES`: the shard failed.
    """
    async with shard.connection() as conn:
        await conn.execute(
            "update saga_outbox set swept_at = now()"
            " where workflow_id = any($1::text[]) and finished_at is null",
            list(workflow_ids),
        )


async def rows_of_workflow(shard: Shard, workflow_id: str) -> list[OutboxRow]:
    """The open rows recorded under one workflow, in transfer id order.

    Raises:
        asyncpg.PostgresError, `shards.cluster.SHARD_FAILURES`: the shard failed.
    """
    async with shard.connection() as conn:
        rows = await conn.fetch(
            f"select {_ROW_COLUMNS} from saga_outbox where workflow_id = $1"
            " and finished_at is null order by transfer_id",
            workflow_id,
        )
    return [_row(r) for r in rows]


async def mark_credited(source: Shard, transfer_ids: Sequence[str]) -> None:
    """Record on the source shard that the destination credited these transfers.

    Only a transfer still at `reserved` moves, so a late retry never rewinds a later step.

    Raises:
        asyncpg.PostgresError, `shards.cluster.SHARD_FAILURES`: the shard failed.
    """
    async with source.connection() as conn:
        await conn.execute(
            "update transfers set saga_step = $2, updated_at = now()"
            " where id = any($1::text[]) and status = $3 and saga_step = $4",
            list(transfer_ids),
            str(check_step(SagaStep.RESERVED, SagaStep.CREDITED)),
            str(TransferStatus.PROCESSING),
            str(SagaStep.RESERVED),
        )


_OPEN_HOLDS = reported(
    """update transfers t set status = $2, saga_step = $3, updated_at = clock_timestamp()
    where t.id = any($1::text[]) and t.status = $4 and t.saga_step = $5
    returning t.*""",
    event_type="$6",
    shard="$7",
)


async def open_holds(source: Shard, transfer_ids: Sequence[str]) -> None:
    """Open the holds whose destinations show their credits pending: `processing` becomes
    `pending` (capturable from now), the saga step `held`, each reported `transfer.pending`,
    and their outbox rows are finished, in one transaction.

    Only a hold still `processing` at `credited` moves, so a retry changes nothing.

    Raises:
        asyncpg.PostgresError, `shards.cluster.SHARD_FAILURES`: the shard failed.
    """
    async with source.connection() as conn, conn.transaction(isolation="read_committed"):
        await conn.execute(
            _OPEN_HOLDS,
            list(transfer_ids),
            str(check_transition(TransferStatus.PROCESSING, TransferStatus.PENDING)),
            str(check_step(SagaStep.CREDITED, SagaStep.HELD)),
            str(TransferStatus.PROCESSING),
            str(SagaStep.CREDITED),
            str(EventType.TRANSFER_PENDING),
            source.index,
        )
        await conn.execute(
            "update saga_outbox set finished_at = now()"
            " where transfer_id = any($1::text[]) and finished_at is null",
            list(transfer_ids),
        )
