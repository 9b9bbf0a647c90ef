"""`ledgerflow keys`: issue, list and revoke the API keys of a tenant."""

import re
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.markup import escape
from rich.table import Table

from api.auth import CATALOG_SHARD
from ledgerflow.cli_support import (
    DataDir,
    console,
    endpoints_for,
    errors,
    fail,
    run_async,
    settings_for,
)
from shards.api_keys import ApiKeyRecord, create_api_key, list_api_keys, revoke_api_key
from shards.cluster import ShardCluster
from shards.db import Connection

T = TypeVar("T")

keys_app = typer.Typer(help="API keys.", no_args_is_help=True)


def _on_catalog(data_dir: DataDir, work: Callable[[Connection], Awaitable[T]]) -> T:
    """Run `work` on a connection to the catalog shard, where the keys live."""
    found = endpoints_for(settings_for(data_dir))

    async def main() -> T:
        cluster = await ShardCluster.connect(found.shard_dsns, pool_size_max=1)
        try:
            async with cluster.shards[CATALOG_SHARD].pool.acquire() as conn:
                return await work(conn)
        finally:
            await cluster.close()

    return run_async(main())


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="The tenant the key acts for.")],
    data_dir: DataDir = None,
) -> None:
    """Create an API key for a tenant and print it once; only its hash is stored."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", tenant):
        raise fail("a tenant name is 1 to 64 letters, digits, '_', '.' or '-'")

    async def work(conn: Connection) -> tuple[str, str]:
        return await create_api_key(conn, tenant_id=tenant)

    key_id, secret = _on_catalog(data_dir, work)
    errors.print(escape(f"created {key_id} for tenant '{tenant}'; it is shown only this once:"))
    print(secret)  # the one place a secret is printed: on stdout, for scripts


@keys_app.command("list")
def keys_list(
    tenant: Annotated[str, typer.Option(help="The tenant whose keys to list.")],
    data_dir: DataDir = None,
) -> None:
    """List a tenant's API keys (ids and dates; secrets are never stored)."""

    async def work(conn: Connection) -> list[ApiKeyRecord]:
        return await list_api_keys(conn, tenant_id=tenant)

    table = Table(title=f"API keys of tenant {tenant}")
    for column in ("key", "created", "revoked"):
        table.add_column(column)
    for key in _on_catalog(data_dir, work):
        revoked = key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else ""
        table.add_row(key.id, key.created_at.isoformat(timespec="seconds"), revoked)
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (key_...), not its secret.")],
    data_dir: DataDir = None,
) -> None:
    """Revoke an API key. API processes refuse it within a minute (their key cache);
    exit 1 when there is no such key."""

    async def work(conn: Connection) -> ApiKeyRecord | None:
        return await revoke_api_key(conn, key_id)

    revoked = _on_catalog(data_dir, work)
    if revoked is None:
        raise fail(f"no such API key: {key_id}", code=1)
    assert revoked.revoked_at is not None
    console.print(
        escape(
            f"revoked {revoked.id} of tenant '{revoked.tenant_id}' at "
            f"{revoked.revoked_at.isoformat(timespec='seconds')}"
        )
    )
