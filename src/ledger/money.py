"""Money is an integer count of minor units plus the currency's exponent; never a float."""

from typing import Final

from ledger.errors import ErrorCode, LedgerError
from ledger.limits import BIGINT_MAX

# ISO 4217 minor-unit exponents. A currency absent here is refused, which is safer than
# guessing an exponent and misplacing a decimal point.
CURRENCY_EXPONENTS: Final[dict[str, int]] = {
    "AED": 2, "ARS": 2, "AUD": 2, "BGN": 2, "BHD": 3, "BRL": 2, "CAD": 2, "CHF": 2,
    "CLP": 0, "CNY": 2, "COP": 2, "CZK": 2, "DKK": 2, "EGP": 2, "EUR": 2, "GBP": 2,
    "HKD": 2, "HUF": 2, "IDR": 2, "ILS": 2, "INR": 2, "ISK": 0, "JOD": 3, "JPY": 0,
    "KES": 2, "KRW": 0, "KWD": 3, "MAD": 2, "MXN": 2, "MYR": 2, "NGN": 2, "NOK": 2,
    "NZD": 2, "OMR": 3, "PEN": 2, "PHP": 2, "PKR": 2, "PLN": 2, "QAR": 2, "RON": 2,
    "RSD": 2, "SAR": 2, "SEK": 2, "SGD": 2, "THB": 2, "TND": 3, "TRY": 2, "TWD": 2,
    "UAH": 2, "UGX": 0, "USD": 2, "VND": 0, "XAF": 0, "XOF": 0, "ZAR": 2,
}  # fmt: skip


def currency_exponent(currency: str) -> int:
    """The minor-unit exponent of an ISO 4217 currency.

    Raises:
        LedgerError(currency_unknown): the code is not a supported ISO 4217 currency.
    """
    exponent = CURRENCY_EXPONENTS.get(currency)
    if exponent is None:
        raise LedgerError(
            ErrorCode.CURRENCY_UNKNOWN,
            f"'{currency}' is not a supported ISO 4217 currency code",
            "currency",
        )
    return exponent


def check_amount(amount: int, param: str = "amount") -> int:
    """Validate a transfer amount: a positive integer within the bigint range.

    Raises:
        LedgerError(amount_invalid): not a positive integer.
        LedgerError(amount_overflow): larger than a bigint.
    """
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise LedgerError(
            ErrorCode.AMOUNT_INVALID, "amount must be a positive integer of minor units", param
        )
    if amount > BIGINT_MAX:
        raise LedgerError(ErrorCode.AMOUNT_OVERFLOW, f"amount must not exceed {BIGINT_MAX}", param)
    return amount


def format_minor(amount: int, currency: str) -> str:
    """Human form of an amount, for logs and the CLI: 12345 USD -> '123.45 USD'."""
    exponent = currency_exponent(currency)
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), 10**exponent)
    body = f"{whole}.{frac:0{exponent}d}" if exponent else str(whole)
    return f"{sign}{body} {currency}"
