"""Transfer and entry reads."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from ledger.accounts import Layer, Side
from ledger.limits import STUCK_TRANSFERS_LIMIT_MAX
from ledger.transfers import SagaStep, TransferStatus
from shards.cluster import Shard, ShardCluster, oldest_first
from shards.db import Connection
from shards.pages import fetch_page

_TRANSFER_COLUMNS = (
    "id, tenant_id, debit_account_id, credit_account_id, amount, currency, status,"
    " cross_shard, source_shard, destination_shard, saga_step, workflow_id, failure_code,"
    " metadata, created_at, updated_at, expires_at, captured_amount, captures, available_on,"
    " available_at"
)


@dataclass(frozen=True, slots=True)
class TransferRecord:
    """A transfer as stored on its source shard."""

    id: str
    tenant_id: str
    debit_account_id: str
    credit_account_id: str
    amount: int
    currency: str
    status: TransferStatus
    cross_shard: bool
    source_shard: int
    destination_shard: int
    saga_step: SagaStep | None
    workflow_id: str | None
    failure_code: str | None
    metadata: dict[str, str]
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None = None
    """Set for a hold only."""
    captured_amount: int = 0
    captures: tuple[dict[str, object], ...] = ()
    available_on: datetime | None = None
    """Set for a delayed credit only; `available_at` once it became available."""
    available_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class EntryRecord:
    """An immutable journal line."""

    account_id: str
    version: int
    transfer_id: str
    currency: str
    layer: Layer
    side: Side
    amount: int
    posted_after: int
    available_after: int
    created_at: datetime


_FIELDS = frozenset(TransferRecord.__dataclass_fields__)


def _transfer(row: asyncpg.Record) -> TransferRecord:
    return transfer_from_fields(dict(row))


def transfer_from_fields(fields: dict[str, Any]) -> TransferRecord:
    """A transfer from its row's columns (a record, or the row as jsonb)."""
    fields = {k: v for k, v in fields.items() if k in _FIELDS}
    fields["status"] = TransferStatus(fields["status"])
    fields["saga_step"] = None if fields["saga_step"] is None else SagaStep(fields["saga_step"])
    fields["captures"] = tuple(fields.get("captures") or ())
    return TransferRecord(**fields)


def transfer_from_json(data: dict[str, Any]) -> TransferRecord:
    """A transfer from its row as jsonb (`to_jsonb`), which keeps timestamps as text."""
    fields = dict(data)
    for column in ("created_at", "updated_at", "expires_at", "available_on", "available_at"):
        if fields.get(column) is not None:
            fields[column] = datetime.fromisoformat(fields[column])
    return transfer_from_fields(fields)


async def fetch_transfer(
    conn: Connection, *, tenant_id: str, transfer_id: str
) -> TransferRecord | None:
    """A tenant's transfer stored on this shard, or None."""
    row = await conn.fetchrow(
        f"select {_TRANSFER_COLUMNS} from transfers where id = $1 and tenant_id = $2",
        transfer_id,
        tenant_id,
    )
    return None if row is None else _transfer(row)


async def fetch_transfers(conn: Connection, transfer_ids: list[str]) -> list[TransferRecord]:
    """Transfers by id on this shard, whatever their tenant: the caller checks the tenant
    (an atomic batch reads its legs back by id)."""
    rows = await conn.fetch(
        f"select {_TRANSFER_COLUMNS} from transfers where id = any($1::text[])", transfer_ids
    )
    return [_transfer(r) for r in rows]


async def list_transfers(
    conn: Connection,
    *,
    tenant_id: str,
    after_id: str | None,
    before_id: str | None,
    limit: int,
) -> list[TransferRecord]:
    """A page of the tenant's transfers on one shard, newest first (see `list_accounts`)."""
    rows = await fetch_page(
        conn,
        select=f"select {_TRANSFER_COLUMNS} from transfers where tenant_id = $1",
        key="id",
        owner=tenant_id,
        after=after_id,
        before=before_id,
        limit=limit,
    )
    return [_transfer(r) for r in rows]


async def list_stuck_transfers(
    conn: Connection, *, older_than_s: float, limit: int
) -> list[TransferRecord]:
    """Cross-shard transfers still processing after `older_than_s` seconds."""
    rows = await conn.fetch(
        # The status is spelled into the statement, not bound, so that the partial index on
        # unfinished transfers serves every plan of it.
        f"select {_TRANSFER_COLUMNS} from transfers where status = '{TransferStatus.PROCESSING}'"
        " and created_at < now() - make_interval(secs => $1) order by created_at limit $2",
        older_than_s,
        limit,
    )
    return [_transfer(r) for r in rows]


async def find_stuck_transfers(
    cluster: ShardCluster, *, older_than_s: float, limit: int = STUCK_TRANSFERS_LIMIT_MAX
) -> list[TransferRecord]:
    """Cross-shard transfers still `processing` after `older_than_s` on any shard, oldest
    first (`ledgerflow transfers stuck`).

    Each record names its saga step and the workflow recorded to settle it (None when no
    saga claimed it yet: the sweeper will). Find the saga in the Temporal UI with
    `LedgerflowTransferIds = '<id>'`.

    Raises:
        asyncpg.PostgresError, OSError: a shard failed.
    """
    assert older_than_s >= 0
    assert 0 < limit <= STUCK_TRANSFERS_LIMIT_MAX

    async def on_shard(shard: Shard) -> list[TransferRecord]:
        async with shard.connection() as conn:
            return await list_stuck_transfers(conn, older_than_s=older_than_s, limit=limit)

    return await oldest_first(cluster, on_shard, key=lambda r: (r.created_at, r.id), limit=limit)


async def list_entries(
    conn: Connection,
    *,
    account_id: str,
    after_version: int | None,
    before_version: int | None,
    limit: int,
) -> list[EntryRecord]:
    """A page of an account's entries, newest first (see `list_accounts` for the cursor)."""
    columns = (
        "account_id, version, transfer_id, currency, layer, side, amount, posted_after,"
        " available_after, created_at"
    )
    rows = await fetch_page(
        conn,
        select=f"select {columns} from entries where account_id = $1",
        key="version",
        owner=account_id,
        after=after_version,
        before=before_version,
        limit=limit,
    )
    return [
        EntryRecord(
            account_id=r["account_id"],
            version=r["version"],
            transfer_id=r["transfer_id"],
            currency=r["currency"],
            layer=Layer(r["layer"]),
            side=Side(r["side"]),
            amount=r["amount"],
            posted_after=r["posted_after"],
            available_after=r["available_after"],
            created_at=r["created_at"],
        )
        for r in rows
    ]
