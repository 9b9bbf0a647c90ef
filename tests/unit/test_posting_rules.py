"""The posting rules, against a tiny in-memory model of the ledger."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.accounts import AccountLimits, AccountState, AccountStatus, Layer, NormalBalance, Side
from ledger.errors import ErrorCode, LedgerError
from ledger.limits import BIGINT_MAX
from ledger.posting import (
    REFUSAL_ORDER,
    Movement,
    Rule,
    apply_movement,
    lines_for,
    precedence,
    rule_of,
)
from ledger.tenants import SYSTEM_TENANT


def account(
    account_id: str,
    *,
    overdraft: bool = False,
    normal: NormalBalance = NormalBalance.CREDIT,
    status: AccountStatus = AccountStatus.ACTIVE,
    currency: str = "USD",
) -> AccountState:
    return AccountState(
        id=account_id,
        tenant_id="t",
        currency=currency,
        normal_balance=normal,
        allow_overdraft=overdraft,
        status=status,
        debits_posted=0,
        credits_posted=0,
        debits_pending=0,
        credits_pending=0,
        version=0,
    )


def test_transfer_moves_posted_balances_and_versions() -> None:
    """A transfer debits one account and credits the other, one version each."""
    bank, alice = account("bank", overdraft=True), account("alice")
    entries = apply_movement(
        Movement.TRANSFER, debit=bank, credit=alice, amount=500, currency="USD"
    )
    assert alice.balance.posted == 500
    assert bank.balance.posted == -500
    assert [e.version_after for e in entries] == [1, 1]
    assert [e.posted_after for e in entries] == [-500, 500]


def test_insufficient_funds_changes_nothing() -> None:
    """A refused debit leaves both accounts exactly as they were."""
    alice, bob = account("alice"), account("bob")
    with pytest.raises(LedgerError) as refused:
        apply_movement(Movement.TRANSFER, debit=alice, credit=bob, amount=1, currency="USD")
    assert refused.value.code is ErrorCode.INSUFFICIENT_FUNDS
    assert alice == account("alice")
    assert bob == account("bob")


def test_reserve_holds_then_post_settles() -> None:
    """A reserve holds funds (available drops, posted does not); posting settles them."""
    bank, alice, clearing = (
        account("bank", overdraft=True),
        account("alice"),
        account("c", overdraft=True),
    )
    apply_movement(Movement.TRANSFER, debit=bank, credit=alice, amount=100, currency="USD")
    apply_movement(Movement.RESERVE_FUNDS, debit=alice, credit=clearing, amount=60, currency="USD")
    assert (alice.balance.posted, alice.balance.held, alice.balance.available) == (100, 60, 40)
    with pytest.raises(LedgerError) as refused:
        apply_movement(
            Movement.RESERVE_FUNDS, debit=alice, credit=clearing, amount=41, currency="USD"
        )
    assert refused.value.code is ErrorCode.INSUFFICIENT_FUNDS
    apply_movement(Movement.POST_HOLD, debit=alice, credit=clearing, amount=60, currency="USD")
    assert (alice.balance.posted, alice.balance.held, alice.balance.available) == (40, 0, 40)
    assert clearing.balance.posted == 60


def test_release_returns_the_hold() -> None:
    """Releasing a hold restores the available balance exactly."""
    bank, alice, clearing = (
        account("bank", overdraft=True),
        account("alice"),
        account("c", overdraft=True),
    )
    apply_movement(Movement.TRANSFER, debit=bank, credit=alice, amount=100, currency="USD")
    apply_movement(Movement.RESERVE_FUNDS, debit=alice, credit=clearing, amount=70, currency="USD")
    apply_movement(Movement.RELEASE_HOLD, debit=alice, credit=clearing, amount=70, currency="USD")
    assert (alice.balance.posted, alice.balance.held, alice.balance.available) == (100, 0, 100)
    assert clearing.balance.posted == 0
    assert clearing.balance.pending == 0


def test_a_prepared_credit_is_not_available_until_posted_and_voids_to_nothing() -> None:
    """An atomic batch's pending credit: refused like a credit by a frozen account, shown
    as pending (not available) until posted; a void leaves both accounts as they were."""
    clearing, bob = account("c", overdraft=True), account("bob")
    frozen = account("frozen", status=AccountStatus.FROZEN)
    with pytest.raises(LedgerError) as refused:
        apply_movement(
            Movement.PREPARE_CREDIT, debit=clearing, credit=frozen, amount=5, currency="USD"
        )
    assert refused.value.code is ErrorCode.ACCOUNT_FROZEN

    apply_movement(Movement.PREPARE_CREDIT, debit=clearing, credit=bob, amount=30, currency="USD")
    assert (bob.balance.posted, bob.balance.pending, bob.balance.available) == (0, 30, 0)
    apply_movement(Movement.VOID_CREDIT, debit=clearing, credit=bob, amount=30, currency="USD")
    assert (bob.balance.posted, bob.balance.pending, bob.balance.available) == (0, 0, 0)
    assert clearing.balance.pending == 0

    apply_movement(Movement.PREPARE_CREDIT, debit=clearing, credit=bob, amount=30, currency="USD")
    bob.status = AccountStatus.FROZEN
    apply_movement(Movement.POST_CREDIT, debit=clearing, credit=bob, amount=30, currency="USD")
    assert (bob.balance.posted, bob.balance.pending, bob.balance.available) == (30, 0, 30)
    assert (clearing.balance.posted, clearing.balance.pending) == (-30, 0)


def test_frozen_and_closed_refuse_new_money_but_not_settlement() -> None:
    """Frozen and closed accounts refuse transfers; a post of an existing hold still succeeds."""
    bank = account("bank", overdraft=True)
    frozen = account("frozen", status=AccountStatus.FROZEN)
    with pytest.raises(LedgerError) as refused:
        apply_movement(Movement.TRANSFER, debit=bank, credit=frozen, amount=1, currency="USD")
    assert refused.value.code is ErrorCode.ACCOUNT_FROZEN
    closed = account("closed", status=AccountStatus.CLOSED)
    with pytest.raises(LedgerError) as refused:
        apply_movement(Movement.CREDIT_FUNDS, debit=bank, credit=closed, amount=1, currency="USD")
    assert refused.value.code is ErrorCode.ACCOUNT_CLOSED

    alice, clearing = account("alice"), account("c", overdraft=True)
    apply_movement(Movement.TRANSFER, debit=bank, credit=alice, amount=10, currency="USD")
    apply_movement(Movement.RESERVE_FUNDS, debit=alice, credit=clearing, amount=10, currency="USD")
    alice.status = AccountStatus.FROZEN
    apply_movement(Movement.POST_HOLD, debit=alice, credit=clearing, amount=10, currency="USD")
    assert alice.balance.posted == 0


def test_currency_mismatch_names_the_account() -> None:
    """A transfer in another currency than an account's is refused with its param."""
    bank, euro = account("bank", overdraft=True), account("euro", currency="EUR")
    with pytest.raises(LedgerError) as refused:
        apply_movement(Movement.TRANSFER, debit=bank, credit=euro, amount=1, currency="USD")
    assert refused.value.code is ErrorCode.CURRENCY_MISMATCH
    assert refused.value.param == "credit_account_id"


def test_overflow_is_refused() -> None:
    """A credit that would push a total past the bigint range is refused, not wrapped."""
    bank, alice = account("bank", overdraft=True), account("alice")
    apply_movement(Movement.TRANSFER, debit=bank, credit=alice, amount=BIGINT_MAX, currency="USD")
    with pytest.raises(LedgerError) as refused:
        apply_movement(Movement.TRANSFER, debit=bank, credit=alice, amount=1, currency="USD")
    assert refused.value.code is ErrorCode.AMOUNT_OVERFLOW


def test_a_hold_that_would_take_available_past_the_range_is_refused() -> None:
    """Every total fits a bigint, but an overdrawn account's available balance subtracts its
    holds too: a reserve that would take it past the range is refused and changes nothing."""
    bank, alice, clearing = account("bank", overdraft=True), account("alice"), account("clr")
    apply_movement(
        Movement.TRANSFER, debit=bank, credit=alice, amount=BIGINT_MAX - 1, currency="USD"
    )
    before = (account("bank", overdraft=True), account("clr"))
    before[0].debits_posted = BIGINT_MAX - 1
    before[0].version = 1
    with pytest.raises(LedgerError) as refused:
        apply_movement(
            Movement.RESERVE_FUNDS, debit=bank, credit=clearing, amount=2, currency="USD"
        )
    assert refused.value.code is ErrorCode.AMOUNT_OVERFLOW
    assert (bank, clearing) == before
    apply_movement(Movement.RESERVE_FUNDS, debit=bank, credit=clearing, amount=1, currency="USD")
    assert bank.balance.available == -BIGINT_MAX


def test_a_clearing_account_has_no_budget_a_tenant_could_spend() -> None:
    """A clearing account carries every tenant's cross-shard money, so its totals are not
    bounded by the bigint range: after a tenant moves far more than 2^63 through it, other
    tenants' transfers still reserve, credit and post. A customer account stays bounded."""
    clearing = account("clr")
    clearing.tenant_id = SYSTEM_TENANT
    for round_trip in range(4):
        whale = account(f"whale{round_trip}", overdraft=True)
        apply_movement(
            Movement.RESERVE_FUNDS, debit=whale, credit=clearing, amount=BIGINT_MAX, currency="USD"
        )
        apply_movement(
            Movement.POST_HOLD, debit=whale, credit=clearing, amount=BIGINT_MAX, currency="USD"
        )
    assert clearing.credits_posted == 4 * BIGINT_MAX
    payer = account("payer", overdraft=True)
    apply_movement(Movement.RESERVE_FUNDS, debit=payer, credit=clearing, amount=5, currency="USD")
    apply_movement(Movement.POST_HOLD, debit=payer, credit=clearing, amount=5, currency="USD")
    assert clearing.balance.posted == 4 * BIGINT_MAX + 5
    assert payer.balance.posted == -5
    saver = account("saver")
    apply_movement(
        Movement.CREDIT_FUNDS, debit=clearing, credit=saver, amount=BIGINT_MAX, currency="USD"
    )
    with pytest.raises(LedgerError) as refused:
        apply_movement(
            Movement.CREDIT_FUNDS, debit=clearing, credit=saver, amount=1, currency="USD"
        )
    assert refused.value.code is ErrorCode.AMOUNT_OVERFLOW
    assert saver.balance.posted == BIGINT_MAX


def test_debit_normal_accounts_mirror() -> None:
    """A debit-normal account grows with debits; a credit takes its available down."""
    cash = account("cash", normal=NormalBalance.DEBIT)
    equity = account("equity", overdraft=True)
    apply_movement(Movement.TRANSFER, debit=cash, credit=equity, amount=300, currency="USD")
    assert cash.balance.posted == 300
    with pytest.raises(LedgerError):
        apply_movement(Movement.TRANSFER, debit=equity, credit=cash, amount=301, currency="USD")


@pytest.mark.parametrize("movement", list(Movement))
def test_lines_balance_per_layer(movement: Movement) -> None:
    """Every movement's lines sum to zero in each layer (double entry)."""
    lines = lines_for(movement, "a", "b", 7)
    for layer in Layer:
        net = sum(
            line.amount if line.side is Side.CREDIT else -line.amount
            for line in lines
            if line.layer is layer
        )
        assert net == 0


operations = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]), st.sampled_from(["a", "b", "c"]), st.integers(1, 500)
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(operations)
def test_random_transfers_match_a_model(ops: list[tuple[str, str, int]]) -> None:
    """Random transfers among three funded accounts agree with a dict-of-ints model:
    balances match, nobody goes below zero, and the total never changes."""
    bank = account("bank", overdraft=True)
    accounts = {name: account(name) for name in "abc"}
    model = dict.fromkeys("abc", 0)
    for name in "abc":
        apply_movement(
            Movement.TRANSFER, debit=bank, credit=accounts[name], amount=1000, currency="USD"
        )
        model[name] = 1000
    for debit, credit, amount in ops:
        if debit == credit:
            continue
        if model[debit] < amount:
            with pytest.raises(LedgerError) as refused:
                apply_movement(
                    Movement.TRANSFER,
                    debit=accounts[debit],
                    credit=accounts[credit],
                    amount=amount,
                    currency="USD",
                )
            assert refused.value.code is ErrorCode.INSUFFICIENT_FUNDS
            continue
        apply_movement(
            Movement.TRANSFER,
            debit=accounts[debit],
            credit=accounts[credit],
            amount=amount,
            currency="USD",
        )
        model[debit] -= amount
        model[credit] += amount
    assert {n: a.balance.posted for n, a in accounts.items()} == model
    assert sum(model.values()) == 3000
    assert bank.balance.posted == -3000


def test_limits_refuse_in_their_order_and_count_within_a_batch() -> None:
    """The floor, the ceiling and the daily limit, each with its own code; what earlier
    movements of a batch sent counts against the daily limit of the next."""
    alice, bob = account("alice"), account("bob")
    alice.credits_posted = 1_000
    alice.limits = AccountLimits(min_available=-200, daily_outgoing=700)
    bob.limits = AccountLimits(max_balance=900)
    apply_movement(Movement.TRANSFER, debit=alice, credit=bob, amount=600, currency="USD")
    # Both limits broken: the debit account's comes first (`REFUSAL_ORDER`).
    with pytest.raises(LedgerError) as refused:
        apply_movement(Movement.TRANSFER, debit=alice, credit=bob, amount=301, currency="USD")
    assert refused.value.code is ErrorCode.DAILY_LIMIT_EXCEEDED
    with pytest.raises(LedgerError) as refused:
        apply_movement(Movement.TRANSFER, debit=alice, credit=bob, amount=101, currency="USD")
    assert refused.value.code is ErrorCode.DAILY_LIMIT_EXCEEDED
    assert alice.outgoing_24h == 600
    alice.limits = AccountLimits(min_available=-200, daily_outgoing=1_000)
    with pytest.raises(LedgerError) as refused:
        apply_movement(Movement.TRANSFER, debit=alice, credit=bob, amount=301, currency="USD")
    assert refused.value.code is ErrorCode.BALANCE_LIMIT_EXCEEDED
    alice.limits = AccountLimits(min_available=-200, daily_outgoing=700)
    bob.limits = AccountLimits()
    alice.limits = AccountLimits(min_available=-200)
    with pytest.raises(LedgerError) as refused:
        apply_movement(Movement.TRANSFER, debit=alice, credit=bob, amount=601, currency="USD")
    assert refused.value.code is ErrorCode.INSUFFICIENT_FUNDS
    apply_movement(Movement.TRANSFER, debit=alice, credit=bob, amount=600, currency="USD")
    assert alice.balance.available == -200


def test_every_movement_refusal_has_one_rule_in_the_order() -> None:
    """`REFUSAL_ORDER` names each rule once, in the documented order, and every code a
    movement can be refused with belongs to exactly one rule."""
    rules = [rule for rule, _ in REFUSAL_ORDER]
    assert rules == [
        Rule.SHAPE,
        Rule.EXISTENCE,
        Rule.STATE,
        Rule.CURRENCY,
        Rule.LIMITS,
        Rule.FUNDS,
    ]
    codes = [code for _, group in REFUSAL_ORDER for code in group]
    assert len(codes) == len(set(codes))
    assert precedence(ErrorCode.ACCOUNT_NOT_FOUND) < precedence(ErrorCode.ACCOUNT_FROZEN)
    assert precedence(ErrorCode.CURRENCY_MISMATCH) < precedence(ErrorCode.REVIEW_NOT_SUPPORTED)
    assert precedence(ErrorCode.DAILY_LIMIT_EXCEEDED) < precedence(ErrorCode.INSUFFICIENT_FUNDS)


@settings(max_examples=300, deadline=None)
@given(
    frozen=st.booleans(),
    other_currency=st.booleans(),
    limited=st.booleans(),
    ceiling=st.booleans(),
    funded=st.booleans(),
    payee_broken=st.sampled_from([None, *ErrorCode]),
)
def test_the_first_broken_rule_answers(
    frozen: bool,
    other_currency: bool,
    limited: bool,
    ceiling: bool,
    funded: bool,
    payee_broken: ErrorCode | None,
) -> None:
    """Whatever combination of rules a transfer breaks, the refusal is the one of the
    earliest rule in `REFUSAL_ORDER` (the debit account before the credit account, and what
    the payee's shard showed after this shard's accounts at the same rule)."""
    payer = account("payer", status=AccountStatus.FROZEN if frozen else AccountStatus.ACTIVE)
    payer.credits_posted = 1_000 if funded else 0
    payer.limits = AccountLimits(daily_outgoing=10 if limited else None)
    payee = account("payee", currency="EUR" if other_currency else "USD")
    payee.limits = AccountLimits(max_balance=10 if ceiling else None)
    remote = None
    if payee_broken is not None and rule_of(payee_broken) not in (None, Rule.SHAPE):
        remote = LedgerError(payee_broken, "the payee's shard refuses", "credit_account_id")
    broken = [
        (precedence(code), order, code)
        for order, (is_broken, code) in enumerate(
            [
                (frozen, ErrorCode.ACCOUNT_FROZEN),
                (other_currency, ErrorCode.CURRENCY_MISMATCH),
                (limited, ErrorCode.DAILY_LIMIT_EXCEEDED),
                (ceiling, ErrorCode.BALANCE_LIMIT_EXCEEDED),
                (not funded, ErrorCode.INSUFFICIENT_FUNDS),
                (remote is not None, remote.code if remote is not None else None),
            ]
        )
        if is_broken and code is not None
    ]
    expected = min(broken)[2] if broken else None
    answered: ErrorCode | None = None
    try:
        apply_movement(
            Movement.TRANSFER,
            debit=payer,
            credit=payee,
            amount=100,
            currency="USD",
            payee_refusal=remote,
        )
    except LedgerError as refused:
        answered = refused.code
    assert answered is expected, (answered, broken)
