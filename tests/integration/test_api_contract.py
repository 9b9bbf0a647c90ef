"""The HTTP contract: errors in one shape, auth, tenancy, pagination, limits, metrics."""

import asyncio

import httpx
import pytest
from ulid import ULID

from shards.cluster import ShardCluster
from tests.conftest import other_tenant
from tests.integration.cross_shard import account_on, settled
from tests.integration.helpers import balance, create_account, transfer

pytestmark = pytest.mark.usefixtures("books")

MISSING_ACCOUNT = f"acct_{ULID()}"


def assert_error(
    response: httpx.Response, status: int, code: str, param: str | None = None
) -> None:
    """The documented error shape, with the expected status, code and param."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"type", "code", "message", "param"}
    assert error["code"] == code
    assert error["message"]
    if param is not None:
        assert error["param"] == param


async def test_health_needs_no_key(api_url: str) -> None:
    """/healthz and /readyz answer without an API key; /readyz names the shards down."""
    async with httpx.AsyncClient(base_url=api_url) as anonymous:
        assert (await anonymous.get("/healthz")).status_code == 200
        ready = await anonymous.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ok", "shards": 4, "shards_down": []}


async def test_missing_and_bad_keys_are_401(api_url: str) -> None:
    """No key, a malformed header and an unknown key are all 401 in the error shape."""
    async with httpx.AsyncClient(base_url=api_url) as anonymous:
        assert_error(await anonymous.get("/v1/accounts"), 401, "api_key_missing")
        bad_scheme = await anonymous.get("/v1/accounts", headers={"Authorization": "Basic x"})
        assert_error(bad_scheme, 401, "api_key_invalid")
        unknown = await anonymous.get(
            "/v1/accounts", headers={"Authorization": "Bearer lf_sk_nope"}
        )
        assert_error(unknown, 401, "api_key_invalid")


async def test_account_shape_and_lookup(api: httpx.AsyncClient) -> None:
    """A new account has the documented fields, zero balances and its shard."""
    account = await create_account(api, currency="EUR")
    assert account["object"] == "account"
    assert account["id"].startswith("acct_")
    assert account["normal_balance"] == "credit"
    assert account["allow_overdraft"] is False
    assert account["balance"] == {"posted": 0, "pending": 0, "held": 0, "available": 0}
    assert 0 <= account["shard"] < 4
    fetched = await api.get(f"/v1/accounts/{account['id']}")
    assert fetched.json() == account
    assert_error(await api.get(f"/v1/accounts/{MISSING_ACCOUNT}"), 404, "account_not_found")
    assert_error(await api.get("/v1/accounts/not-an-id"), 404, "account_not_found")


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"currency": "usd"}, "invalid_request", "currency"),
        ({"currency": "XXX"}, "currency_unknown", "currency"),
        ({"currency": "USD", "normal_balance": "sideways"}, "invalid_request", "normal_balance"),
        ({"currency": "USD", "metadata": {"k": "v" * 501}}, "metadata_invalid", None),
        (
            {"currency": "USD", "metadata": {f"k{i}": "v" for i in range(51)}},
            "metadata_invalid",
            None,
        ),
        ({"currency": "USD", "surprise": 1}, "invalid_request", "surprise"),
        # PostgreSQL stores no NUL in text or jsonb: refused up front, not a 500 from the shard.
        ({"currency": "USD", "metadata": {"k": "a\u0000b"}}, "metadata_invalid", "metadata.k"),
        ({"currency": "USD", "metadata": {"\u0000": "v"}}, "metadata_invalid", None),
        ({"currency": "USD", "allow_overdraft": 0}, "invalid_request", "allow_overdraft"),
        ({"currency": "USD", "allow_overdraft": "true"}, "invalid_request", "allow_overdraft"),
    ],
)
async def test_bad_account_requests_are_400(
    api: httpx.AsyncClient, body: dict, code: str, param: str | None
) -> None:
    """Invalid account bodies get 400 with the field named, and create nothing."""
    assert_error(await api.post("/v1/accounts", json=body), 400, code, param)
    assert (await api.get("/v1/accounts")).json()["data"] == []


async def test_bad_transfers_are_refused_and_move_nothing(api: httpx.AsyncClient) -> None:
    """Each kind of bad transfer gets its documented 4xx and leaves balances untouched."""
    funding = await create_account(api, allow_overdraft=True)
    usd = await create_account(api)
    base = {"debit_account_id": funding["id"], "credit_account_id": usd["id"], "currency": "USD"}
    cases = [
        ({**base, "amount": 0}, 400, "amount_invalid", "amount"),
        ({**base, "amount": -5}, 400, "amount_invalid", "amount"),
        ({**base, "amount": 2**63}, 400, "amount_invalid", "amount"),
        ({**base, "amount": 1.5}, 400, "amount_invalid", "amount"),
        ({**base, "amount": "100"}, 400, "amount_invalid", "amount"),
        ({**base, "amount": 1, "currency": "ZZZ"}, 400, "currency_unknown", "currency"),
        ({**base, "amount": 1, "credit_account_id": funding["id"]}, 400, "same_account", None),
        ({**base, "amount": 1, "debit_account_id": "acct_\u0000"}, 400, "invalid_request",
         "debit_account_id"),
        ({**base, "amount": 1, "credit_account_id": "acct_ x"}, 400, "invalid_request",
         "credit_account_id"),
        ({**base, "amount": 1, "metadata": {"note": "\u0000"}}, 400, "metadata_invalid",
         "metadata.note"),
    ]  # fmt: skip
    for body, status, code, param in cases:
        response = await api.post("/v1/transfers", json=body)
        assert_error(response, status, code, param)
    # On the funding account's shard, so the refusal is the posting's own, every run.
    eur = await account_on(api, funding["shard"], currency="EUR")
    mismatch = await transfer(api, funding["id"], eur["id"], 1)
    assert_error(mismatch, 400, "currency_mismatch", "credit_account_id")
    malformed = await api.post(
        "/v1/transfers", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert_error(malformed, 400, "invalid_request")
    assert await balance(api, usd["id"]) == {"posted": 0, "pending": 0, "held": 0, "available": 0}
    assert (await balance(api, funding["id"]))["posted"] == 0


async def test_bodies_over_one_mebibyte_are_413(api: httpx.AsyncClient) -> None:
    """Oversized bodies are refused before they are parsed."""
    response = await api.post(
        "/v1/accounts",
        content=b'{"currency": "USD", "metadata": {"k": "' + b"x" * (1024 * 1024) + b'"}}',
        headers={"Content-Type": "application/json"},
    )
    assert_error(response, 413, "body_too_large")


async def test_tenants_see_only_their_own(
    api: httpx.AsyncClient, api_url: str, cluster: ShardCluster, books: None
) -> None:
    """Another tenant's ids are 404 (never 403, never data) on every route: account reads,
    entries, freeze, unfreeze and close, both sides of a transfer on one shard and across
    two, and transfer reads; its lists show nothing of ours. Nothing moves."""
    funding = await account_on(api, 0, allow_overdraft=True)
    own = await account_on(api, 0)
    own_far = await account_on(api, 1)
    moved = await transfer(api, funding["id"], own["id"], 5)
    assert moved.status_code == 201, moved.text
    crossed = await transfer(api, funding["id"], own_far["id"], 7)
    assert crossed.status_code in (201, 202), crossed.text
    async with other_tenant(api_url, cluster) as other:
        for account in (own, own_far):
            account_id = account["id"]
            assert_error(await other.get(f"/v1/accounts/{account_id}"), 404, "account_not_found")
            entries = await other.get(f"/v1/accounts/{account_id}/entries")
            assert_error(entries, 404, "account_not_found")
            for action in ("freeze", "unfreeze", "close"):
                changed = await other.post(f"/v1/accounts/{account_id}/{action}")
                assert_error(changed, 404, "account_not_found")
        assert (await other.get("/v1/accounts")).json()["data"] == []
        assert (await other.get("/v1/transfers")).json()["data"] == []
        for transfer_id in (moved.json()["id"], crossed.json()["id"]):
            read = await other.get(f"/v1/transfers/{transfer_id}")
            assert_error(read, 404, "transfer_not_found")
        near = await account_on(other, 0, allow_overdraft=True)
        far = await account_on(other, 1, allow_overdraft=True)
        for theirs, ours in ((near, own), (far, own), (near, own_far)):
            stolen = await transfer(other, ours["id"], theirs["id"], 1)
            assert_error(stolen, 404, "account_not_found", "debit_account_id")
        # The debit is the stranger's own, so only the credit side can refuse: on one shard
        # the posting does, across two the destination does during the saga, and the hold
        # is released.
        for theirs, ours in ((near, own), (near, own_far)):
            pushed = await transfer(other, theirs["id"], ours["id"], 1)
            assert_error(pushed, 404, "account_not_found", "credit_account_id")
        for theirs in (near, far):
            assert await balance(other, theirs["id"]) == {
                "posted": 0, "pending": 0, "held": 0, "available": 0
            }  # fmt: skip
    await settled(api)
    assert (await balance(api, own["id"]))["posted"] == 5
    assert (await balance(api, own_far["id"]))["posted"] == 7


async def test_cursor_pagination(api: httpx.AsyncClient) -> None:
    """Pages of accounts walk forwards and backwards with has_more."""
    created = [(await create_account(api))["id"] for _ in range(7)]
    newest_first = list(reversed(created))
    page = (await api.get("/v1/accounts", params={"limit": 3})).json()
    assert page["object"] == "list"
    assert [a["id"] for a in page["data"]] == newest_first[:3]
    assert page["has_more"] is True
    page2 = (
        await api.get("/v1/accounts", params={"limit": 3, "starting_after": newest_first[2]})
    ).json()
    assert [a["id"] for a in page2["data"]] == newest_first[3:6]
    page3 = (
        await api.get("/v1/accounts", params={"limit": 3, "starting_after": newest_first[5]})
    ).json()
    assert [a["id"] for a in page3["data"]] == newest_first[6:]
    assert page3["has_more"] is False
    back = (
        await api.get("/v1/accounts", params={"limit": 2, "ending_before": newest_first[3]})
    ).json()
    assert [a["id"] for a in back["data"]] == newest_first[1:3]
    assert back["has_more"] is True
    assert_error(await api.get("/v1/accounts", params={"limit": 0}), 400, "invalid_request")
    assert_error(await api.get("/v1/accounts", params={"limit": 101}), 400, "invalid_request")
    for path in ("/v1/accounts", "/v1/transfers", f"/v1/accounts/{created[0]}/entries"):
        for cursor in ("starting_after", "ending_before"):
            bad = await api.get(path, params={cursor: "acct_\u0000"})
            assert_error(bad, 400, "invalid_request", cursor)
            assert "printable ASCII" in bad.json()["error"]["message"]


async def test_account_idempotency(api: httpx.AsyncClient) -> None:
    """The same key creates one account; a different body with it is refused."""
    headers = {"Idempotency-Key": f"acct-{ULID()}"}
    first = await api.post("/v1/accounts", json={"currency": "USD"}, headers=headers)
    again = await api.post("/v1/accounts", json={"currency": "USD"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    other = await api.post("/v1/accounts", json={"currency": "EUR"}, headers=headers)
    assert_error(other, 400, "idempotency_key_reused")
    assert len((await api.get("/v1/accounts")).json()["data"]) == 1


async def test_freeze_and_close(api: httpx.AsyncClient) -> None:
    """Frozen accounts refuse transfers until unfrozen; only empty accounts close."""
    funding = await create_account(api, allow_overdraft=True)
    target = None
    while target is None or target["shard"] != funding["shard"]:
        target = await create_account(api)
    frozen = await api.post(f"/v1/accounts/{target['id']}/freeze")
    assert frozen.json()["status"] == "frozen"
    assert_error(await transfer(api, funding["id"], target["id"], 5), 409, "account_frozen")
    await api.post(f"/v1/accounts/{target['id']}/unfreeze")
    assert (await transfer(api, funding["id"], target["id"], 5)).status_code == 201
    assert_error(await api.post(f"/v1/accounts/{target['id']}/close"), 409, "account_not_empty")
    assert (await transfer(api, target["id"], funding["id"], 5)).status_code == 201
    closed = await api.post(f"/v1/accounts/{target['id']}/close")
    assert closed.json()["status"] == "closed"
    assert_error(await transfer(api, funding["id"], target["id"], 5), 409, "account_closed")


async def test_metrics_and_openapi(api: httpx.AsyncClient) -> None:
    """/metrics exposes requests by route, transfer latency, idempotency batches, pool usage
    and event-loop lag; /openapi.json is the contract."""
    await create_account(api)
    keyed = await api.post(
        "/v1/accounts", json={"currency": "USD"}, headers={"Idempotency-Key": f"m-{ULID()}"}
    )
    assert keyed.status_code == 201, keyed.text
    await asyncio.sleep(0.2)  # the lag probe samples every 50 ms
    text = (await api.get("/metrics")).text
    assert 'ledgerflow_http_requests_total{method="POST",route="/v1/accounts",status="201"}' in text
    assert "ledgerflow_pool_connections_in_use" in text
    assert "ledgerflow_transfer_seconds" in text
    assert "ledgerflow_idempotency_batch_size_count" in text
    lag_samples = [
        line
        for line in text.splitlines()
        if line.startswith("ledgerflow_event_loop_lag_seconds_count")
    ]
    assert lag_samples
    assert float(lag_samples[0].split()[-1]) > 0
    spec = (await api.get("/openapi.json")).json()
    assert "/v1/transfers" in spec["paths"]
    assert "/v1/accounts/{account_id}/entries" in spec["paths"]


def _documented(spec: dict, method: str, template: str) -> set[int]:
    return {int(status) for status in spec["paths"][template][method.lower()]["responses"]}


async def test_the_contract_documents_every_answer(api: httpx.AsyncClient) -> None:
    """The OpenAPI document names every status the API answers, errors in the one shape,
    and no 422 (validation errors are 400): a table of bad and good requests, each answered
    with a status its operation documents."""
    spec = (await api.get("/openapi.json")).json()
    for template, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert "422" not in operation["responses"], (method, template)
            if template.startswith("/v1"):
                for status in ("400", "401", "500", "503"):
                    schema = operation["responses"][status]["content"]["application/json"]
                    assert schema["schema"]["$ref"].endswith("/ErrorOut"), (method, template)
    assert (
        "idempotency_key_reused"
        in spec["paths"]["/v1/transfers"]["post"]["responses"]["400"]["description"]
    )

    account = await create_account(api)
    closed = await create_account(api)
    assert (await api.post(f"/v1/accounts/{closed['id']}/close")).status_code == 200
    missing = f"acct_{ULID()}"
    cases = [
        ("GET", "/v1/accounts/{account_id}", f"/v1/accounts/{missing}", None, {}),
        ("GET", "/v1/accounts", "/v1/accounts?limit=0", None, {}),
        ("GET", "/v1/accounts", "/v1/accounts?starting_after=x&ending_before=y", None, {}),
        ("POST", "/v1/accounts", "/v1/accounts", {"currency": "AAA"}, {}),
        ("POST", "/v1/accounts", "/v1/accounts", {"currency": "USD"}, {"Idempotency-Key": ""}),
        ("POST", "/v1/accounts/{account_id}/freeze", f"/v1/accounts/{missing}/freeze", {}, {}),
        ("POST", "/v1/accounts/{account_id}/close", f"/v1/accounts/{closed['id']}/close", {}, {}),
        ("GET", "/v1/accounts/{account_id}/entries", f"/v1/accounts/{missing}/entries", None, {}),
        ("GET", "/v1/transfers/{transfer_id}", "/v1/transfers/0", None, {}),
        (
            "POST",
            "/v1/transfers",
            "/v1/transfers",
            {
                "debit_account_id": account["id"],
                "credit_account_id": closed["id"],
                "amount": 1,
                "currency": "USD",
            },
            {},
        ),
        ("POST", "/v1/transfers", "/v1/transfers", {"amount": 1.5}, {}),
    ]
    for method, template, url, body, headers in cases:
        response = await api.request(method, url, json=body, headers=headers)
        assert response.status_code in _documented(spec, method, template), (url, response.text)
        if response.status_code >= 400:
            assert set(response.json()["error"]) == {"type", "code", "message", "param"}
    not_allowed = await api.delete("/v1/transfers")
    assert not_allowed.status_code == 405
    assert not_allowed.headers["allow"] == "GET, POST"


async def test_unknown_query_parameters_are_400(api: httpx.AsyncClient) -> None:
    """A query parameter the operation does not take is 400 `invalid_request` naming it:
    `GET /v1/transfers?account_id=…` answered every transfer, and the client believed it
    had filtered. The parameters an operation documents still work."""
    account = (await api.post("/v1/accounts", json={"currency": "USD"})).json()
    probes = [
        ("/v1/transfers", {"account_id": account["id"]}, "account_id"),
        ("/v1/accounts", {"limit": "2", "status": "active"}, "status"),
        (f"/v1/accounts/{account['id']}/entries", {"since": "x"}, "since"),
        ("/v1/events", {"types": "transfer.posted"}, "types"),
        (f"/v1/accounts/{account['id']}", {"expand": "balance"}, "expand"),
    ]
    for path, params, unknown in probes:
        response = await api.get(path, params=params)
        assert response.status_code == 400, (path, response.text)
        error = response.json()["error"]
        assert (error["code"], error["param"]) == ("invalid_request", unknown), response.text
    for path, params in (
        ("/v1/transfers", {"limit": "2"}),
        ("/v1/accounts", {"limit": "2"}),
        ("/v1/events", {"type": "transfer.posted", "limit": "1"}),
        (f"/v1/accounts/{account['id']}/balance", {"at": "2026-01-01T00:00:00Z"}),
    ):
        response = await api.get(path, params=params)
        assert response.status_code == 200, (path, response.text)
