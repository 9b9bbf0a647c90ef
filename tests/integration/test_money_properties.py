"""Random sequences of money movements through the HTTP API, against a model.

A Hypothesis state machine opens accounts on drawn shards (most pairs are cross-shard),
moves money between them, places holds, raises them (increments) and captures (in part)
or voids them, sends delayed credits, sets `review_above` and approves or rejects the
transfers it holds for review, retries requests with their Idempotency-Key, reuses keys
with other bodies, and freezes, unfreezes and closes accounts.
Every answer must be the one the model predicts, in the order the rules are checked
(`REFUSAL_ORDER`: the accounts' states, the debit's then the credit's, then review, then
funds, on one shard and across two alike). After every step each balance equals the model's, and
after each sequence every shard's books balance (`books`).
"""

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from ulid import ULID

from shards.cluster import ShardCluster
from tests.conftest import SHARD_COUNT, new_tenant_key

pytestmark = pytest.mark.usefixtures("books")

SETTLE_TIMEOUT_S = 60.0
SHARDS = st.sampled_from(range(SHARD_COUNT))
AMOUNTS = st.integers(min_value=1, max_value=5_000)


@dataclass
class Account:
    """What the model knows of one account."""

    id: str
    shard: int
    overdraft: bool
    status: str = "active"
    review_above: int | None = None
    posted: int = 0
    held: int = 0
    pending: int = 0

    @property
    def available(self) -> int:
        return self.posted - self.held


@dataclass
class Hold:
    """An open hold, as the model knows it."""

    id: str
    debit: Account
    credit: Account
    amount: int


@dataclass
class Waiting:
    """A transfer held for review, as the model knows it."""

    id: str
    debit: Account
    credit: Account
    amount: int

    @property
    def across(self) -> bool:
        return self.debit.shard != self.credit.shard


@dataclass(frozen=True)
class Sent:
    """A transfer request already answered, to retry."""

    key: str
    body: dict
    status: int
    answer: dict
    late: bool
    """Answered 202: the saga finished after the wait, and `answer` is the transfer then."""
    reviewed: bool = False
    """Held for review: a retry answers with the transfer as it is now."""


def expected_answer(
    debit: Account, credit: Account, amount: int, *, plain: bool = True, total: int | None = None
) -> tuple[int, str]:
    """(status, transfer status or error code) the ledger must give: for a plain transfer
    (`plain`), or a hold, an increment or a delayed credit; `total` is what the transfer
    would debit in all (an increment: the hold with it)."""
    if debit.id == credit.id:
        return 400, "same_account"
    # `REFUSAL_ORDER`: state (the debit account's, then the credit account's, on one shard
    # or across two), then review (a limit), then funds.
    inactive = next((a for a in (debit, credit) if a.status != "active"), None)
    if inactive is not None:
        return 409, f"account_{inactive.status}"
    reviewed = debit.review_above is not None and (total or amount) > debit.review_above
    if reviewed and not plain:
        return 400, "review_not_supported"
    if not debit.overdraft and debit.available < amount:
        return 402, "insufficient_funds"
    if reviewed:
        return 202, "requires_review"
    return 201, "posted"


def machine_for(url: str, new_tenant_key: Callable[[], str]) -> type[RuleBasedStateMachine]:
    """The state machine, bound to one API; every sequence runs as a tenant of its own."""

    class Ledger(RuleBasedStateMachine):
        funding: Account
        """The tenant's overdraft account, which funds the others."""

        def __init__(self) -> None:
            super().__init__()
            self.http = httpx.Client(
                base_url=url,
                headers={"Authorization": f"Bearer {new_tenant_key()}"},
                timeout=30.0,
            )
            self.model: dict[str, Account] = {}
            self.sent: list[Sent] = []
            self.holds: list[Hold] = []
            self.waiting: list[Waiting] = []
            self.deferred = 0
            """What delayed credits debited and their payees show pending (a day ahead, so
            none becomes available while the sequence runs)."""
            # Accounts opened while looking for one on a given shard, kept for later asks.
            self.spare: dict[tuple[int, bool], list[str]] = {}

        def teardown(self) -> None:
            self.http.close()

        def _open(self, overdraft: bool, shard: int) -> Account:
            """An account on `shard`. Ids are random, so the shard is drawn rather than left
            to the id: a case then means the same layout when Hypothesis replays it."""
            while not self.spare.get((shard, overdraft)):
                response = self.http.post(
                    "/v1/accounts",
                    json={"currency": "USD", "allow_overdraft": overdraft},
                    headers={"Idempotency-Key": f"open-{ULID()}"},
                )
                assert response.status_code == 201, response.text
                body = response.json()
                self.spare.setdefault((body["shard"], overdraft), []).append(body["id"])
            account = Account(self.spare[(shard, overdraft)].pop(), shard, overdraft)
            self.model[account.id] = account
            return account

        @initialize(data=st.data(), customers=st.integers(min_value=2, max_value=4))
        def open_accounts(self, data: st.DataObject, customers: int) -> None:
            self.funding = self._open(overdraft=True, shard=data.draw(SHARDS))
            for _ in range(customers):
                self._open(overdraft=False, shard=data.draw(SHARDS))

        @rule(overdraft=st.booleans(), shard=SHARDS)
        def open_account(self, overdraft: bool, shard: int) -> None:
            self._open(overdraft, shard)

        def _pick(self, data: st.DataObject, count: int) -> list[Account]:
            ids = data.draw(
                # In the order the accounts were opened: ids made in one millisecond sort
                # randomly, and the draws must mean the same accounts when a case replays.
                st.lists(
                    st.sampled_from(list(self.model)), min_size=count, max_size=count, unique=True
                )
            )
            return [self.model[i] for i in ids]

        def _final(self, response: httpx.Response) -> tuple[int, dict]:
            """The answer, or for a 202 the transfer once its saga finished."""
            if response.status_code != 202:
                return response.status_code, response.json()
            transfer_id = response.json()["id"]
            deadline = time.monotonic() + SETTLE_TIMEOUT_S
            while time.monotonic() < deadline:
                current = self.http.get(f"/v1/transfers/{transfer_id}").json()
                if current["status"] != "processing":
                    return 202, current
                time.sleep(0.1)
            raise AssertionError(f"{transfer_id} still processing after {SETTLE_TIMEOUT_S} s")

        @rule(data=st.data(), amount=AMOUNTS)
        def fund(self, data: st.DataObject, amount: int) -> None:
            (customer,) = self._pick(data, 1)
            if customer is not self.funding:
                self._move(self.funding, customer, amount)

        @rule(data=st.data(), amounts=st.lists(AMOUNTS, min_size=1, max_size=3))
        def move(self, data: st.DataObject, amounts: list[int]) -> None:
            for amount in amounts:
                debit, credit = self._pick(data, 2)
                self._move(debit, credit, amount)

        def _move(self, debit: Account, credit: Account, amount: int) -> None:
            status, outcome = expected_answer(debit, credit, amount)
            key = f"move-{ULID()}"
            body = {
                "debit_account_id": debit.id,
                "credit_account_id": credit.id,
                "amount": amount,
                "currency": "USD",
            }
            response = self.http.post("/v1/transfers", json=body, headers={"Idempotency-Key": key})
            if status == 202:
                # Held for review: the payer holds it; on one shard the payee shows it
                # pending (held like a hold), across shards nothing reached the payee yet.
                assert response.status_code == 202, response.text
                answer = response.json()
                assert answer["status"] == "requires_review", answer
                debit.held += amount
                if debit.shard == credit.shard:
                    credit.pending += amount
                self.waiting.append(Waiting(answer["id"], debit, credit, amount))
                self.sent.append(Sent(key, body, 202, answer, late=True, reviewed=True))
                return
            got, answer = self._final(response)
            if got == 202:
                # Settled after the wait: a posted transfer, or a failed one naming the code.
                assert (status, outcome) in {(201, "posted"), (409, answer.get("failure_code"))}
                assert answer["status"] == ("posted" if status == 201 else "failed"), answer
            elif status == 201:
                assert got == 201, answer
                assert answer["status"] == "posted", answer
                assert answer["cross_shard"] is (debit.shard != credit.shard), answer
            else:
                code = answer.get("error", {}).get("code", answer.get("status"))
                assert (got, code) == (status, outcome), answer
            if status == 201:
                debit.posted -= amount
                credit.posted += amount
            self.sent.append(Sent(key, body, got, answer, late=got == 202))

        @rule(data=st.data(), amount=AMOUNTS)
        def hold(self, data: st.DataObject, amount: int) -> None:
            """A hold is refused as a transfer would be (funds: what is available); placed,
            it holds on the payer and is pending on the payee, on one shard or across two."""
            debit, credit = self._pick(data, 2)
            status, outcome = expected_answer(debit, credit, amount, plain=False)
            body = {
                "debit_account_id": debit.id,
                "credit_account_id": credit.id,
                "amount": amount,
                "currency": "USD",
                "pending": True,
            }
            response = self.http.post(
                "/v1/transfers", json=body, headers={"Idempotency-Key": f"hold-{ULID()}"}
            )
            got, answer = self._final(response)
            if status == 201:
                assert got in (201, 202), answer
                assert answer["status"] == "pending", answer
                debit.held += amount
                credit.pending += amount
                self.holds.append(Hold(answer["id"], debit, credit, amount))
            elif got == 202:
                assert (status, outcome) == (409, answer.get("failure_code")), answer
                assert answer["status"] == "failed", answer
            else:
                code = answer.get("error", {}).get("code")
                assert (got, code) == (status, outcome), answer

        @precondition(lambda self: self.holds)
        @rule(data=st.data(), amount=AMOUNTS)
        def increment(self, data: st.DataObject, amount: int) -> None:
            """An increment is refused as a hold of its amount would be (both accounts'
            states, then the payer's funds); applied, the payer holds more and the payee,
            on one shard or across two, shows more pending in the answer's wake."""
            hold = data.draw(st.sampled_from(self.holds))
            status, outcome = expected_answer(
                hold.debit, hold.credit, amount, plain=False, total=hold.amount + amount
            )
            response = self.http.post(
                f"/v1/transfers/{hold.id}/increment",
                json={"amount": amount},
                headers={"Idempotency-Key": f"raise-{ULID()}"},
            )
            if status != 201:
                code = response.json().get("error", {}).get("code")
                assert (response.status_code, code) == (status, outcome), response.text
                return
            assert response.status_code == 200, response.text
            assert response.json()["amount"] == hold.amount + amount, response.text
            hold.amount += amount
            hold.debit.held += amount
            hold.credit.pending += amount

        @rule(data=st.data(), amount=AMOUNTS)
        def delay(self, data: st.DataObject, amount: int) -> None:
            """A delayed credit is refused as a transfer would be; made, the payer is
            debited at once and the payee shows the amount pending until `available_on`."""
            debit, credit = self._pick(data, 2)
            status, outcome = expected_answer(debit, credit, amount, plain=False)
            when = datetime.now(UTC) + timedelta(days=1)
            body = {
                "debit_account_id": debit.id,
                "credit_account_id": credit.id,
                "amount": amount,
                "currency": "USD",
                "available_on": when.isoformat(),
            }
            response = self.http.post(
                "/v1/transfers", json=body, headers={"Idempotency-Key": f"later-{ULID()}"}
            )
            got, answer = self._final(response)
            if status != 201:
                code = answer.get("error", {}).get("code", answer.get("failure_code"))
                assert (got, code) == (status, outcome), answer
                return
            assert got in (201, 202), answer
            assert answer["status"] == "posted", answer
            debit.posted -= amount
            credit.pending += amount
            self.deferred += amount

        @precondition(lambda self: self.holds)
        @rule(data=st.data(), share=st.integers(min_value=0, max_value=100))
        def finish_hold(self, data: st.DataObject, share: int) -> None:
            """A final capture of `share` percent (0 voids it) posts that much and releases
            the rest on both sides, whatever the accounts' states are now."""
            hold = self.holds.pop(data.draw(st.integers(0, len(self.holds) - 1)))
            take = hold.amount * share // 100
            path = f"/v1/transfers/{hold.id}/" + ("capture" if take else "void")
            response = self.http.post(
                path,
                json={"amount": take} if take else None,
                headers={"Idempotency-Key": f"finish-{ULID()}"},
            )
            assert response.status_code == 200, response.text
            assert response.json()["status"] == ("posted" if take else "voided")
            hold.debit.held -= hold.amount
            hold.debit.posted -= take
            hold.credit.pending -= hold.amount
            hold.credit.posted += take

        @precondition(lambda self: self.sent)
        @rule(data=st.data())
        def retry(self, data: st.DataObject) -> None:
            """The same key and body replay the first answer: its status and its body."""
            sent = data.draw(st.sampled_from(self.sent))
            again = self.http.post(
                "/v1/transfers", json=sent.body, headers={"Idempotency-Key": sent.key}
            )
            if sent.reviewed:
                # Held for review: the transfer as it is now, waiting, posted, or failed
                # with its failure code (rejected, or its saga refused after an approval),
                # as a late saga's failure is answered.
                assert again.status_code < 500, again.text
                if again.is_success:
                    assert again.json()["id"] == sent.answer["id"], again.text
                else:
                    now = self.http.get(f"/v1/transfers/{sent.answer['id']}").json()
                    assert again.status_code == 409, again.text
                    assert now["status"] == "failed", now
                    assert again.json()["error"]["code"] == now["failure_code"], again.text
                return
            if sent.late:
                # A 202 is not kept: the retry answers with the transfer as it is now.
                assert again.status_code < 500, again.text
                if again.is_success:
                    assert again.json()["id"] == sent.answer["id"], again.text
                    assert again.json()["status"] == sent.answer["status"], again.text
                return
            assert again.status_code == sent.status, again.text
            assert again.json() == sent.answer
            assert again.headers.get("Idempotent-Replayed") == "true"

        @precondition(lambda self: self.sent)
        @rule(data=st.data(), extra=st.integers(min_value=1, max_value=100))
        def reuse_a_key(self, data: st.DataObject, extra: int) -> None:
            """The same key with another body is refused and moves nothing."""
            sent = data.draw(st.sampled_from(self.sent))
            body = {**sent.body, "amount": sent.body["amount"] + extra}
            refused = self.http.post(
                "/v1/transfers", json=body, headers={"Idempotency-Key": sent.key}
            )
            assert refused.status_code == 400, refused.text
            assert refused.json()["error"]["code"] == "idempotency_key_reused"

        @rule(data=st.data(), above=st.one_of(st.none(), st.integers(min_value=1, max_value=1_000)))
        def set_review(self, data: st.DataObject, above: int | None) -> None:
            """Set (or clear) an account's `review_above` (closed ones too); other limits stay
            unset."""
            (account,) = self._pick(data, 1)
            response = self.http.post(
                f"/v1/accounts/{account.id}/limits",
                json={"review_above": above},
                headers={"Idempotency-Key": f"limits-{ULID()}"},
            )
            assert response.status_code == 200, response.text
            account.review_above = above

        @precondition(lambda self: self.waiting)
        @rule(data=st.data(), approve=st.booleans())
        def decide(self, data: st.DataObject, approve: bool) -> None:
            """Approve or reject a transfer held for review, whatever the accounts' states
            and limits are now: approved on one shard it posts at once; across shards its
            saga credits the payee (failing, and releasing the payer, if the payee is no
            longer active); rejected, the held money is released on both sides."""
            waiting = self.waiting.pop(data.draw(st.integers(0, len(self.waiting) - 1)))
            response = self.http.post(
                f"/v1/transfers/{waiting.id}/" + ("approve" if approve else "reject"),
                headers={"Idempotency-Key": f"decide-{ULID()}"},
            )
            assert response.status_code in (200, 202), response.text
            debit, credit, amount = waiting.debit, waiting.credit, waiting.amount
            debit.held -= amount
            if not waiting.across:
                credit.pending -= amount
            if not approve:
                assert response.json()["status"] == "failed", response.text
                assert response.json()["failure_code"] == "review_rejected", response.text
                return
            _, answer = self._final(response)
            credited = not waiting.across or credit.status == "active"
            assert answer["status"] == ("posted" if credited else "failed"), answer
            if credited:
                debit.posted -= amount
                credit.posted += amount

        @rule(data=st.data(), action=st.sampled_from(["freeze", "unfreeze", "close"]))
        def change_state(self, data: st.DataObject, action: str) -> None:
            (account,) = self._pick(data, 1)
            response = self.http.post(
                f"/v1/accounts/{account.id}/{action}",
                headers={"Idempotency-Key": f"{action}-{ULID()}"},
            )
            if account.status == "closed" and action != "close":
                assert response.status_code == 409, response.text
                assert response.json()["error"]["code"] == "account_closed"
                return
            if action == "close" and (account.posted or account.held or account.pending):
                assert response.status_code == 409, response.text
                assert response.json()["error"]["code"] == "account_not_empty"
                return
            assert response.status_code == 200, response.text
            account.status = {"freeze": "frozen", "unfreeze": "active", "close": "closed"}[action]
            assert response.json()["status"] == account.status

        @invariant()
        def balances_match_the_model(self) -> None:
            # Opening an account on a drawn shard may open a few spare ones on the way, so a
            # long sequence can pass one page: read them all.
            seen: dict[str, dict] = {}
            params: dict[str, object] = {"limit": 100}
            while True:
                page = self.http.get("/v1/accounts", params=params).json()
                seen.update((a["id"], a) for a in page["data"])
                if not page["has_more"]:
                    break
                params["starting_after"] = page["data"][-1]["id"]
            spare = {i for ids in self.spare.values() for i in ids}
            assert set(seen) == set(self.model) | spare
            assert all(seen[i]["balance"]["posted"] == 0 for i in spare)
            for account_id, account in self.model.items():
                balance = seen[account_id]["balance"]
                assert balance == {
                    "posted": account.posted,
                    "pending": account.pending,
                    "held": account.held,
                    "available": account.available,
                }, (account, balance)
                assert seen[account_id]["status"] == account.status
            # The tenant's money only moves between its own accounts, held and pending alike,
            # but for what delayed credits debited and still show pending.
            assert sum(a["balance"]["posted"] for a in seen.values()) == -self.deferred
            # Across shards a transfer waiting for review is held on the payer and shows
            # nothing on the payee yet.
            reviewing = sum(w.amount for w in self.waiting if w.across)
            assert (
                sum(a["balance"]["held"] for a in seen.values()) + self.deferred
                == sum(a["balance"]["pending"] for a in seen.values()) + reviewing
            )

    return Ledger


async def test_random_movements_agree_with_the_model(api_url: str, cluster: ShardCluster) -> None:
    """Sequences of up to 40 steps. The API runs on this event loop, so the machine's
    blocking client runs in a thread, and asks the loop for each sequence's tenant."""
    loop = asyncio.get_running_loop()

    def tenant_key() -> str:
        return asyncio.run_coroutine_threadsafe(new_tenant_key(cluster), loop).result(timeout=30)

    await asyncio.to_thread(
        run_state_machine_as_test,
        machine_for(api_url, tenant_key),
        settings=settings(
            max_examples=25,
            stateful_step_count=40,
            deadline=None,
            database=None,
            # Shrinking replays cases over real HTTP for minutes; a failure prints its
            # whole sequence instead.
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
