"""`ledgerflow keys`: issue, list and revoke the API keys of a tenant."""

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.markup import escape

from ledger.errors import LedgerError
from ledger.tenants import check_tenant_name
from ledgerflow.cli_support import (
    DataDir,
    JsonFlag,
    console,
    endpoints_for,
    errors,
    fail,
    print_json,
    print_table,
    run_async,
    settings_for,
)
from shards.api_keys import ApiKeyCatalog, ApiKeyRecord
from shards.cluster import ShardCluster

T = TypeVar("T")

keys_app = typer.Typer(help="API keys.", no_args_is_help=True)


def _on_catalog(data_dir: DataDir, work: Callable[[ApiKeyCatalog], Awaitable[T]]) -> T:
    """Run `work` on the cluster's API key catalog."""
    found = endpoints_for(settings_for(data_dir))

    async def main() -> T:
        cluster = await ShardCluster.connect(found.shard_dsns, pool_size_max=1)
        try:
            return await work(ApiKeyCatalog(cluster))
        finally:
            await cluster.close()

    return run_async(main())


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="The tenant the key acts for.")],
    data_dir: DataDir = None,
) -> None:
    """Create an API key for a tenant and print it once; only its hash is stored."""
    try:
        check_tenant_name(tenant)
    except LedgerError as error:
        raise fail(error.message) from error

    async def work(catalog: ApiKeyCatalog) -> tuple[str, str]:
        return await catalog.create(tenant_id=tenant)

    key_id, secret = _on_catalog(data_dir, work)
    errors.print(escape(f"created {key_id} for tenant '{tenant}'; it is shown only this once:"))
    print(secret)  # the one place a secret is printed: on stdout, for scripts


@keys_app.command("list")
def keys_list(
    tenant: Annotated[str, typer.Option(help="The tenant whose keys to list.")],
    as_json: JsonFlag = False,
    data_dir: DataDir = None,
) -> None:
    """List a tenant's API keys (ids and dates; secrets are never stored)."""

    async def work(catalog: ApiKeyCatalog) -> list[ApiKeyRecord]:
        return await catalog.list(tenant_id=tenant)

    keys = _on_catalog(data_dir, work)
    if as_json:
        print_json(keys)
        return
    print_table(
        f"API keys of tenant {tenant}",
        ("key", "created", "revoked"),
        (
            (
                key.id,
                key.created_at.isoformat(timespec="seconds"),
                key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else "",
            )
            for key in keys
        ),
    )


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (key_...), not its secret.")],
    data_dir: DataDir = None,
) -> None:
    """Revoke an API key. API processes refuse it within a minute (their key cache);
    exit 1 when there is no such key."""

    async def work(catalog: ApiKeyCatalog) -> ApiKeyRecord | None:
        return await catalog.revoke(key_id)

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
