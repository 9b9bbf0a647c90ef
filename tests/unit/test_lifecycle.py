"""The transfer and account lifecycles, as data: which changes are allowed, which are final."""

import pytest

from ledger.accounts import AccountStatus, Balance, check_status_change
from ledger.errors import ErrorCode, LedgerError
from ledger.posting import Movement
from ledger.transfers import (
    STATUS_TRANSITIONS,
    STEP_TRANSITIONS,
    SagaStep,
    TransferStatus,
    check_step,
    check_transition,
    finishing,
    opening_status,
)

EMPTY = Balance(posted=0, pending=0, held=0)


def test_final_states_have_no_way_out() -> None:
    """Posted, voided, expired and failed transfers never change again; nor do finished
    sagas."""
    finals = {s for s, nexts in STATUS_TRANSITIONS.items() if not nexts}
    assert finals == {
        TransferStatus.POSTED,
        TransferStatus.VOIDED,
        TransferStatus.EXPIRED,
        TransferStatus.FAILED,
    }
    assert {s for s, nexts in STEP_TRANSITIONS.items() if not nexts} == {
        SagaStep.HELD,
        SagaStep.POSTED,
        SagaStep.RELEASED,
    }
    for final in finals:
        for new in TransferStatus:
            with pytest.raises(AssertionError):
                check_transition(final, new)


def test_a_credited_transfer_is_never_released() -> None:
    """Once the destination was credited, the only way on is to post the hold."""
    with pytest.raises(AssertionError):
        check_step(SagaStep.CREDITED, SagaStep.RELEASED)
    assert check_step(SagaStep.CREDITED, SagaStep.POSTED) is SagaStep.POSTED


@pytest.mark.parametrize(
    ("movement", "status"),
    [
        (Movement.TRANSFER, TransferStatus.POSTED),
        (Movement.RESERVE_FUNDS, TransferStatus.PROCESSING),
        (Movement.RESERVE_FOR_REVIEW, TransferStatus.REQUIRES_REVIEW),
    ],
)
def test_how_transfers_open(movement: Movement, status: TransferStatus) -> None:
    """One shard: posted at once; two: processing until the saga finishes."""
    assert opening_status(movement) is status


def test_how_sagas_finish() -> None:
    """A post ends a transfer posted; a release ends it failed; nothing else finishes one."""
    assert finishing(Movement.POST_HOLD) == (TransferStatus.POSTED, SagaStep.POSTED)
    assert finishing(Movement.RELEASE_HOLD) == (TransferStatus.FAILED, SagaStep.RELEASED)
    with pytest.raises(AssertionError):
        finishing(Movement.CREDIT_FUNDS)
    with pytest.raises(AssertionError):
        opening_status(Movement.POST_HOLD)


def test_closing_an_account_is_final_and_needs_it_empty() -> None:
    """Active and frozen accounts move freely; a closed one stays closed; only an empty
    account closes."""
    for current in (AccountStatus.ACTIVE, AccountStatus.FROZEN):
        for new in AccountStatus:
            assert check_status_change("a", current, new, EMPTY) is new
    assert check_status_change("a", AccountStatus.CLOSED, AccountStatus.CLOSED, EMPTY)
    for new in (AccountStatus.ACTIVE, AccountStatus.FROZEN):
        with pytest.raises(LedgerError) as refused:
            check_status_change("a", AccountStatus.CLOSED, new, EMPTY)
        assert refused.value.code is ErrorCode.ACCOUNT_CLOSED
    for holding in (Balance(1, 0, 0), Balance(0, 1, 0), Balance(0, 0, 1)):
        with pytest.raises(LedgerError) as refused:
            check_status_change("a", AccountStatus.ACTIVE, AccountStatus.CLOSED, holding)
        assert refused.value.code is ErrorCode.ACCOUNT_NOT_EMPTY
