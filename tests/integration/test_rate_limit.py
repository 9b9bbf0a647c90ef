"""Rate limits per API key over real HTTP: one tenant over its limit is answered 429
`rate_limited` with `Retry-After`, while another tenant's requests still succeed."""

from collections.abc import AsyncIterator

import httpx
import pytest

from api.app import ApiConfig, create_app
from shards.cluster import ShardCluster
from tests.conftest import new_tenant_key, serve, stop

BURST = 5


@pytest.fixture
async def limited_api_url(shard_dsns: list[str]) -> AsyncIterator[str]:
    """An API process of its own whose keys may send `BURST` requests, then one every 10 s."""
    config = ApiConfig(
        shard_dsns=shard_dsns, pool_size_max=2, rate_limit_per_s=0.1, rate_limit_burst=BURST
    )
    server, task, url = await serve(create_app(config))
    yield url
    await stop(server, task)


async def test_one_tenant_over_its_limit_does_not_starve_another(
    limited_api_url: str, cluster: ShardCluster
) -> None:
    """The noisy tenant's first BURST requests pass, the rest are 429 in the error shape with
    the seconds to wait; the quiet tenant is served throughout, and unauthenticated requests
    are still 401 (a key is limited only once it is known)."""
    noisy, quiet = await new_tenant_key(cluster), await new_tenant_key(cluster)
    async with httpx.AsyncClient(base_url=limited_api_url, timeout=30) as client:
        statuses = []
        for _ in range(BURST + 3):
            response = await client.get(
                "/v1/accounts", headers={"Authorization": f"Bearer {noisy}"}
            )
            statuses.append(response.status_code)
        assert statuses == [200] * BURST + [429] * 3
        assert response.json()["error"] == {
            "type": "rate_limit_error",
            "code": "rate_limited",
            "message": response.json()["error"]["message"],
            "param": "Authorization",
        }
        assert 1 <= int(response.headers["Retry-After"]) <= 10

        for _ in range(BURST):
            served = await client.post(
                "/v1/accounts",
                json={"currency": "USD"},
                headers={"Authorization": f"Bearer {quiet}"},
            )
            assert served.status_code == 201, served.text
        missing = await client.get("/v1/accounts")
        assert missing.status_code == 401
        assert missing.json()["error"]["code"] == "api_key_missing"
