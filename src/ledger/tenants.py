"""Tenants and their API keys. Tenant names starting with `__` are the system's own.

The system tenant owns the clearing accounts that cross-shard sagas post through. No API
key may act for it (or for any other reserved name), so no request can name a system
account as its own; only the posting code puts one into a posting, by position.
"""

import re
from typing import Final

from ledger.errors import ErrorCode, LedgerError

SYSTEM_TENANT: Final = "__system__"
RESERVED_TENANT_PREFIX: Final = "__"
TENANT_NAME_PATTERN: Final = r"[A-Za-z0-9_.-]{1,64}"

assert SYSTEM_TENANT.startswith(RESERVED_TENANT_PREFIX)


def is_reserved_tenant(name: str) -> bool:
    """Whether `name` belongs to the system rather than to a customer of the ledger."""
    return name.startswith(RESERVED_TENANT_PREFIX)


def check_tenant_name(name: str) -> str:
    """Validate the name of a tenant an API key is issued for.

    Raises:
        LedgerError(invalid_request): malformed, or reserved for the system.
    """
    if re.fullmatch(TENANT_NAME_PATTERN, name) is None:
        raise LedgerError(
            ErrorCode.INVALID_REQUEST,
            "a tenant name is 1 to 64 letters, digits, '_', '.' or '-'",
            "tenant",
        )
    if is_reserved_tenant(name):
        raise LedgerError(
            ErrorCode.INVALID_REQUEST,
            f"tenant names starting with {RESERVED_TENANT_PREFIX!r} are reserved for the system",
            "tenant",
        )
    return name


API_KEY_PATTERN: Final = r"[A-Za-z0-9_.~+/=-]{32,128}"
"""What an API key secret looks like: generated keys are `lf_sk_` and 43 URL-safe
characters; a bootstrap key set by an operator must be as long (at least 32 characters of
this alphabet), which also lets the API refuse a malformed bearer token without a query."""


def is_well_formed_api_key(secret: str) -> bool:
    """Whether `secret` could be an API key at all."""
    return re.fullmatch(API_KEY_PATTERN, secret) is not None
