"""Process helpers that the PostgreSQL and Temporal servers of the dev stack share."""

import os
import signal
import subprocess
from typing import Final

import structlog

logger = structlog.get_logger(__name__)

POLL_INTERVAL_S: Final = 0.05
LOG_TAIL_LINES: Final = 20


def _stop_process_group(
    process: subprocess.Popen[bytes], signal_number: int, *, timeout_s: float, what: str
) -> None:
    """Signal the process and wait; after `timeout_s` kill its whole session with SIGKILL."""
    if process.poll() is None:
        process.send_signal(signal_number)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        logger.warning("graceful stop timed out, killing", what=what, pid=process.pid)
        # The children share the process group the leader created at spawn, and a SIGKILLed
        # postmaster leaves its backends behind, so the whole group is killed. The leader is
        # not yet reaped here, so its pid cannot have been reused as a group id.
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout_s)


def _child_environment() -> dict[str, str]:
    """The parent's environment without PG* variables, which would redirect libpq and initdb."""
    return {name: value for name, value in os.environ.items() if not name.startswith("PG")}
