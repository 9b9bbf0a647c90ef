"""`ledgerflow keys create | list | revoke`: an operator issues and revokes keys, and a
revoked key is refused by the API."""

import json
import re

import httpx
from ulid import ULID

from tests.integration.helpers import run_ledgerflow


def _times_on_row(table: str, key_id: str) -> int:
    (row,) = [line for line in table.splitlines() if key_id in line]
    return len(re.findall(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", row))


async def test_a_revoked_key_is_refused_and_listed_as_revoked(
    shard_dsns: list[str], api_url: str
) -> None:
    """create prints the secret once (stdout) and the key id (stderr); list shows the key;
    revoke is idempotent and the API then answers 401 api_key_invalid; an unknown key id
    exits 1."""
    tenant = f"ops_{ULID()}"
    code, secret, created = await run_ledgerflow(shard_dsns, "keys", "create", "--tenant", tenant)
    assert code == 0, created
    secret = secret.strip()
    key_id = created.split()[1]
    assert key_id.startswith("key_")

    code, listed, _ = await run_ledgerflow(shard_dsns, "keys", "list", "--tenant", tenant)
    assert code == 0
    assert _times_on_row(listed, key_id) == 1, listed  # created, not revoked

    for _ in range(2):
        code, revoked, err = await run_ledgerflow(shard_dsns, "keys", "revoke", key_id)
        assert code == 0, err
        assert f"revoked {key_id} of tenant '{tenant}'" in revoked

    async with httpx.AsyncClient(
        base_url=api_url, headers={"Authorization": f"Bearer {secret}"}
    ) as client:
        refused = await client.get("/v1/accounts")
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
