"""Private PostgreSQL and Redis servers for the fault tests: own data directory, own free port.

A fault test stops, restarts and starves these; the machine's shared servers (5432, 6379) are
never touched. PostgreSQL runs as the `postgres` user from a data directory made by `initdb`;
Redis runs without persistence.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import redis

from tests.e2e.harness import PostgresDatabase, free_port

PG_BIN = Path("/usr/lib/postgresql") / sorted(os.listdir("/usr/lib/postgresql"))[-1] / "bin"


def _as_postgres(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    command = args if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--", *args]
    return subprocess.run(command, capture_output=True, text=True, check=True, **kwargs)


class PrivatePostgres:
    """A PostgreSQL server of the test's own: `start`, `stop`, `restart` as a fault needs."""

    def __init__(self, *, settings: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="robotest-pg-"))
        self.data = self.directory / "data"
        self.log = self.directory / "server.log"
        self.settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.directory}'",
            # A test server: durability is not what is tested, speed of start and stop is.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_buffers": "32MB",
            "max_connections": "50",
            **(settings or {}),
        }

    @classmethod
    @contextmanager
    def started(cls, *, settings: dict[str, str] | None = None) -> Iterator[PrivatePostgres]:
        """A server initialised and started for the `with` block, then stopped and removed."""
        server = cls(settings=settings)
        try:
            server.init().start()
            yield server
        finally:
            server.destroy()

    def init(self) -> PrivatePostgres:
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        # A 1 MB WAL segment: the disk-full test limits file sizes to a few megabytes.
        _as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                      "--no-sync", "--wal-segsize=1", "-E", "UTF8", "--locale=C"])
        with open(self.data / "postgresql.conf", "a") as conf:
            for name, value in self.settings.items():
                conf.write(f"{name} = {value}\n")
        return self

    def start(self) -> None:
        _as_postgres([str(PG_BIN / "pg_ctl"), "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30"])
        self.wait_ready()

    def stop(self) -> None:
        _as_postgres([str(PG_BIN / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast", "-w", "-t", "30"])

    def restart(self) -> None:
        _as_postgres([str(PG_BIN / "pg_ctl"), "restart", "-D", str(self.data), "-m", "fast", "-l", str(self.log),
                      "-w", "-t", "30"])
        self.wait_ready()

    def running(self) -> bool:
        result = subprocess.run([str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                                capture_output=True)
        return result.returncode == 0

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                psycopg.connect(self.admin_dsn, connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                time.sleep(0.1)
        raise AssertionError(f"private PostgreSQL on {self.port} did not answer in {timeout} s:\n{self.log_tail()}")

    def pids(self) -> list[int]:
        """The server's processes: the postmaster and every child (backends, checkpointer, …)."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True, text=True).stdout.split()
        return [postmaster, *map(int, children)]

    def limit_file_size(self, size: int | None) -> None:
        """Set the soft RLIMIT_FSIZE of every server process (`None`: lift it): no file grows past it, as on a full disk.

        Only the soft limit, and as the server's own user: without CAP_SYS_RESOURCE (containers)
        a lowered hard limit could never be raised again, nor another user's limit be changed.
        """
        value = "unlimited" if size is None else str(size)
        for pid in self.pids():
            _as_postgres(["prlimit", f"--pid={pid}", f"--fsize={value}:unlimited"])

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def database(self, name: str) -> PostgresDatabase:
        return PostgresDatabase.create(name, port=self.port)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no server log)"

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "stop", "-D", str(self.data),
                            "-m", "immediate", "-w", "-t", "30"], capture_output=True)
        shutil.rmtree(self.directory, ignore_errors=True)


class PrivateRedis:
    """A Redis server of the test's own, without persistence: `stop` and `start` again on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.directory = Path(tempfile.mkdtemp(prefix="robotest-redis-"))

    @classmethod
    @contextmanager
    def started(cls) -> Iterator[PrivateRedis]:
        """A server started for the `with` block, then stopped and removed."""
        server = cls()
        try:
            server.start()
            yield server
        finally:
            server.destroy()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=self.port, socket_timeout=1).ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise AssertionError(f"private Redis on {self.port} did not answer")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
