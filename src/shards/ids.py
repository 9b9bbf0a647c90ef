"""New ids: a type prefix and a ULID, so ids sort by creation time."""

import secrets

from ulid import ULID

from ledger.ids import ACCOUNT_PREFIX, TRANSFER_PREFIX


def new_account_id() -> str:
    """A fresh `acct_<ulid>`."""
    return f"{ACCOUNT_PREFIX}{ULID()}"


def new_transfer_id() -> str:
    """A fresh `tr_<ulid>`."""
    return f"{TRANSFER_PREFIX}{ULID()}"


def new_api_key() -> tuple[str, str]:
    """A fresh API key id and secret; the secret is shown once and stored hashed."""
    return f"key_{ULID()}", f"lf_sk_{secrets.token_urlsafe(32)}"
