"""Metadata is a bounded map of short strings, so a caller cannot bloat a row."""

from ledger.errors import ErrorCode, LedgerError
from ledger.limits import METADATA_KEY_LENGTH_MAX, METADATA_KEYS_MAX, METADATA_VALUE_LENGTH_MAX


def check_metadata(metadata: dict[str, str]) -> dict[str, str]:
    """Validate metadata bounds.

    Raises:
        LedgerError(metadata_invalid): too many keys, or a key or value too long.
    """
    if len(metadata) > METADATA_KEYS_MAX:
        raise LedgerError(
            ErrorCode.METADATA_INVALID,
            f"metadata holds at most {METADATA_KEYS_MAX} keys",
            "metadata",
        )
    for key, value in metadata.items():
        if not isinstance(key, str) or not 0 < len(key) <= METADATA_KEY_LENGTH_MAX:
            raise LedgerError(
                ErrorCode.METADATA_INVALID,
                f"metadata keys are 1 to {METADATA_KEY_LENGTH_MAX} characters",
                "metadata",
            )
        if not isinstance(value, str) or len(value) > METADATA_VALUE_LENGTH_MAX:
            raise LedgerError(
                ErrorCode.METADATA_INVALID,
                f"metadata values are strings of at most {METADATA_VALUE_LENGTH_MAX} characters",
                "metadata",
            )
    return metadata
