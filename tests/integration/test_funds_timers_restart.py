"""Durable timers across restarts: a hold expires and a delayed credit becomes available even
when the worker was killed and the Temporal server stopped before their deadlines, and
both were started again only afterwards."""

import asyncio
import multiprocessing
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from ulid import ULID

from ledgerflow.bench.stack import (
    Services,
    StackConfig,
    new_api_key,
    run_child,
    stop_children,
    wait_until_serving,
)
from ledgerflow.devstack import free_port
from shards.cluster import ShardCluster
from shards.reconcile import reconcile

HOST = "127.0.0.1"


def _spawn(role: str, config: StackConfig) -> multiprocessing.process.BaseProcess:
    child = multiprocessing.get_context("spawn").Process(
        target=run_child, args=(role, config), name=role
    )
    child.start()
    return child


def _post(api: httpx.Client, path: str, body: dict) -> dict:
    response = api.post(path, json=body, headers={"Idempotency-Key": f"test-{ULID()}"})
    assert response.status_code in (200, 201), response.text
    return response.json()


def _balance(api: httpx.Client, account_id: str) -> dict:
    return api.get(f"/v1/accounts/{account_id}").json()["balance"]


def test_expiry_and_availability_survive_a_worker_kill_and_a_temporal_restart(
    tmp_path: Path,
) -> None:
    """Place a hold and a delayed credit due in 6 s, kill the worker and stop Temporal, let
    the deadlines pass (the API refuses the expired hold meanwhile), start both again: within
    15 s the hold is `expired` and the credit available, and the books balance."""
    services = Services.under(tmp_path / "stack", shard_count=1)
    children: dict[str, multiprocessing.process.BaseProcess] = {}
    try:
        dsns = services.start()
        config = StackConfig(
            shard_dsns=dsns, temporal_address=services.temporal.address, api_port=free_port()
        )
        children["worker"] = _spawn("worker", config)
        children["api"] = _spawn("api", config)
        url = f"http://{HOST}:{config.api_port}"
        wait_until_serving(url, list(children.values()))
        key = asyncio.run(new_api_key(dsns, tenant_prefix="restart"))
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        ) as api:
            funding = _post(api, "/v1/accounts", {"currency": "USD", "allow_overdraft": True})
            payer = _post(api, "/v1/accounts", {"currency": "USD"})
            payee = _post(api, "/v1/accounts", {"currency": "USD"})
            move = {"currency": "USD", "debit_account_id": funding["id"]}
            _post(api, "/v1/transfers", {**move, "credit_account_id": payer["id"], "amount": 900})
            pair = {"currency": "USD", "debit_account_id": payer["id"]}
            hold = _post(
                api,
                "/v1/transfers",
                {
                    **pair,
                    "credit_account_id": payee["id"],
                    "amount": 300,
                    "pending": True,
                    "expires_in": 6,
                },
            )
            due = datetime.now(UTC) + timedelta(seconds=6)
            credit = _post(
                api,
                "/v1/transfers",
                {
                    **pair,
                    "credit_account_id": payee["id"],
                    "amount": 200,
                    "available_on": due.isoformat(),
                },
            )

            children["worker"].kill()
            children["worker"].join(timeout=30)
            services.temporal.stop()
            time.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()) + 1.5)
            refused = api.post(
                f"/v1/transfers/{hold['id']}/capture",
                json={},
                headers={"Idempotency-Key": f"test-{ULID()}"},
            )
            assert refused.status_code == 409, refused.text
            assert refused.json()["error"]["code"] == "transfer_expired"
            # Nothing gave the money back while every timer was down.
            assert _balance(api, payer["id"])["held"] == 300
            assert _balance(api, payee["id"])["pending"] == 500

            services.temporal.start()
            children["worker"] = _spawn("worker", config)
            restarted = time.monotonic()
            while True:
                expired = api.get(f"/v1/transfers/{hold['id']}").json()["status"] == "expired"
                available = api.get(f"/v1/transfers/{credit['id']}").json()["available_at"]
                if expired and available:
                    break
                assert time.monotonic() - restarted < 15, (expired, available)
                time.sleep(0.25)
            assert _balance(api, payer["id"]) == {
                "posted": 700,
                "pending": 0,
                "held": 0,
                "available": 700,
            }
            assert _balance(api, payee["id"]) == {
                "posted": 200,
                "pending": 0,
                "held": 0,
                "available": 200,
            }

        async def books() -> None:
            cluster = await ShardCluster.connect(dsns, pool_size_max=1)
            try:
                report = await reconcile(cluster)
                assert report.ok, report.problems
            finally:
                await cluster.close()

        asyncio.run(books())
    finally:
        stop_children(list(children.values()))
        services.stop()
