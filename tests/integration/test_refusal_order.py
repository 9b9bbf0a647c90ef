"""Refusals answer in one fixed order (`ledger.posting.REFUSAL_ORDER`): the request's own
shape, existence and tenancy, account state, currency, limits and review, funds.

The precedence test starts from a request that breaks every rule, on both accounts, and
mends one rule at a time through HTTP, expecting the next code each time: through the
posting path with its routing and tenant visibility, not only the pure rules. It runs for
a transfer whose two accounts share a shard and for one across shards, as a single
request, as an item of a batch and as a leg of an atomic batch.
"""

import httpx
import pytest

from shards.cluster import ShardCluster
from tests.conftest import other_tenant
from tests.integration.cross_shard import account_on, settled
from tests.integration.helpers import balance, post_keyed

PAYER_SHARD = 0


async def _open(api: httpx.AsyncClient, shard: int, **fields: object) -> dict:
    """An account of `api`'s tenant on `shard`, in EUR, with `fields` set after opening."""
    account = await account_on(api, shard, currency="EUR", **fields.pop("opening", {}))  # type: ignore[arg-type]
    if "limits" in fields:
        response = await post_keyed(api, f"/v1/accounts/{account['id']}/limits", fields["limits"])
        assert response.status_code == 200, response.text
    if fields.get("frozen"):
        response = await post_keyed(api, f"/v1/accounts/{account['id']}/freeze")
        assert response.status_code == 200, response.text
    return account


async def _send(api: httpx.AsyncClient, way: str, body: dict) -> tuple[int, str | None, str | None]:
    """(status, error code, error param) of `body` sent as `way` goes: a single request, an
    item of a batch, or a leg of an atomic batch."""
    if way == "single":
        response = await post_keyed(api, "/v1/transfers", body)
        error = response.json().get("error") if response.status_code >= 400 else None
        return response.status_code, error and error["code"], error and error["param"]
    response = await post_keyed(
        api, "/v1/transfers/batch", {"atomic": way == "atomic", "transfers": [body]}
    )
    if response.status_code != 200:
        error = response.json()["error"]
        return response.status_code, error["code"], error["param"]
    (item,) = response.json()["data"]
    error = item["error"]
    return item["status"], error and error["code"], error and error["param"]


@pytest.mark.parametrize("across", [False, True], ids=["one-shard", "across-shards"])
@pytest.mark.parametrize("way", ["single", "batch", "atomic"])
async def test_the_first_broken_rule_answers_one_rule_mended_at_a_time(
    api: httpx.AsyncClient, api_url: str, cluster: ShardCluster, books: None, way: str, across: bool
) -> None:
    """A request that breaks every rule is refused for its shape; each rule mended in turn
    reveals the next one, in the documented order, and the mended request moves money.
    Another tenant's accounts (one with a review limit below the amount) are exactly
    missing ones: they reveal neither their limits nor their state."""
    payee_shard = (PAYER_SHARD + 1) % len(cluster.shards) if across else PAYER_SHARD
    async with other_tenant(api_url, cluster) as other:
        foreign_payer = await _open(other, PAYER_SHARD, limits={"review_above": 10}, frozen=True)
        foreign_payee = await _open(other, payee_shard, limits={"max_balance": 1})
    payer = await _open(api, PAYER_SHARD, limits={"review_above": 10}, frozen=True)
    payee = await _open(api, payee_shard, limits={"max_balance": 50}, frozen=True)
    funding = await _open(api, PAYER_SHARD, opening={"allow_overdraft": True})
    # A hold is what review cannot hold (`review_not_supported`); an atomic leg is refused
    # above the limit whatever it is, so it stays a plain transfer.
    shape = {} if way == "atomic" else {"pending": True, "expires_in": 3600}
    body = {
        "debit_account_id": foreign_payer["id"],
        "credit_account_id": foreign_payee["id"],
        "amount": 100,
        "currency": "XXX",
        **shape,
    }

    async def mend(*changes: object) -> None:
        for change in changes:
            if isinstance(change, dict):
                body.update(change)
            else:
                path, payload = change  # type: ignore[misc]
                response = await post_keyed(api, path, payload)
                assert response.status_code in (200, 201), response.text

    ladder: list[tuple[tuple[object, ...], tuple[int, str, str]]] = [
        ((), (400, "currency_unknown", "currency")),
        (({"currency": "USD"},), (404, "account_not_found", "debit_account_id")),
        (({"debit_account_id": payer["id"]},), (404, "account_not_found", "credit_account_id")),
        (({"credit_account_id": payee["id"]},), (409, "account_frozen", "debit_account_id")),
        (
            ((f"/v1/accounts/{payer['id']}/unfreeze", None),),
            (409, "account_frozen", "credit_account_id"),
        ),
        (
            ((f"/v1/accounts/{payee['id']}/unfreeze", None),),
            (400, "currency_mismatch", "debit_account_id"),
        ),
        (({"currency": "EUR"},), (400, "review_not_supported", "amount")),
        (((f"/v1/accounts/{payer['id']}/limits", {}),), (409, "balance_limit_exceeded", "amount")),
        (((f"/v1/accounts/{payee['id']}/limits", {}),), (402, "insufficient_funds", "amount")),
    ]
    seen = []
    for changes, expected in ladder:
        await mend(*changes)
        status, code, param = await _send(api, way, dict(body))
        seen.append((status, code, param and param.rsplit(".", 1)[-1]))
        assert seen[-1] == expected, f"after {len(seen) - 1} mends: {seen}"
    untouched = await balance(api, payer["id"])
    assert (untouched["posted"], untouched["held"]) == (0, 0), "a refusal moved money"
    funded = await post_keyed(
        api,
        "/v1/transfers",
        {
            "debit_account_id": funding["id"],
            "credit_account_id": payer["id"],
            "amount": 1_000,
            "currency": "EUR",
        },
    )
    assert funded.status_code == 201, funded.text
    status, code, _ = await _send(api, way, dict(body))
    assert (status, code) in ((201, None), (202, None)), (status, code)
    await settled(api)
    moved = await balance(api, payer["id"])
    assert moved["available"] == 900, moved
