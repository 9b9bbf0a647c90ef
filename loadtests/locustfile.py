"""Locust load test: realistic transfer traffic against a running Ledgerflow API.

    LEDGERFLOW_API_KEY=... locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 \\
        --headless -u 50 -r 10 -t 60s

Each simulated user opens a few accounts, funds them from an overdraft account, then moves
money between them (both single- and cross-shard pairs), reads balances and pages entries.
Set LEDGERFLOW_CROSS_SHARD_RATIO (0..1, default 0.5) to steer the mix.
"""

import os
import random
import uuid

from locust import FastHttpUser, between, events, task

FUNDING = 10**12
ACCOUNTS_PER_USER = 6


@events.init_command_line_parser.add_listener
def _options(parser) -> None:  # noqa: ANN001 - locust's argparse wrapper
    parser.add_argument(
        "--cross-shard-ratio", type=float, env_var="LEDGERFLOW_CROSS_SHARD_RATIO", default=0.5
    )


class LedgerUser(FastHttpUser):
    """A platform moving money between its customers' wallets."""

    wait_time = between(0.0, 0.05)

    def on_start(self) -> None:
        key = os.environ.get("LEDGERFLOW_API_KEY")
        if not key:
            raise RuntimeError("set LEDGERFLOW_API_KEY")
        self.headers = {"Authorization": f"Bearer {key}"}
        self.accounts: dict[int, list[str]] = {}
        funding: dict[int, str] = {}
        while sum(len(v) for v in self.accounts.values()) < ACCOUNTS_PER_USER:
            account = self._post("/v1/accounts", {"currency": "USD"}, "/v1/accounts")
            self.accounts.setdefault(account["shard"], []).append(account["id"])
        while not set(funding) >= set(self.accounts):
            account = self._post(
                "/v1/accounts", {"currency": "USD", "allow_overdraft": True}, "/v1/accounts"
            )
            funding.setdefault(account["shard"], account["id"])
        for shard, ids in self.accounts.items():
            for account_id in ids:
                self._transfer(funding[shard], account_id, FUNDING)

    def _post(self, path: str, body: dict, name: str) -> dict:
        headers = {**self.headers, "Idempotency-Key": str(uuid.uuid4())}
        with self.client.post(
            path, json=body, headers=headers, name=name, catch_response=True
        ) as response:
            if response.status_code not in (200, 201, 202):
                response.failure(f"{response.status_code}: {response.text[:200]}")
                return {}
            return response.json()

    def _transfer(self, debit: str, credit: str, amount: int) -> None:
        body = {
            "debit_account_id": debit,
            "credit_account_id": credit,
            "amount": amount,
            "currency": "USD",
        }
        self._post("/v1/transfers", body, "/v1/transfers")

    def _pair(self, cross: bool) -> tuple[str, str] | None:
        ids = [(shard, a) for shard, accounts in self.accounts.items() for a in accounts]
        debit_shard, debit = random.choice(ids)
        candidates = [a for shard, a in ids if (shard != debit_shard) == cross and a != debit]
        return (debit, random.choice(candidates)) if candidates else None

    @task(10)
    def transfer(self) -> None:
        """Move a small amount between two of this user's accounts."""
        cross = random.random() < self.environment.parsed_options.cross_shard_ratio
        pair = self._pair(cross) or self._pair(not cross)
        if pair:
            self._transfer(*pair, random.randint(1, 1000))

    @task(2)
    def read_balance(self) -> None:
        """Read one account."""
        account = random.choice([a for ids in self.accounts.values() for a in ids])
        self.client.get(f"/v1/accounts/{account}", headers=self.headers, name="/v1/accounts/{id}")

    @task(1)
    def page_entries(self) -> None:
        """Page an account's recent entries."""
        account = random.choice([a for ids in self.accounts.values() for a in ids])
        self.client.get(
            f"/v1/accounts/{account}/entries?limit=20",
            headers=self.headers,
            name="/v1/accounts/{id}/entries",
        )
