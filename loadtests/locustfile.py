"""Locust load test: transfer traffic as a platform sends it, against a running Ledgerflow API.

    LEDGERFLOW_API_KEY=... LEDGERFLOW_SHARD_DSNS='["postgresql://..."]' \\
        locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 \\
        --headless -u 50 -r 10 -t 60s --csv report/ledgerflow --html report/ledgerflow.html

Each simulated user opens accounts in two currencies (USD and EUR), funds them from an
overdraft account per shard and currency, then:
- moves money between its accounts, single- and cross-shard (`--cross-shard-ratio`), every
  POST with an Idempotency-Key that it sends again, unchanged, after a connection error or
  a 503 (at most `RETRY_ATTEMPTS_MAX` times), as a real client must;
- follows each 202 (a cross-shard transfer still settling) until the transfer is final and
  reports that time as its own entry, `settle cross-shard`;
- pays a fee to one hot account per currency (shared by every user of the process);
- sends `POST /v1/transfers/batch` instead of a single transfer in `--batch-share` of the
  transfer tasks (`--batch-size` items); an API that answers 404 or 405 has no batch
  endpoint yet, and the users stop sending batches;
- reads balances and pages entries.

At the end (`events.quitting`, on the master or a single process) it reconciles the books as
`ledgerflow verify` does, when LEDGERFLOW_SHARD_DSNS names the shards, and sets Locust's exit
code: 1 when the books do not balance, when any request ended in a 5xx after its retries,
or when any transfer failed to settle; 0 otherwise.
"""

import json
import os
import random
import subprocess
import sys
import time
import uuid

import gevent
import gevent.lock
from locust import FastHttpUser, between, events, task
from locust.runners import MasterRunner, WorkerRunner

FUNDING = 10**12
ACCOUNTS_PER_CURRENCY = 4
CURRENCIES = ("USD", "EUR")
RETRY_ATTEMPTS_MAX = 5
RETRY_PAUSE_S = 0.2
SETTLE_TIMEOUT_S = 60.0
SETTLE_POLL_S = 0.05
VERIFY_TIMEOUT_S = 300
FINAL_STATUSES = frozenset({"posted", "failed", "voided"})
SETTLE_ENTRY = "settle cross-shard"


class _Outcome:
    """What this process saw that decides the exit code beside the books."""

    server_errors = 0  # requests that ended in a 5xx after their retries
    unsettled = 0  # 202s that were not final within SETTLE_TIMEOUT_S
    batch_available = True  # until the API answers 404 or 405 on /v1/transfers/batch


_hot_accounts: dict[str, str] = {}
_hot_lock = gevent.lock.Semaphore()


@events.init_command_line_parser.add_listener
def _options(parser) -> None:  # noqa: ANN001 - locust's argparse wrapper
    parser.add_argument(
        "--cross-shard-ratio", type=float, env_var="LOCUST_CROSS_SHARD_RATIO", default=0.5
    )
    parser.add_argument(
        "--batch-share",
        type=float,
        env_var="LOCUST_BATCH_SHARE",
        default=0.1,
        help="Share of transfer tasks sent as one batch (0..1)",
    )
    parser.add_argument("--batch-size", type=int, env_var="LOCUST_BATCH_SIZE", default=20)


class LedgerUser(FastHttpUser):
    """A platform moving money between its customers' wallets."""

    wait_time = between(0.0, 0.05)

    def on_start(self) -> None:
        """Open and fund this user's accounts."""
        key = os.environ.get("LEDGERFLOW_API_KEY")
        if not key:
            raise RuntimeError("set LEDGERFLOW_API_KEY")
        self.headers = {"Authorization": f"Bearer {key}"}
        # currency -> shard -> account ids
        self.accounts: dict[str, dict[int, list[str]]] = {}
        for currency in CURRENCIES:
            self.accounts[currency] = self._open(currency)
            self._hot_account(currency)

    def _open(self, currency: str) -> dict[int, list[str]]:
        by_shard: dict[int, list[str]] = {}
        while sum(len(v) for v in by_shard.values()) < ACCOUNTS_PER_CURRENCY:
            account = self._post("/v1/accounts", {"currency": currency}, "/v1/accounts")
            by_shard.setdefault(account["shard"], []).append(account["id"])
        funding: dict[int, str] = {}
        while not set(funding) >= set(by_shard):
            body = {"currency": currency, "allow_overdraft": True}
            account = self._post("/v1/accounts", body, "/v1/accounts")
            funding.setdefault(account["shard"], account["id"])
        for shard, ids in by_shard.items():
            for account_id in ids:
                self._transfer(funding[shard], account_id, FUNDING, currency)
        return by_shard

    def _hot_account(self, currency: str) -> str:
        """The one fee account of `currency` every user of this process pays into."""
        with _hot_lock:
            if currency not in _hot_accounts:
                account = self._post("/v1/accounts", {"currency": currency}, "/v1/accounts")
                _hot_accounts[currency] = account["id"]
            return _hot_accounts[currency]

    def _post(self, path: str, body: dict, name: str) -> dict:
        """POST with one Idempotency-Key, sent again after a connection error or a 503."""
        headers = {**self.headers, "Idempotency-Key": str(uuid.uuid4())}
        for attempt in range(1, RETRY_ATTEMPTS_MAX + 1):
            with self.client.post(
                path, json=body, headers=headers, name=name, catch_response=True
            ) as response:
                status = response.status_code
                retry = status in {0, 503} and attempt < RETRY_ATTEMPTS_MAX
                if retry:
                    # Counted apart, so the entry's failures are the requests that failed.
                    response.success()
                    events.request.fire(
                        request_type="RETRY",
                        name=f"{name} retried after {status or 'connection error'}",
                        response_time=0,
                        response_length=0,
                        exception=None,
                        context={},
                    )
                elif status in (200, 201, 202):
                    return response.json()
                elif path == "/v1/transfers/batch" and status in (404, 405):
                    # No batch endpoint on this API yet: stop sending batches, fail nothing.
                    response.success()
                    _Outcome.batch_available = False
                    return {}
                else:
                    if status >= 500:
                        _Outcome.server_errors += 1
                    response.failure(f"{status}: {(response.text or '')[:200]}")
                    return {}
            gevent.sleep(RETRY_PAUSE_S * attempt)
        return {}

    def _transfer(self, debit: str, credit: str, amount: int, currency: str) -> None:
        body = {
            "debit_account_id": debit,
            "credit_account_id": credit,
            "amount": amount,
            "currency": currency,
        }
        started = time.perf_counter()
        answer = self._post("/v1/transfers", body, "/v1/transfers")
        if answer.get("status") == "processing":
            self._follow(answer["id"], started)

    def _follow(self, transfer_id: str, started: float) -> None:
        """Poll a 202's transfer until it is final; report the time from the POST."""
        deadline = started + SETTLE_TIMEOUT_S
        status = "processing"
        while time.perf_counter() < deadline:
            gevent.sleep(SETTLE_POLL_S)
            response = self.client.get(
                f"/v1/transfers/{transfer_id}", headers=self.headers, name="/v1/transfers/{id}"
            )
            if response.status_code == 200:
                status = response.json()["status"]
                if status in FINAL_STATUSES:
                    break
        final = status in FINAL_STATUSES
        if not final:
            _Outcome.unsettled += 1
        events.request.fire(
            request_type="SETTLE",
            name=SETTLE_ENTRY,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=None if final else TimeoutError(f"{transfer_id} still {status}"),
            context={},
        )

    def _pair(self, currency: str, cross: bool) -> tuple[str, str] | None:
        accounts = self.accounts[currency]
        ids = [(shard, a) for shard, shard_ids in accounts.items() for a in shard_ids]
        debit_shard, debit = random.choice(ids)
        candidates = [a for shard, a in ids if (shard != debit_shard) == cross and a != debit]
        return (debit, random.choice(candidates)) if candidates else None

    def _any_pair(self, currency: str) -> tuple[str, str] | None:
        cross = random.random() < self.environment.parsed_options.cross_shard_ratio
        return self._pair(currency, cross) or self._pair(currency, not cross)

    @task(10)
    def transfer(self) -> None:
        """Move a small amount between two of this user's accounts, or send a batch."""
        currency = random.choice(CURRENCIES)
        options = self.environment.parsed_options
        if _Outcome.batch_available and random.random() < options.batch_share:
            self._batch(currency, options.batch_size)
            return
        pair = self._any_pair(currency)
        if pair:
            self._transfer(*pair, random.randint(1, 1000), currency)

    def _batch(self, currency: str, size: int) -> None:
        items = []
        for _ in range(size):
            pair = self._any_pair(currency)
            if pair:
                debit, credit = pair
                items.append(
                    {
                        "debit_account_id": debit,
                        "credit_account_id": credit,
                        "amount": random.randint(1, 1000),
                        "currency": currency,
                    }
                )
        if items:
            body = {"transfers": items, "atomic": False}
            self._post("/v1/transfers/batch", body, "/v1/transfers/batch")

    @task(3)
    def pay_fee(self) -> None:
        """Pay a fee into the hot account of a currency."""
        currency = random.choice(CURRENCIES)
        ids = [a for shard_ids in self.accounts[currency].values() for a in shard_ids]
        self._transfer(random.choice(ids), self._hot_account(currency), 1, currency)

    @task(2)
    def read_balance(self) -> None:
        """Read one account."""
        account = random.choice(self._all_accounts())
        self.client.get(f"/v1/accounts/{account}", headers=self.headers, name="/v1/accounts/{id}")

    @task(1)
    def page_entries(self) -> None:
        """Page an account's recent entries."""
        account = random.choice(self._all_accounts())
        self.client.get(
            f"/v1/accounts/{account}/entries?limit=20",
            headers=self.headers,
            name="/v1/accounts/{id}/entries",
        )

    def _all_accounts(self) -> list[str]:
        return [a for by_shard in self.accounts.values() for ids in by_shard.values() for a in ids]


def _books_balance() -> bool | None:
    """`ledgerflow verify --json` against LEDGERFLOW_SHARD_DSNS; None when not configured."""
    if not os.environ.get("LEDGERFLOW_SHARD_DSNS"):
        print("books: not checked (set LEDGERFLOW_SHARD_DSNS to reconcile)")
        return None
    done = subprocess.run(
        [sys.executable, "-m", "ledgerflow", "verify", "--json"],
        capture_output=True,
        text=True,
        timeout=VERIFY_TIMEOUT_S,
        check=False,
    )
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        print(f"books: verify failed ({done.returncode}): {done.stderr[-2000:]}")
        return False
    for problem in report.get("problems", []):
        print(f"books: {problem}")
    print(
        f"books: {'balanced' if report['ok'] else 'NOT BALANCED'}; "
        f"{report['accounts_checked']} accounts and {report['entries_checked']} entries "
        f"on {report['shards']} shards"
    )
    return bool(report["ok"])


@events.quitting.add_listener
def _reconcile_and_set_exit_code(environment, **_kwargs: object) -> None:  # noqa: ANN001
    """On the master (or a single process): the books, the 5xx and the unsettled decide."""
    if isinstance(environment.runner, WorkerRunner):
        return
    books = _books_balance()
    total = environment.stats.total
    server_errors = sum(
        error.occurrences
        for error in environment.stats.errors.values()
        if str(error.error)[:1] == "5"
    )
    if isinstance(environment.runner, MasterRunner):
        unsettled = environment.stats.get(SETTLE_ENTRY, "SETTLE").num_failures
    else:
        unsettled = _Outcome.unsettled
        server_errors = max(server_errors, _Outcome.server_errors)
    failed = books is False or server_errors > 0 or unsettled > 0
    print(
        f"exit: {total.num_requests} requests, {server_errors} ended in a 5xx, "
        f"{unsettled} transfers did not settle; books "
        f"{'unchecked' if books is None else 'balanced' if books else 'NOT BALANCED'}"
    )
    environment.process_exit_code = 1 if failed else 0
