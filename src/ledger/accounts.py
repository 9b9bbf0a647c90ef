"""Accounts: their lifecycle, and the balance math that turns four raw totals into what an
API shows."""

from dataclasses import dataclass
from enum import StrEnum

from ledger.errors import ErrorCode, LedgerError


class NormalBalance(StrEnum):
    """Which side increases an account: customer wallets are credit-normal, assets debit."""

    CREDIT = "credit"
    DEBIT = "debit"


class AccountStatus(StrEnum):
    """An active account moves money; frozen and closed ones refuse new movements."""

    ACTIVE = "active"
    FROZEN = "frozen"
    CLOSED = "closed"


STATUS_TRANSITIONS: dict[AccountStatus, frozenset[AccountStatus]] = {
    AccountStatus.ACTIVE: frozenset(AccountStatus),
    AccountStatus.FROZEN: frozenset(AccountStatus),
    AccountStatus.CLOSED: frozenset({AccountStatus.CLOSED}),
}
"""The status changes an account may make (setting the status it has is a no-op); closing
is final."""
assert set(STATUS_TRANSITIONS) == set(AccountStatus)


def check_status_change(
    account_id: str, current: AccountStatus, new: AccountStatus, balance: "Balance"
) -> AccountStatus:
    """`new`, when the account may move there from `current` holding `balance`.

    Raises:
        LedgerError(account_closed): the account is closed; closing is final.
        LedgerError(account_not_empty): closing an account that still holds money.
    """
    if new not in STATUS_TRANSITIONS[current]:
        raise LedgerError(ErrorCode.ACCOUNT_CLOSED, f"account {account_id} is closed", "id")
    if new is AccountStatus.CLOSED and (balance.posted or balance.pending or balance.held):
        raise LedgerError(
            ErrorCode.ACCOUNT_NOT_EMPTY,
            f"account {account_id} still holds money; move it out before closing",
            "id",
        )
    return new


class Layer(StrEnum):
    """Posted money has settled; pending money is reserved by a transfer not yet posted."""

    POSTED = "posted"
    PENDING = "pending"


class Side(StrEnum):
    """The side of an entry."""

    DEBIT = "debit"
    CREDIT = "credit"


@dataclass(frozen=True, slots=True)
class Balance:
    """An account's balance in its normal orientation, as the API shows it.

    `pending` is incoming money not yet available, `held` is outgoing money reserved by
    pending transfers, and `available = posted - held` is what may be spent now.
    """

    posted: int
    pending: int
    held: int

    @property
    def available(self) -> int:
        """What may be spent now."""
        return self.posted - self.held


@dataclass(frozen=True, slots=True)
class AccountLimits:
    """What an account's owner allows it; None: no such limit.

    `min_available` is the lowest available balance a movement may leave (an overdraft line
    when negative; without it, `allow_overdraft` decides: no floor, or zero).
    `max_balance` is the highest posted plus pending balance a movement may leave.
    `daily_outgoing` is the most the account may send over any 24 hours.
    `review_above`: a transfer debiting more waits for a person's review.
    """

    min_available: int | None = None
    max_balance: int | None = None
    daily_outgoing: int | None = None
    review_above: int | None = None


NO_LIMITS = AccountLimits()


@dataclass(slots=True)
class AccountState:
    """The mutable totals of one account, as stored on its shard.

    The four totals are sums of entries: `debits_posted` is the sum of the account's posted
    debit entries, and so on. They never go negative.
    """

    id: str
    tenant_id: str
    currency: str
    normal_balance: NormalBalance
    allow_overdraft: bool
    status: AccountStatus
    debits_posted: int
    credits_posted: int
    debits_pending: int
    credits_pending: int
    version: int
    limits: AccountLimits = NO_LIMITS
    outgoing_24h: int = 0
    """What the account sent over the last 24 hours, as loaded under its lock (only when it
    has a daily limit), plus what this batch's movements sent since."""

    def total(self, layer: Layer, side: Side) -> int:
        """One of the four raw totals."""
        if layer is Layer.POSTED:
            return self.debits_posted if side is Side.DEBIT else self.credits_posted
        return self.debits_pending if side is Side.DEBIT else self.credits_pending

    def set_total(self, layer: Layer, side: Side, value: int) -> None:
        """Replace one of the four raw totals; callers check the range first."""
        assert value >= 0, f"{self.id}: {layer} {side} total would go negative: {value}"
        if layer is Layer.POSTED:
            if side is Side.DEBIT:
                self.debits_posted = value
            else:
                self.credits_posted = value
        elif side is Side.DEBIT:
            self.debits_pending = value
        else:
            self.credits_pending = value

    @property
    def balance(self) -> Balance:
        """The balance in the account's normal orientation."""
        return balance_of(
            self.normal_balance,
            debits_posted=self.debits_posted,
            credits_posted=self.credits_posted,
            debits_pending=self.debits_pending,
            credits_pending=self.credits_pending,
        )


def balance_of(
    normal_balance: NormalBalance,
    *,
    debits_posted: int,
    credits_posted: int,
    debits_pending: int,
    credits_pending: int,
) -> Balance:
    """Fold the four raw totals into a balance in the account's normal orientation."""
    if normal_balance is NormalBalance.CREDIT:
        return Balance(
            posted=credits_posted - debits_posted, pending=credits_pending, held=debits_pending
        )
    return Balance(
        posted=debits_posted - credits_posted, pending=debits_pending, held=credits_pending
    )
