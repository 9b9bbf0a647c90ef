"""`ledgerflow keys create | list | revoke`: an operator issues and revokes keys, and a
revoked key is refused by the API."""

import asyncio
import json
import re
import time

import httpx
import pytest
from ulid import ULID

from api import auth
from tests.integration.helpers import run_ledgerflow

CACHE_S = 3.0


def _times_on_row(table: str, key_id: str) -> int:
    (row,) = [line for line in table.splitlines() if key_id in line]
    return len(re.findall(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", row))


async def test_a_revoked_key_is_refused_and_listed_as_revoked(
    shard_dsns: list[str], api_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """create prints the secret once (stdout) and the key id (stderr); list shows the key;
    the key works; revoke is idempotent, and an API process that had the key in its cache
    answers 401 api_key_invalid once the cache's time is up (60 s in production, 3 s here),
    not later; an unknown key id exits 1."""
    monkeypatch.setattr(auth, "AUTH_CACHE_TTL_S", CACHE_S)
    tenant = f"ops_{ULID()}"
    code, secret, created = await run_ledgerflow(shard_dsns, "keys", "create", "--tenant", tenant)
    assert code == 0, created
    secret = secret.strip()
    key_id = created.split()[1]
    assert key_id.startswith("key_")

    code, listed, _ = await run_ledgerflow(shard_dsns, "keys", "list", "--tenant", tenant)
    assert code == 0
    assert _times_on_row(listed, key_id) == 1, listed  # created, not revoked

    async with httpx.AsyncClient(
        base_url=api_url, headers={"Authorization": f"Bearer {secret}"}
    ) as client:
        assert (await client.get("/v1/accounts")).status_code == 200  # now in the cache
        for _ in range(2):
            code, revoked, err = await run_ledgerflow(shard_dsns, "keys", "revoke", key_id)
            assert code == 0, err
            assert f"revoked {key_id} of tenant '{tenant}'" in revoked
        revoked_at = time.monotonic()
        while (refused := await client.get("/v1/accounts")).status_code == 200:
            assert time.monotonic() - revoked_at < CACHE_S + 1, "the revoked key still works"
            await asyncio.sleep(0.1)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "api_key_invalid"

    code, listed, _ = await run_ledgerflow(shard_dsns, "keys", "list", "--tenant", tenant)
    assert _times_on_row(listed, key_id) == 2, listed  # created and revoked
    code, listed, err = await run_ledgerflow(
        shard_dsns, "keys", "list", "--tenant", tenant, "--json"
    )
    assert code == 0, err
    (key,) = json.loads(listed)
    assert (key["id"], key["tenant_id"]) == (key_id, tenant)
    assert key["created_at"] <= key["revoked_at"]  # ISO 8601 in one zone sorts as time

    code, _, err = await run_ledgerflow(shard_dsns, "keys", "revoke", "key_unknown")
    assert code == 1
    assert "no such API key: key_unknown" in err
