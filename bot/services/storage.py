"""Per-chat and per-user settings, the message-to-answer map, status subscriptions, the incidents last seen, the
auto-answer cooldowns and the update inbox, kept in SQLite under DATA_DIR."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from bot.core.notify import SeenIncident

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chat_settings (
    chat_id INTEGER PRIMARY KEY,
    autoreply INTEGER NOT NULL DEFAULT 1,
    lang TEXT
);
CREATE TABLE IF NOT EXISTS user_settings (
    user_id INTEGER PRIMARY KEY,
    lang TEXT,
    tz TEXT
);
CREATE TABLE IF NOT EXISTS answers (
    chat_id INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    answer_id INTEGER NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (chat_id, message_id)
);
CREATE INDEX IF NOT EXISTS answers_created ON answers (created);
CREATE TABLE IF NOT EXISTS subscriptions (
    chat_id INTEGER PRIMARY KEY,
    lang TEXT NOT NULL,
    tz TEXT,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS seen_incidents (
    incident_id TEXT PRIMARY KEY,
    revision TEXT NOT NULL,
    name TEXT NOT NULL,
    url TEXT NOT NULL,
    impact TEXT NOT NULL,
    started_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS status_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cooldowns (
    chat_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (chat_id, key)
);
CREATE TABLE IF NOT EXISTS inbox (
    update_id INTEGER PRIMARY KEY,
    body TEXT NOT NULL,
    received REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);
"""
log = logging.getLogger(__name__)
# The SQLite file in DATA_DIR.
STORE_FILE = "claude-doctor.sqlite3"
P = ParamSpec("P")
T = TypeVar("T")
# Reads run on the event loop: a store locked by another process may hold it this long at most, then the read
# degrades to its default. Writes run in the store's own thread and may wait longer.
READ_BUSY_TIMEOUT = 0.25
WRITE_BUSY_TIMEOUT = 1.0
# An update still unfinished after this many starts is dropped: one that kills the process must not do it forever.
MAX_ATTEMPTS = 3
# After a failed write the store is left alone this long (writes are skipped at once), so writes queued behind a
# locked or full store do not each wait out the busy timeout.
DEGRADED_SECONDS = 5.0
# Cooldown rows older than this are useless (the cooldown is 10 minutes): pruned as new ones are written.
COOLDOWN_KEEP_SECONDS = 24 * 3600
# Edits older than this are not followed: the answer map stays small.
ANSWER_TTL_SECONDS = 2 * 24 * 3600


class StorageError(Exception):
    """DATA_DIR can't be used; the message is one line for the operator."""


@dataclass(frozen=True)
class ChatSettings:
    """A group's switches."""

    autoreply: bool = True
    lang: str | None = None


@dataclass(frozen=True)
class Subscription:
    """A chat that wants status notifications, with the language and time zone chosen when it subscribed."""

    chat_id: int
    lang: str
    tz: str | None = None


def _degrades(default: Any) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """A read that returns `default` (and logs a warning) when the store is locked, full or broken: the answer
    goes out without the setting rather than not at all."""

    def wrap(method: Callable[P, T]) -> Callable[P, T]:
        @functools.wraps(method)
        def read(*args: P.args, **kwargs: P.kwargs) -> T:
            try:
                return method(*args, **kwargs)
            except sqlite3.Error as exc:
                log.warning("storage read %s failed (%s); using the default", method.__name__, exc)
                return default() if callable(default) else default

        return read

    return wrap


class Storage:
    """A small SQLite database; every call is one short transaction. Each thread has its own connection: reads
    run where they are called (on the event loop, with a short busy timeout), writes from the bot go through
    `write`, which runs them one at a time in the store's own thread."""

    def __init__(self, data_dir: Path) -> None:
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="storage")
        self._degraded_until = 0.0
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            self.path = data_dir / STORE_FILE
            db = self._connect(WRITE_BUSY_TIMEOUT)
            # WAL without a sync per commit: a write per answered message must not cost an fsync (a crash of
            # the process loses nothing; only a power cut can lose the last moments).
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            db.executescript(_SCHEMA)
            if "attempts" not in {row[1] for row in db.execute("PRAGMA table_info(inbox)")}:
                db.execute("ALTER TABLE inbox ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0")
            # A write now, so an unwritable directory fails at start-up rather than in the first group.
            db.execute("PRAGMA user_version = 3")
            db.execute(f"PRAGMA busy_timeout = {int(READ_BUSY_TIMEOUT * 1000)}")
        except (OSError, sqlite3.Error) as exc:
            self._writer.shutdown(wait=False)
            raise StorageError(f"DATA_DIR {str(data_dir)!r} is not usable: {exc}") from exc

    def _connect(self, timeout: float) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=timeout)
        conn.execute("PRAGMA synchronous = NORMAL")
        self._local.db = conn
        with self._lock:
            self._connections.append(conn)
        return conn

    @property
    def db(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use)."""
        conn: sqlite3.Connection | None = getattr(self._local, "db", None)
        return conn if conn is not None else self._connect(WRITE_BUSY_TIMEOUT)

    async def write(self, method: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T | None:
        """Run a write (a method of this store) in the store's thread, so a slow or locked disk never stalls the
        event loop; a locked, full or broken store logs a warning and gives None instead of failing the update."""
        if time.monotonic() < self._degraded_until:
            log.debug("storage write %s skipped: the store failed moments ago", method.__name__)
            return None
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._writer, functools.partial(method, *args, **kwargs))
        except sqlite3.Error as exc:
            if time.monotonic() >= self._degraded_until:
                log.warning(
                    "storage write %s failed (%s); carrying on without the store for %.0f s",
                    method.__name__,
                    exc,
                    DEGRADED_SECONDS,
                )
            self._degraded_until = time.monotonic() + DEGRADED_SECONDS
            return None

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()

    @_degrades(ChatSettings)
    def chat(self, chat_id: int) -> ChatSettings:
        row = self.db.execute("SELECT autoreply, lang FROM chat_settings WHERE chat_id = ?", (chat_id,)).fetchone()
        return ChatSettings(bool(row[0]), row[1]) if row else ChatSettings()

    def set_autoreply(self, chat_id: int, on: bool) -> None:
        self.db.execute(
            "INSERT INTO chat_settings (chat_id, autoreply) VALUES (?, ?) "
            "ON CONFLICT(chat_id) DO UPDATE SET autoreply = excluded.autoreply",
            (chat_id, int(on)),
        )

    def set_chat_lang(self, chat_id: int, lang: str | None) -> None:
        self.db.execute(
            "INSERT INTO chat_settings (chat_id, lang) VALUES (?, ?) "
            "ON CONFLICT(chat_id) DO UPDATE SET lang = excluded.lang",
            (chat_id, lang),
        )

    @_degrades(None)
    def user_lang(self, user_id: int) -> str | None:
        row = self.db.execute("SELECT lang FROM user_settings WHERE user_id = ?", (user_id,)).fetchone()
        return row[0] if row else None

    def set_user_lang(self, user_id: int, lang: str | None) -> None:
        self.db.execute(
            "INSERT INTO user_settings (user_id, lang) VALUES (?, ?) "
            "ON CONFLICT(user_id) DO UPDATE SET lang = excluded.lang",
            (user_id, lang),
        )

    def remember_answer(self, chat_id: int, message_id: int, answer_id: int) -> None:
        now = time.time()
        self.db.execute(
            "INSERT OR REPLACE INTO answers (chat_id, message_id, answer_id, created) VALUES (?, ?, ?, ?)",
            (chat_id, message_id, answer_id, now),
        )
        self.db.execute("DELETE FROM answers WHERE created < ?", (now - ANSWER_TTL_SECONDS,))

    @_degrades(None)
    def answer_for(self, chat_id: int, message_id: int) -> int | None:
        row = self.db.execute(
            "SELECT answer_id FROM answers WHERE chat_id = ? AND message_id = ?", (chat_id, message_id)
        ).fetchone()
        return row[0] if row else None

    def forget_chat(self, chat_id: int) -> None:
        """The bot left or was removed: drop what it kept about the chat, its subscription included."""
        self.db.execute("DELETE FROM answers WHERE chat_id = ?", (chat_id,))
        self.unsubscribe(chat_id)

    def move_chat(self, old_id: int, new_id: int) -> None:
        """A group became a supergroup with a new id: its settings and subscription go with it (what the new id
        already has wins); answers to the old group's messages are dropped, those messages can't be edited now."""
        with self._transaction():
            for table in ("chat_settings", "subscriptions"):
                self.db.execute(f"UPDATE OR IGNORE {table} SET chat_id = ? WHERE chat_id = ?", (new_id, old_id))
                self.db.execute(f"DELETE FROM {table} WHERE chat_id = ?", (old_id,))
            self.db.execute("DELETE FROM answers WHERE chat_id = ?", (old_id,))

    # --- time zones -------------------------------------------------------------------------------

    @_degrades(None)
    def user_tz(self, user_id: int) -> str | None:
        """The IANA name the user chose with /tz, if any."""
        row = self.db.execute("SELECT tz FROM user_settings WHERE user_id = ?", (user_id,)).fetchone()
        return row[0] if row else None

    def set_user_tz(self, user_id: int, tz: str | None) -> None:
        self.db.execute(
            "INSERT INTO user_settings (user_id, tz) VALUES (?, ?) ON CONFLICT(user_id) DO UPDATE SET tz = excluded.tz",
            (user_id, tz),
        )

    # --- status subscriptions ---------------------------------------------------------------------

    def subscribe(self, chat_id: int, lang: str, tz: str | None = None) -> bool:
        """Subscribe a chat; False if it already was (its language and zone are then refreshed)."""
        with self._transaction():
            known = self.is_subscribed(chat_id)
            self.db.execute(
                "INSERT INTO subscriptions (chat_id, lang, tz, created) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(chat_id) DO UPDATE SET lang = excluded.lang, tz = excluded.tz",
                (chat_id, lang, tz, time.time()),
            )
        return not known

    def unsubscribe(self, chat_id: int) -> bool:
        """Drop a chat's subscription; False if it had none."""
        return self.db.execute("DELETE FROM subscriptions WHERE chat_id = ?", (chat_id,)).rowcount > 0

    @_degrades(False)
    def is_subscribed(self, chat_id: int) -> bool:
        return self.db.execute("SELECT 1 FROM subscriptions WHERE chat_id = ?", (chat_id,)).fetchone() is not None

    @_degrades(list)
    def subscriptions(self) -> list[Subscription]:
        """Every subscribed chat, oldest subscription first."""
        rows = self.db.execute("SELECT chat_id, lang, tz FROM subscriptions ORDER BY created, chat_id").fetchall()
        return [Subscription(chat_id, lang, tz) for chat_id, lang, tz in rows]

    @_degrades(0)
    def subscription_count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM subscriptions").fetchone()[0])

    # --- incidents last seen ----------------------------------------------------------------------

    def seen_incidents(self) -> dict[str, SeenIncident] | None:
        """The open incidents as last seen, by id; None before the first look (no baseline to compare with)."""
        if self.db.execute("SELECT 1 FROM status_meta WHERE key = 'baseline'").fetchone() is None:
            return None
        rows = self.db.execute("SELECT incident_id, revision, name, url, impact, started_at FROM seen_incidents")
        return {
            row[0]: SeenIncident(row[0], row[1], row[2], row[3], row[4], datetime.fromisoformat(row[5])) for row in rows
        }

    def save_seen(self, seen: Mapping[str, SeenIncident]) -> None:
        """Replace the incidents last seen in one transaction, so a crash leaves the old state or the new."""
        with self._transaction():
            self.db.execute("DELETE FROM seen_incidents")
            self.db.executemany(
                "INSERT INTO seen_incidents (incident_id, revision, name, url, impact, started_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(s.id, s.revision, s.name, s.url, s.impact, s.started_at.isoformat()) for s in seen.values()],
            )
            self.db.execute(
                "INSERT OR REPLACE INTO status_meta (key, value) VALUES ('baseline', ?)", (str(time.time()),)
            )

    def reset_seen(self) -> None:
        """Forget the incidents last seen: the next look is a fresh baseline that announces nothing."""
        with self._transaction():
            self.db.execute("DELETE FROM seen_incidents")
            self.db.execute("DELETE FROM status_meta WHERE key = 'baseline'")

    # --- auto-answer cooldowns --------------------------------------------------------------------

    def save_cooldown(self, chat_id: int, key: str, at: float) -> None:
        """Remember that an auto-answer about `key` went to `chat_id` at `at` (wall clock), pruning old ones."""
        with self._transaction():
            self.db.execute("INSERT OR REPLACE INTO cooldowns (chat_id, key, at) VALUES (?, ?, ?)", (chat_id, key, at))
            self.db.execute("DELETE FROM cooldowns WHERE at < ?", (at - COOLDOWN_KEEP_SECONDS,))

    @_degrades(dict)
    def cooldowns_since(self, since: float) -> dict[tuple[int, str], float]:
        """The auto-answers given since `since` (wall clock), by chat and key."""
        rows = self.db.execute("SELECT chat_id, key, at FROM cooldowns WHERE at >= ?", (since,)).fetchall()
        return {(chat_id, key): at for chat_id, key, at in rows}

    # --- the update inbox ---------------------------------------------------------------------------

    def inbox_add(self, updates: Iterable[Mapping[str, Any]]) -> None:
        """Keep updates taken from Telegram until they are handled, in one transaction (an update seen twice
        is kept once)."""
        rows = [(int(u["update_id"]), json.dumps(u, ensure_ascii=False), time.time()) for u in updates]
        if not rows:
            return
        with self._transaction():
            self.db.executemany("INSERT OR IGNORE INTO inbox (update_id, body, received) VALUES (?, ?, ?)", rows)

    def inbox_done(self, update_ids: Iterable[int]) -> None:
        """Forget handled updates."""
        self.db.executemany("DELETE FROM inbox WHERE update_id = ?", [(int(i),) for i in update_ids])

    def inbox_pending(self) -> list[dict[str, Any]]:
        """The updates taken but not handled, oldest first, each counted as one more attempt; those already tried
        MAX_ATTEMPTS times (the process died each time) are dropped with a warning instead."""
        with self._transaction():
            self.db.execute("UPDATE inbox SET attempts = attempts + 1")
            dropped = self.db.execute(
                "SELECT update_id FROM inbox WHERE attempts > ? ORDER BY update_id", (MAX_ATTEMPTS,)
            ).fetchall()
            self.db.execute("DELETE FROM inbox WHERE attempts > ?", (MAX_ATTEMPTS,))
            rows = self.db.execute("SELECT body FROM inbox ORDER BY update_id").fetchall()
        for (update_id,) in dropped:
            log.warning("update %s was unfinished at %d starts in a row; dropped", update_id, MAX_ATTEMPTS)
        return [json.loads(body) for (body,) in rows]

    def inbox_count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM inbox").fetchone()[0])

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        # The connection is in autocommit mode; group statements that must land together.
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            # SQLite has already rolled back after some errors (a full disk): don't hide the real error.
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
