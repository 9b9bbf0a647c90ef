"""The one posting path: every money movement, on any shard, is checked and applied here.

A movement turns into entry lines (bucket deltas). Single-shard transfers, the saga's
reserve / credit / post / release steps, and group-committed batches all call
`apply_movement`, so there is exactly one copy of each balance rule.

Refusals come in one fixed order, `REFUSAL_ORDER`, and the first rule a movement breaks
answers (as TigerBeetle orders its result codes): the request's shape, existence and
tenancy, account state, currency, limits and review, funds. Every path that moves money
follows it: a single-shard transfer, a saga's reserve (with what its payee's shard showed,
`payee_refusal`), a batch item, an atomic leg.
"""

from dataclasses import dataclass, replace
from enum import StrEnum

from ledger.accounts import (
    AccountState,
    AccountStatus,
    Balance,
    Layer,
    NormalBalance,
    Side,
    balance_of,
)
from ledger.errors import ErrorCode, LedgerError
from ledger.limits import BIGINT_MAX, TOTAL_MAX
from ledger.tenants import SYSTEM_TENANT


class Rule(StrEnum):
    """A kind of refusal; `REFUSAL_ORDER` ranks them."""

    SHAPE = "shape"
    """The request itself: a bad amount, an unknown currency, the same account twice."""
    EXISTENCE = "existence"
    """The ids it names: another tenant's id is exactly a missing id."""
    STATE = "state"
    """What the named account or transfer may do now: frozen, closed, no longer pending."""
    CURRENCY = "currency"
    """Whether the accounts hold the request's currency."""
    LIMITS = "limits"
    """What the accounts' owners allow: review, the daily limit, the balance ceiling, what a
    hold still holds."""
    FUNDS = "funds"
    """Whether the money is there, and whether the balances stay within their range."""


REFUSAL_ORDER: tuple[tuple[Rule, frozenset[ErrorCode]], ...] = (
    (
        Rule.SHAPE,
        frozenset(
            {
                ErrorCode.INVALID_REQUEST,
                ErrorCode.BODY_TOO_LARGE,
                ErrorCode.AMOUNT_INVALID,
                ErrorCode.CURRENCY_UNKNOWN,
                ErrorCode.METADATA_INVALID,
                ErrorCode.SAME_ACCOUNT,
            }
        ),
    ),
    (
        Rule.EXISTENCE,
        frozenset(
            {
                ErrorCode.ACCOUNT_NOT_FOUND,
                ErrorCode.TRANSFER_NOT_FOUND,
                ErrorCode.RESOURCE_NOT_FOUND,
            }
        ),
    ),
    (
        Rule.STATE,
        frozenset(
            {
                ErrorCode.ACCOUNT_FROZEN,
                ErrorCode.ACCOUNT_CLOSED,
                ErrorCode.TRANSFER_NOT_PENDING,
                ErrorCode.TRANSFER_EXPIRED,
            }
        ),
    ),
    (Rule.CURRENCY, frozenset({ErrorCode.CURRENCY_MISMATCH})),
    (
        Rule.LIMITS,
        frozenset(
            {
                ErrorCode.REVIEW_NOT_SUPPORTED,
                ErrorCode.REVIEW_QUEUE_FULL,
                ErrorCode.DAILY_LIMIT_EXCEEDED,
                ErrorCode.BALANCE_LIMIT_EXCEEDED,
                ErrorCode.AMOUNT_EXCEEDS_HOLD,
            }
        ),
    ),
    (Rule.FUNDS, frozenset({ErrorCode.INSUFFICIENT_FUNDS, ErrorCode.AMOUNT_OVERFLOW})),
)
"""The order in which a movement's refusals answer: the first rule broken wins. Within a
rule the debit account comes before the credit account, and the rules of one account in the
order their codes are checked (`check_movement`, then `apply_movement`)."""

_RULE_OF = {code: rule for rule, codes in REFUSAL_ORDER for code in codes}
_RANK = {rule: rank for rank, (rule, _) in enumerate(REFUSAL_ORDER)}


def rule_of(code: ErrorCode) -> Rule | None:
    """The rule a refusal code belongs to (None for what is no rule of a movement: a
    transient failure, an idempotency or authentication error)."""
    return _RULE_OF.get(code)


def precedence(code: ErrorCode) -> int:
    """The rank of a refusal code in `REFUSAL_ORDER` (lower answers first).

    Raises:
        KeyError: the code is no rule of a movement.
    """
    return _RANK[_RULE_OF[code]]


class Movement(StrEnum):
    """What a posting does to the two accounts it names."""

    TRANSFER = "transfer"
    """Single-shard: debit and credit posted at once."""
    RESERVE_FUNDS = "reserve_funds"
    """Saga step 1 on the source shard: a pending debit against the clearing account."""
    CREDIT_FUNDS = "credit_funds"
    """Saga step 2 on the destination shard: debit clearing, credit destination, posted."""
    POST_HOLD = "post_hold"
    """Saga step 3 on the source shard: turn the pending debit into a posted one."""
    RELEASE_HOLD = "release_hold"
    """Compensation on the source shard: cancel the pending debit."""
    HOLD = "hold"
    """A customer's hold on one shard: pending debit and pending credit between the two
    accounts; opens a `pending` transfer."""
    HOLD_FOR_REVIEW = "hold_for_review"
    """A single-shard transfer above its debit account's `review_above`: held like a hold
    (the lines and checks of `HOLD`), opening a transfer that `requires_review`."""
    INCREASE_HOLD = "increase_hold"
    """Raise an open hold (incremental authorisation): the lines and checks of `HOLD`."""
    CAPTURE = "capture"
    """Post part or all of a hold: the pending lines go, the posted lines come."""
    RELEASE = "release"
    """Release part or all of a hold (void, expiry, what a final capture leaves)."""
    PREPARE_CREDIT = "prepare_credit"
    """Atomic batches, on the destination shard: a pending credit of the destination against
    the clearing account, refused like a credit but not available until it is posted."""
    POST_CREDIT = "post_credit"
    """Atomic batches: turn the pending credit into a posted one (never refused)."""
    VOID_CREDIT = "void_credit"
    """Atomic batches, compensation on the destination shard: cancel the pending credit."""
    DEFER_DEBIT = "defer_debit"
    """Delayed availability, at once: debit the payer, posted, against the shard's
    availability account."""
    DEFER_CREDIT = "defer_credit"
    """Delayed availability, at once: the payee's pending credit, from the availability
    account."""
    MAKE_AVAILABLE = "make_available"
    """Delayed availability, at `available_on`: the payee's pending credit becomes posted."""
    RESERVE_FOR_REVIEW = "reserve_for_review"
    """Across shards, above the debit account's `review_above`: the reserve of
    `RESERVE_FUNDS`, opening a transfer that `requires_review`; no saga settles it until it
    is approved."""
    CAPTURE_ACROSS = "capture_across"
    """A hold across shards, on its source shard: post part of the held debit against the
    clearing account (the lines of `POST_HOLD`); the destination follows with
    `POST_CREDIT`."""
    RELEASE_ACROSS = "release_across"
    """A hold across shards, on its source shard: release part of the held debit (void,
    expiry, what a final capture leaves, a review's rejection); the destination follows
    with `VOID_CREDIT`."""
    INCREASE_ACROSS = "increase_across"
    """A hold across shards, on its source shard: hold more of the debit account (the
    lines and checks of `RESERVE_FUNDS`), once the destination reserved the raise
    (`RAISE_CREDIT`)."""
    RAISE_CREDIT = "raise_credit"
    """An increment of a hold across shards, on its destination shard and before its
    source holds more: reserve the raise as more pending credit (the lines and checks of
    `PREPARE_CREDIT`, under the payee's lock), so what the payee takes is decided before
    the payer commits; a raise the source then refuses is voided (`VOID_CREDIT`)."""


@dataclass(frozen=True, slots=True)
class Line:
    """One bucket delta: `amount` is added to the account's `layer`/`side` total."""

    account_id: str
    layer: Layer
    side: Side
    amount: int


@dataclass(frozen=True, slots=True)
class Entry:
    """An immutable journal line with the account's balance and version after it."""

    account_id: str
    layer: Layer
    side: Side
    amount: int
    posted_after: int
    available_after: int
    pending_after: int
    version_after: int


_LINES: dict[Movement, tuple[tuple[str, Layer, Side, int], ...]] = {
    Movement.TRANSFER: (
        ("debit", Layer.POSTED, Side.DEBIT, 1),
        ("credit", Layer.POSTED, Side.CREDIT, 1),
    ),
    Movement.RESERVE_FUNDS: (
        ("debit", Layer.PENDING, Side.DEBIT, 1),
        ("credit", Layer.PENDING, Side.CREDIT, 1),
    ),
    Movement.CREDIT_FUNDS: (
        ("debit", Layer.POSTED, Side.DEBIT, 1),
        ("credit", Layer.POSTED, Side.CREDIT, 1),
    ),
    Movement.POST_HOLD: (
        ("debit", Layer.PENDING, Side.DEBIT, -1),
        ("credit", Layer.PENDING, Side.CREDIT, -1),
        ("debit", Layer.POSTED, Side.DEBIT, 1),
        ("credit", Layer.POSTED, Side.CREDIT, 1),
    ),
    Movement.RELEASE_HOLD: (
        ("debit", Layer.PENDING, Side.DEBIT, -1),
        ("credit", Layer.PENDING, Side.CREDIT, -1),
    ),
    Movement.PREPARE_CREDIT: (
        ("debit", Layer.PENDING, Side.DEBIT, 1),
        ("credit", Layer.PENDING, Side.CREDIT, 1),
    ),
    Movement.POST_CREDIT: (
        ("debit", Layer.PENDING, Side.DEBIT, -1),
        ("credit", Layer.PENDING, Side.CREDIT, -1),
        ("debit", Layer.POSTED, Side.DEBIT, 1),
        ("credit", Layer.POSTED, Side.CREDIT, 1),
    ),
    Movement.VOID_CREDIT: (
        ("debit", Layer.PENDING, Side.DEBIT, -1),
        ("credit", Layer.PENDING, Side.CREDIT, -1),
    ),
}
# A customer's hold moves money like the saga's reserve, post and release, between the two
# customer accounts instead of through a clearing account.
_LINES[Movement.HOLD] = _LINES[Movement.INCREASE_HOLD] = _LINES[Movement.RESERVE_FUNDS]
_LINES[Movement.HOLD_FOR_REVIEW] = _LINES[Movement.HOLD]
_LINES[Movement.CAPTURE] = _LINES[Movement.POST_HOLD]
_LINES[Movement.RELEASE] = _LINES[Movement.RELEASE_HOLD]
_LINES[Movement.DEFER_DEBIT] = _LINES[Movement.TRANSFER]
_LINES[Movement.DEFER_CREDIT] = _LINES[Movement.RESERVE_FUNDS]
_LINES[Movement.MAKE_AVAILABLE] = _LINES[Movement.POST_HOLD]
_LINES[Movement.RESERVE_FOR_REVIEW] = _LINES[Movement.RESERVE_FUNDS]
_LINES[Movement.INCREASE_ACROSS] = _LINES[Movement.RESERVE_FUNDS]
_LINES[Movement.CAPTURE_ACROSS] = _LINES[Movement.POST_HOLD]
_LINES[Movement.RELEASE_ACROSS] = _LINES[Movement.RELEASE_HOLD]
_LINES[Movement.RAISE_CREDIT] = _LINES[Movement.PREPARE_CREDIT]
assert set(_LINES) == set(Movement)

# Movements that start new money moving are refused by frozen/closed accounts and by
# insufficient funds; movements that finish a reservation must always succeed.
_CHECKS_DEBIT_SIDE = frozenset(
    {
        Movement.TRANSFER,
        Movement.RESERVE_FUNDS,
        Movement.HOLD,
        Movement.HOLD_FOR_REVIEW,
        Movement.INCREASE_HOLD,
        Movement.DEFER_DEBIT,
        Movement.RESERVE_FOR_REVIEW,
        Movement.INCREASE_ACROSS,
    }
)
_CHECKS_CREDIT_SIDE = frozenset(
    {
        Movement.TRANSFER,
        Movement.CREDIT_FUNDS,
        Movement.PREPARE_CREDIT,
        Movement.RAISE_CREDIT,
        Movement.HOLD,
        Movement.HOLD_FOR_REVIEW,
        Movement.INCREASE_HOLD,
        Movement.DEFER_CREDIT,
    }
)
_CHECKS_FUNDS = _CHECKS_DEBIT_SIDE | _CHECKS_CREDIT_SIDE
DEBIT_SIDE_CHECKED = _CHECKS_DEBIT_SIDE
"""Movements that start money leaving their debit account (sent or newly held): the ones a
daily limit counts."""


def lines_for(
    movement: Movement, debit_account_id: str, credit_account_id: str, amount: int
) -> list[Line]:
    """The entry lines a movement writes; they always sum to zero per layer."""
    assert amount > 0
    ids = {"debit": debit_account_id, "credit": credit_account_id}
    lines = [
        Line(ids[who], layer, side, sign * amount) for who, layer, side, sign in _LINES[movement]
    ]
    for layer in Layer:
        net = sum(
            line.amount if line.side is Side.CREDIT else -line.amount
            for line in lines
            if line.layer is layer
        )
        assert net == 0, f"{movement} lines do not balance in {layer}"
    return lines


def _check_state(account: AccountState, param: str) -> None:
    if account.status is AccountStatus.FROZEN:
        raise LedgerError(ErrorCode.ACCOUNT_FROZEN, f"account {account.id} is frozen", param)
    if account.status is AccountStatus.CLOSED:
        raise LedgerError(ErrorCode.ACCOUNT_CLOSED, f"account {account.id} is closed", param)


def _raise_at(rule: Rule, payee_refusal: LedgerError | None) -> None:
    """Raise what the payee's shard showed, once the checks reach its rule."""
    if payee_refusal is not None and rule_of(payee_refusal.code) is rule:
        raise payee_refusal


def check_movement(
    movement: Movement,
    *,
    debit: AccountState | None,
    credit: AccountState | None,
    amount: int,
    currency: str,
    payee_refusal: LedgerError | None = None,
) -> tuple[AccountState, AccountState]:
    """Validate a movement against the two accounts' current state, in `REFUSAL_ORDER`:
    existence, state, currency. `payee_refusal` (a reserve across shards: what the payee's
    shard would refuse the credit for) answers at its rule, after this shard's accounts.

    Raises:
        LedgerError: account_not_found, account_frozen, account_closed, currency_mismatch.
    """
    if debit is None:
        raise LedgerError(ErrorCode.ACCOUNT_NOT_FOUND, "no such debit account", "debit_account_id")
    if credit is None:
        raise LedgerError(
            ErrorCode.ACCOUNT_NOT_FOUND, "no such credit account", "credit_account_id"
        )
    _raise_at(Rule.EXISTENCE, payee_refusal)
    if movement in _CHECKS_DEBIT_SIDE:
        _check_state(debit, "debit_account_id")
    if movement in _CHECKS_CREDIT_SIDE:
        _check_state(credit, "credit_account_id")
    _raise_at(Rule.STATE, payee_refusal)
    for account, param in ((debit, "debit_account_id"), (credit, "credit_account_id")):
        if account.currency != currency:
            raise LedgerError(
                ErrorCode.CURRENCY_MISMATCH,
                f"account {account.id} holds {account.currency}, not {currency}",
                param,
            )
    _raise_at(Rule.CURRENCY, payee_refusal)
    assert amount > 0
    return debit, credit


def apply_movement(
    movement: Movement,
    *,
    debit: AccountState | None,
    credit: AccountState | None,
    amount: int,
    currency: str,
    payee_refusal: LedgerError | None = None,
) -> list[Entry]:
    """Check a movement and apply it to the two in-memory accounts, returning its entries.

    The checks run in `REFUSAL_ORDER` (existence, state, currency, limits, funds); what the
    payee's shard would refuse (`payee_refusal`, for a reserve across shards) answers at
    its rule, after this shard's accounts. On a refusal nothing is changed. The caller
    persists the accounts and the entries in one transaction.

    Raises:
        LedgerError: account_not_found, account_frozen, account_closed, currency_mismatch,
            daily_limit_exceeded, balance_limit_exceeded, insufficient_funds,
            amount_overflow.
    """
    debit, credit = check_movement(
        movement,
        debit=debit,
        credit=credit,
        amount=amount,
        currency=currency,
        payee_refusal=payee_refusal,
    )
    assert debit.id != credit.id
    accounts = {debit.id: debit, credit.id: credit}
    lines = lines_for(movement, debit.id, credit.id, amount)

    # Compute every new total first, so that a refusal leaves the accounts untouched.
    totals = {
        (account_id, layer, side): account.total(layer, side)
        for account_id, account in accounts.items()
        for layer in Layer
        for side in Side
    }
    for line in lines:
        key = (line.account_id, line.layer, line.side)
        # Totals are unbounded sums (numeric on the shard): no volume of movements fills
        # them, so no tenant can spend a total another tenant's transfers need.
        totals[key] += line.amount
        assert totals[key] >= 0, f"{movement} takes {key} below zero; the hold is missing"
        assert totals[key] < TOTAL_MAX, f"{key} total leaves the numeric(38) column"

    after = {a: _balance_after(account, totals) for a, account in accounts.items()}
    # Limits, then funds (`REFUSAL_ORDER`).
    if movement in _CHECKS_DEBIT_SIDE:
        _check_daily_outgoing(debit, amount)
    if movement in _CHECKS_FUNDS:
        _check_max_balance(debit, after[debit.id])
        _check_max_balance(credit, after[credit.id])
    _raise_at(Rule.LIMITS, payee_refusal)
    if movement in _CHECKS_FUNDS:
        # Either side may lose available money: a debit takes from a credit-normal account,
        # a credit from a debit-normal one.
        _check_funds(debit, after[debit.id])
        _check_funds(credit, after[credit.id])
    for account_id, balance in after.items():
        _check_range(accounts[account_id], balance)
    _raise_at(Rule.FUNDS, payee_refusal)
    if movement in _CHECKS_DEBIT_SIDE and debit.limits.daily_outgoing is not None:
        debit.outgoing_24h += amount

    entries: list[Entry] = []
    for line in lines:
        account = accounts[line.account_id]
        before = account.total(line.layer, line.side)
        account.set_total(line.layer, line.side, before + line.amount)
        account.version += 1
        balance = account.balance
        entries.append(
            Entry(
                account_id=account.id,
                layer=line.layer,
                side=line.side,
                amount=line.amount,
                posted_after=balance.posted,
                available_after=balance.available,
                pending_after=balance.pending,
                version_after=account.version,
            )
        )
    assert all(accounts[a].total(layer, side) == v for (a, layer, side), v in totals.items())
    return entries


def _balance_after(account: AccountState, totals: dict[tuple[str, Layer, Side], int]) -> Balance:
    return balance_of(
        account.normal_balance,
        debits_posted=totals[(account.id, Layer.POSTED, Side.DEBIT)],
        credits_posted=totals[(account.id, Layer.POSTED, Side.CREDIT)],
        debits_pending=totals[(account.id, Layer.PENDING, Side.DEBIT)],
        credits_pending=totals[(account.id, Layer.PENDING, Side.CREDIT)],
    )


def _check_max_balance(account: AccountState, after: Balance) -> None:
    """Refuse a movement that would raise an account's posted plus pending balance above its
    `max_balance`.

    Raises:
        LedgerError(balance_limit_exceeded).
    """
    ceiling = account.limits.max_balance
    if ceiling is None:
        return
    before = account.balance
    if after.posted + after.pending > max(ceiling, before.posted + before.pending):
        raise LedgerError(
            ErrorCode.BALANCE_LIMIT_EXCEEDED,
            f"account {account.id} may hold at most {ceiling}",
            "amount",
        )


def _check_daily_outgoing(account: AccountState, amount: int) -> None:
    """Refuse a debit that would take what the account sent over the last 24 hours above
    its `daily_outgoing`.

    Raises:
        LedgerError(daily_limit_exceeded).
    """
    limit = account.limits.daily_outgoing
    if limit is not None and account.outgoing_24h + amount > limit:
        raise LedgerError(
            ErrorCode.DAILY_LIMIT_EXCEEDED,
            f"account {account.id} sent {account.outgoing_24h} of its {limit} over 24 hours",
            "amount",
        )


def _check_range(account: AccountState, after: Balance) -> None:
    """Keep what a customer account shows within the bigint range the API documents.

    Posted plus pending is held to the range too, unless the movement leaves it where it
    was: what is pending becomes posted later (a capture, a credit made available, a
    follow-up on another shard), and that must never be refused for the range, since the
    money already left the other side.

    A system account (a clearing account) is exempt: every tenant's cross-shard transfers
    pass through it, so a bound there would be a budget one tenant could exhaust for all.

    Raises:
        LedgerError(amount_overflow): a balance figure would leave the range.
    """
    if account.tenant_id == SYSTEM_TENANT:
        return
    figures = (after.posted, after.pending, after.held, after.available)
    owed_before = account.balance.posted + account.balance.pending
    owed_after = after.posted + after.pending
    if not all(-BIGINT_MAX <= figure <= BIGINT_MAX for figure in figures) or (
        abs(owed_after) > BIGINT_MAX and abs(owed_after) > abs(owed_before)
    ):
        raise LedgerError(
            ErrorCode.AMOUNT_OVERFLOW,
            "the resulting balance would exceed the bigint range",
            "amount",
        )


def _check_funds(account: AccountState, after: Balance) -> None:
    """Refuse a movement that would take an account below its floor: `min_available` when
    set (an overdraft line when negative), else zero unless it may overdraw. A movement
    that leaves it no lower than before is never refused."""
    floor = account.limits.min_available
    if floor is None:
        if account.allow_overdraft:
            return
        floor = 0
    if after.available < floor and after.available < account.balance.available:
        raise LedgerError(
            ErrorCode.INSUFFICIENT_FUNDS,
            f"account {account.id} has {account.balance.available} available",
            "amount",
        )


def _clearing_stub(currency: str) -> AccountState:
    """A clearing account for a trial on a copy (it takes any movement)."""
    return AccountState(
        id="clearing",
        tenant_id=SYSTEM_TENANT,
        currency=currency,
        normal_balance=NormalBalance.CREDIT,
        allow_overdraft=True,
        status=AccountStatus.ACTIVE,
        debits_posted=0,
        credits_posted=0,
        debits_pending=0,
        credits_pending=0,
        version=0,
    )


def refusal_of_payee(
    payee: AccountState | None, movement: Movement, *, amount: int, currency: str
) -> LedgerError | None:
    """What the payee's shard would refuse a credit across shards for now (`movement` is
    the destination's step: `CREDIT_FUNDS`, or `PREPARE_CREDIT` for a hold or a delayed
    credit), tried on a copy of the payee's state; None when it would take it.

    The source's reserve carries it, so a transfer across shards is refused in the same
    order as one on a single shard. The saga's credit step still checks the payee under
    its lock: this is what the request is answered with, not a promise.
    """
    assert movement in (Movement.CREDIT_FUNDS, Movement.PREPARE_CREDIT)
    trial = None if payee is None else replace(payee)
    try:
        apply_movement(
            movement, debit=_clearing_stub(currency), credit=trial, amount=amount, currency=currency
        )
    except LedgerError as refused:
        if refused.code is ErrorCode.ACCOUNT_NOT_FOUND:
            return LedgerError(refused.code, "no such credit account", "credit_account_id")
        return refused
    return None


def refusal_of_payer(payer: AccountState, *, amount: int, currency: str) -> LedgerError | None:
    """What `payer`, as a copy of its state shows it, refuses holding `amount` more against
    a clearing account (an increment across shards) for on its own: its state, its currency
    or its funds (its limits need what it sent, which a copy does not know); None when it
    would take it as far as the copy shows."""
    try:
        apply_movement(
            Movement.INCREASE_ACROSS,
            debit=replace(payer),
            credit=_clearing_stub(currency),
            amount=amount,
            currency=currency,
        )
    except LedgerError as refused:
        if rule_of(refused.code) in (Rule.STATE, Rule.CURRENCY, Rule.FUNDS):
            return refused
    return None
