"""`<data-dir>/stack.json`: where a running dev stack's services are.

`ledgerflow dev` writes it; the other commands read it when no `LEDGERFLOW_SHARD_DSNS` is
set, so `ledgerflow verify` just works next to a dev stack.
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

STACK_FILE = "stack.json"


@dataclass(frozen=True, slots=True)
class StackInfo:
    """The addresses of a dev stack."""

    shard_dsns: list[str]
    temporal_address: str
    api_url: str

    def write(self, data_dir: Path) -> None:
        """Record the stack in the data directory."""
        (data_dir / STACK_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def read(cls, data_dir: Path) -> "StackInfo | None":
        """The recorded stack, or None."""
        path = data_dir / STACK_FILE
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        return cls(
            shard_dsns=list(data["shard_dsns"]),
            temporal_address=str(data["temporal_address"]),
            api_url=str(data["api_url"]),
        )
