"""/openapi.json is a document clients can build on: a Bearer security scheme on every
authenticated operation, stable operation ids, examples on every request body, shared
schemas as components, and `amount`'s bound written exactly."""

import re

import httpx

from ledger.limits import BIGINT_MAX

EXPECTED_OPERATION_IDS = {
    "healthz", "readyz", "metrics",
    "create_account", "list_accounts", "get_account", "freeze_account", "unfreeze_account",
    "close_account", "list_entries", "get_account_balance", "list_account_availability",
    "set_account_limits",
    "create_transfer", "create_transfer_batch", "list_transfers", "get_transfer",
    "capture_transfer", "void_transfer", "increment_transfer", "approve_transfer",
    "reject_transfer", "list_events", "get_event",
}  # fmt: skip


def _operations(spec: dict) -> list[tuple[str, str, dict]]:
    return [
        (method, template, operation)
        for template, operations in spec["paths"].items()
        for method, operation in operations.items()
    ]


async def test_the_document_is_what_generated_clients_need(api_url: str) -> None:
    """Security, ids, examples, components and exact integer bounds, as served."""
    async with httpx.AsyncClient(base_url=api_url) as client:
        response = await client.get("/openapi.json")
    spec = response.json()

    schemes = spec["components"]["securitySchemes"]
    assert schemes == {"ApiKey": {**schemes["ApiKey"], "type": "http", "scheme": "bearer"}}
    for method, template, operation in _operations(spec):
        parameters = {p["name"].lower() for p in operation.get("parameters", [])}
        assert "authorization" not in parameters, (method, template)
        if template.startswith("/v1"):
            assert operation["security"] == [{"ApiKey": []}], (method, template)
            assert "429" in operation["responses"], (method, template)
            assert "Retry-After" in operation["responses"]["429"]["headers"]
        else:
            assert "security" not in operation, (method, template)

    assert {op["operationId"] for _, _, op in _operations(spec)} == EXPECTED_OPERATION_IDS
    assert spec["paths"]["/v1/transfers"]["post"]["operationId"] == "create_transfer"

    schemas = spec["components"]["schemas"]
    bodies = [op["requestBody"] for _, _, op in _operations(spec) if "requestBody" in op]
    # accounts, limits, transfers, batches, a hold's capture and increment
    assert len(bodies) == 6
    for body in bodies:
        ref = body["content"]["application/json"]["schema"]["$ref"]
        assert schemas[ref.rsplit("/", 1)[1]]["examples"], ref

    currency_ref = {"$ref": "#/components/schemas/Currency"}
    assert schemas["AccountCreate"]["properties"]["currency"] == currency_ref
    assert schemas["TransferCreate"]["properties"]["currency"] == currency_ref
    assert "USD" in schemas["Currency"]["enum"]

    amount = schemas["TransferCreate"]["properties"]["amount"]
    assert amount["maximum"] == BIGINT_MAX
    assert type(amount["maximum"]) is int
    # In the text itself: a float (9.223372036854776e+18) would parse as 2**63.
    assert re.search(r'"maximum":\s*9223372036854775807\b', response.text)
    assert "e+18" not in response.text
