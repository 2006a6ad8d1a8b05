"""A throwaway PostgreSQL cluster for the tests: Debian's server binaries (initdb, pg_ctl) in a temporary folder,
listening on a free loopback port, started once per test run and removed at its end.

PostgreSQL refuses to run as root, so under root the cluster belongs to the `postgres` user the Debian package
creates (run through `runuser`); anybody else runs it as themselves. Without the server installed the tests that
need it skip, saying how to get it."""

from __future__ import annotations

import asyncio
import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import pytest

from tests.fakebotapi import find_free_port

if TYPE_CHECKING:
    from bot.services.postgres_store import PostgresStore

NOT_INSTALLED = (
    "PostgreSQL is not installed (apt-get install postgresql; scripts/test.sh does it as root): "
    "the PostgreSQL cases skip"
)
# Durability is no concern for a cluster that lives as long as one test run: without fsync a commit is about 3 times
# faster (500 one-row commits: 0.09 s against 0.22-0.25 s here).
_FAST = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"


def server_bin() -> Path | None:
    """The newest PostgreSQL server's bin folder under /usr/lib/postgresql (Debian's layout), if any."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    found.sort(key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    return found[-1] if found else None


@dataclass
class PgCluster:
    """A running cluster: `url(db)` for a database in it, `fresh_database()` for a new empty one."""

    port: int
    folder: Path
    user: str = "postgres"
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _folders: dict[Path, str] = field(default_factory=dict)
    # The cluster of this test run, once the `postgres` fixture started it (for factories that take no fixtures).
    running: ClassVar[PgCluster | None] = None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def database_for(self, folder: Path) -> str:
        """The URL of the database standing for `folder`: made empty on first use, the same one after that (the
        contract suite's stores are kept "in a folder"; reopening it is a restart or a second replica)."""
        if folder not in self._folders:
            self._folders[folder] = self.fresh_database()
        return self._folders[folder]

    def fresh_database(self, prefix: str = "t") -> str:
        """Create an empty database and return its URL (each test gets its own; the cluster is thrown away)."""
        import psycopg

        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)


def _as_owner(owner: str | None, argv: list[str]) -> list[str]:
    return ["runuser", "-u", owner, "--", *argv] if owner else argv


class Unavailable(Exception):
    """PostgreSQL's server is not installed here, or there is nobody to run it as."""


@contextmanager
def pg_cluster() -> Iterator[PgCluster]:
    """`throwaway_cluster` for a test: skips it, saying why, when PostgreSQL can't be run here."""
    try:
        with throwaway_cluster() as cluster:
            yield cluster
    except Unavailable as exc:
        pytest.skip(str(exc))


@contextmanager
def throwaway_cluster(*, durable: bool = False) -> Iterator[PgCluster]:
    """Start a cluster in a temporary folder on a free loopback port; stop and delete it on the way out; `durable`
    keeps the server's default fsync and synchronous commit (for a benchmark). Unavailable when PostgreSQL's server is
    not installed; RuntimeError, with the server's log, when it will not start."""
    bin_dir = server_bin()
    if bin_dir is None:
        raise Unavailable(NOT_INSTALLED)
    owner: str | None = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise Unavailable("running as root and there is no 'postgres' user to run PostgreSQL as") from None
        owner = "postgres"
    # Not under pytest's tmp_path: its parents are private to root, and the server's user must reach its folder.
    folder = Path(tempfile.mkdtemp(prefix="claude-doctor-pg-"))
    data, log = folder / "data", folder / "server.log"
    if owner:
        shutil.chown(folder, owner)
    port = find_free_port()
    try:
        initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"]
        made = subprocess.run(_as_owner(owner, initdb), capture_output=True, text=True)
        if made.returncode != 0:
            raise RuntimeError(f"initdb failed: {made.stdout}{made.stderr}")
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c max_connections=200"
        if not durable:
            options += f" {_FAST}"
        started = subprocess.run(
            _as_owner(owner, [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start"]),
            capture_output=True,
            text=True,
        )
        if started.returncode != 0:
            server_log = log.read_text() if log.exists() else ""
            raise RuntimeError(f"PostgreSQL did not start: {started.stdout}{started.stderr}\n{server_log[-3000:]}")
        cluster = PgCluster(port, folder)
        PgCluster.running = cluster
        try:
            yield cluster
        finally:
            PgCluster.running = None
            subprocess.run(
                _as_owner(owner, [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                capture_output=True,
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def open_postgres_store(folder: Path, clock: Callable[[], float]) -> PostgresStore:
    """The contract suite's factory: a PostgresStore on the database standing for `folder`, in the running cluster
    (the `postgres` fixture must be active)."""
    from bot.services.postgres_store import PostgresStore

    cluster = PgCluster.running
    assert cluster is not None, "request the `postgres` fixture first"
    url = await asyncio.to_thread(cluster.database_for, folder)
    return await PostgresStore.open(url, clock=clock)
