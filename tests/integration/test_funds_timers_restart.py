"""Durable timers across restarts: holds expire and delayed credits become available, on one
shard and across two, even when the worker was killed and the Temporal server stopped
before their deadlines, and both were started again only afterwards."""

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
    assert response.status_code in (200, 201, 202), response.text
    return response.json()


def _status(api: httpx.Client, transfer: dict) -> str:
    return api.get(f"/v1/transfers/{transfer['id']}").json()["status"]


def _balance(api: httpx.Client, account_id: str) -> dict:
    return api.get(f"/v1/accounts/{account_id}").json()["balance"]


def test_expiry_and_availability_survive_a_worker_kill_and_a_temporal_restart(
    tmp_path: Path,
) -> None:
    """Place a hold and a delayed credit due in 8 s on one shard and the same across two,
    kill the worker and stop Temporal, let the deadlines pass (the API refuses the expired
    holds meanwhile), start both again: within 15 s the holds are `expired` and the credits
    available on every shard, and the books balance."""
    services = Services.under(tmp_path / "stack", shard_count=2)
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
            while (payee := _post(api, "/v1/accounts", {"currency": "USD"}))["shard"] != payer[
                "shard"
            ]:
                pass
            while (far := _post(api, "/v1/accounts", {"currency": "USD"}))["shard"] == payer[
                "shard"
            ]:
                pass
            move = {"currency": "USD", "debit_account_id": funding["id"]}
            _post(api, "/v1/transfers", {**move, "credit_account_id": payer["id"], "amount": 900})
            pair = {"currency": "USD", "debit_account_id": payer["id"]}
            due = datetime.now(UTC) + timedelta(seconds=8)
            holds, credits = [], []
            for to, held, deferred in ((payee, 300, 200), (far, 100, 150)):
                hold = {"credit_account_id": to["id"], "amount": held, "pending": True}
                holds.append(_post(api, "/v1/transfers", {**pair, **hold, "expires_in": 8}))
                credit = {"credit_account_id": to["id"], "amount": deferred}
                credits.append(
                    _post(api, "/v1/transfers", {**pair, **credit, "available_on": due.isoformat()})
                )
            # Across shards the saga opens the hold and settles the credit first.
            opened = time.monotonic()
            while [_status(api, t) for t in (*holds, *credits)] != [
                "pending",
                "pending",
                "posted",
                "posted",
            ]:
                assert time.monotonic() - opened < 15
                time.sleep(0.1)

            children["worker"].kill()
            children["worker"].join(timeout=30)
            services.temporal.stop()
            time.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()) + 1.5)
            for hold in holds:
                refused = api.post(
                    f"/v1/transfers/{hold['id']}/capture",
                    json={},
                    headers={"Idempotency-Key": f"test-{ULID()}"},
                )
                assert refused.status_code == 409, refused.text
                assert refused.json()["error"]["code"] == "transfer_expired"
            # Nothing gave the money back while every timer was down.
            assert _balance(api, payer["id"])["held"] == 400
            assert _balance(api, payee["id"])["pending"] == 500
            assert _balance(api, far["id"])["pending"] == 250

            services.temporal.start()
            children["worker"] = _spawn("worker", config)
            restarted = time.monotonic()
            while True:
                expired = [_status(api, h) for h in holds] == ["expired", "expired"]
                far_settled = _balance(api, far["id"])["posted"] == 150
                available = all(
                    api.get(f"/v1/transfers/{c['id']}").json()["available_at"] for c in credits
                )
                if expired and available and far_settled:
                    break
                assert time.monotonic() - restarted < 15, (expired, available, far_settled)
                time.sleep(0.25)
            assert _balance(api, payer["id"]) == {
                "posted": 550,
                "pending": 0,
                "held": 0,
                "available": 550,
            }
            assert _balance(api, far["id"]) == {
                "posted": 150,
                "pending": 0,
                "held": 0,
                "available": 150,
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
                assert not report.settling, report.in_flight_summary()
            finally:
                await cluster.close()

        asyncio.run(books())
    finally:
        stop_children(list(children.values()))
        services.stop()
