"""The saga outbox on a source shard: claiming reserved transfers for a settlement workflow.

The reserve writes an outbox row in its own transaction (`shards.posting`), and the post or
release finishes it. In between, the row records which workflow settles the transfer.
A row is claimed at most once (`workflow_id is null` is part of the claim), and the claim
and `transfers.workflow_id` change in one transaction, so a transfer never has two sagas.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from ledger.transfers import SagaStep, TransferStatus, check_step
from shards.db import Connection, Record
from workflows.models import SettlementTransfer

_ROW_COLUMNS = (
    "transfer_id, tenant_id, debit_account_id, credit_account_id, amount, currency,"
    " source_shard, destination_shard, workflow_id"
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

    def settlement_transfer(self) -> SettlementTransfer:
        """The transfer as a saga input carries it."""
        return SettlementTransfer(
            id=self.transfer_id,
            tenant_id=self.tenant_id,
            debit_account_id=self.debit_account_id,
            credit_account_id=self.credit_account_id,
            amount=self.amount,
            destination_shard=self.destination_shard,
        )


def _row(record: Record) -> OutboxRow:
    return OutboxRow(**dict(record))


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
    conn: Connection,
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
        asyncpg.PostgresError, OSError: the shard failed; nothing was claimed.
    """
    assert workflow_id is not None or workflow_id_prefix
    rows = [
        _row(r)
        for r in await conn.fetch(
            _CLAIM, list(transfer_ids), recorded_workflow_id, workflow_id, workflow_id_prefix
        )
    ]
    if not rows:
        return None, []
    claimed_id = rows[0].workflow_id
    assert claimed_id is not None
    assert all(r.workflow_id == claimed_id for r in rows)
    return claimed_id, rows


async def recorded_workflows(
    conn: Connection, transfer_ids: Sequence[str]
) -> dict[str, str | None]:
    """For each open row among `transfer_ids`, the workflow recorded for it (None: unclaimed).

    Finished rows are left out: nothing is left to wait for.
    """
    rows = await conn.fetch(
        "select transfer_id, workflow_id from saga_outbox"
        " where transfer_id = any($1::text[]) and finished_at is null",
        list(transfer_ids),
    )
    return {r["transfer_id"]: r["workflow_id"] for r in rows}


async def stale_unclaimed_rows(
    conn: Connection, *, older_than_s: float, limit: int
) -> list[OutboxRow]:
    """Unclaimed open rows created more than `older_than_s` seconds ago, oldest first.

    Claimed rows are read apart (`stale_claimed_rows`): however many sagas are running, they
    cannot push a row no saga was started for out of this window.
    """
    rows = await conn.fetch(
        f"select {_ROW_COLUMNS} from saga_outbox"
        " where finished_at is null and workflow_id is null"
        " and created_at < now() - make_interval(secs => $1) order by created_at limit $2",
        older_than_s,
        limit,
    )
    return [_row(r) for r in rows]


async def stale_claimed_rows(
    conn: Connection, *, older_than_s: float, limit: int
) -> list[OutboxRow]:
    """Claimed open rows neither created nor checked (`mark_checked`) in the last
    `older_than_s` seconds, those checked longest ago first.

    Rows whose workflow was just checked go to the back of the line, so rows of sagas that
    run for long (a post retrying while a shard is down) cannot fill the window sweep after
    sweep: every claimed row is checked in turn.
    """
    rows = await conn.fetch(
        f"select {_ROW_COLUMNS} from saga_outbox"
        " where finished_at is null and workflow_id is not null"
        " and coalesce(swept_at, created_at) < now() - make_interval(secs => $1)"
        " order by coalesce(swept_at, created_at) limit $2",
        older_than_s,
        limit,
    )
    return [_row(r) for r in rows]


async def mark_checked(conn: Connection, workflow_ids: Sequence[str]) -> None:
    """Record that the sweep checked the workflows of these open rows just now."""
    await conn.execute(
        "update saga_outbox set swept_at = now()"
        " where workflow_id = any($1::text[]) and finished_at is null",
        list(workflow_ids),
    )


async def rows_of_workflow(conn: Connection, workflow_id: str) -> list[OutboxRow]:
    """The open rows recorded under one workflow, in transfer id order."""
    rows = await conn.fetch(
        f"select {_ROW_COLUMNS} from saga_outbox where workflow_id = $1"
        " and finished_at is null order by transfer_id",
        workflow_id,
    )
    return [_row(r) for r in rows]


async def mark_credited(conn: Connection, transfer_ids: Sequence[str]) -> None:
    """Record on the source shard that the destination credited these transfers.

    Only a transfer still at `reserved` moves, so a late retry never rewinds a later step.
    """
    await conn.execute(
        "update transfers set saga_step = $2, updated_at = now()"
        " where id = any($1::text[]) and status = $3 and saga_step = $4",
        list(transfer_ids),
        str(check_step(SagaStep.RESERVED, SagaStep.CREDITED)),
        str(TransferStatus.PROCESSING),
        str(SagaStep.RESERVED),
    )
