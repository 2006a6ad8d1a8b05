"""The store in SQLite under DATA_DIR, for one process: every `Store` method as a coroutine whose SQL runs in a
thread (writes one at a time in the store's writer thread, reads in a small pool), so a slow or locked disk never
stalls the event loop."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from bot.core.notify import SeenIncident
from bot.services import ledger
from bot.services.ledger import RECENT_DAYS, UNRECOGNISED, Miss, Stats, mask, miss_of, owner_key, stats_of
from bot.services.store import (
    ANSWER_TTL_SECONDS,
    COOLDOWN_KEEP_SECONDS,
    INBOX_DONE_KEEP_SECONDS,
    MAX_ATTEMPTS,
    ChatSettings,
    StorageError,
    Subscription,
    UserSettings,
)

SCHEMA = """
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
    attempts INTEGER NOT NULL DEFAULT 0,
    holder TEXT NOT NULL DEFAULT '',
    claimed_at REAL NOT NULL DEFAULT 0,
    done_at REAL
);
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires REAL NOT NULL
);
"""
# Columns added since the first inbox: a DATA_DIR from an earlier version gets them in place.
_INBOX_COLUMNS = {
    "attempts": "INTEGER NOT NULL DEFAULT 0",
    "holder": "TEXT NOT NULL DEFAULT ''",
    "claimed_at": "REAL NOT NULL DEFAULT 0",
    "done_at": "REAL",
}
SCHEMA_VERSION = 4
log = logging.getLogger(__name__)
# The SQLite file in DATA_DIR (the same name as every earlier version's, so their data carries on).
STORE_FILE = "claude-doctor.sqlite3"
T = TypeVar("T")
# Reads give up this soon on a store locked by another process and answer with their default: a setting is not
# worth holding a reply up for. Writes wait longer, in their own thread.
READ_BUSY_TIMEOUT = 0.25
WRITE_BUSY_TIMEOUT = 1.0
READ_THREADS = 4
# After a failed write the store is left alone this long (writes are skipped at once), so writes queued behind a
# locked or full store do not each wait out the busy timeout.
DEGRADED_SECONDS = 5.0


class SqliteStore:
    """A small SQLite database in WAL mode; every method is one short transaction. `clock` (wall-clock seconds)
    dates what the protocol does not date itself: answers, subscriptions and inbox claims."""

    def __init__(self, data_dir: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-write")
        self._readers = ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="store-read")
        self._degraded_until = 0.0
        self.path = data_dir / STORE_FILE
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, timeout=WRITE_BUSY_TIMEOUT)
            try:
                self._migrate(db)
                self._salt = db.execute("SELECT value FROM ledger_meta WHERE key = 'salt'").fetchone()[0]
            finally:
                db.close()
        except (OSError, sqlite3.Error) as exc:
            self._writer.shutdown(wait=False)
            self._readers.shutdown(wait=False)
            raise StorageError(f"DATA_DIR {str(data_dir)!r} is not usable: {exc}") from exc

    @staticmethod
    def _migrate(db: sqlite3.Connection) -> None:
        # WAL without a sync per commit: a write per answered message must not cost an fsync (a crash of the
        # process loses nothing; only a power cut can lose the last moments).
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.executescript(SCHEMA)
        db.executescript(ledger.SCHEMA)
        have = {row[1] for row in db.execute("PRAGMA table_info(inbox)")}
        for column, kind in _INBOX_COLUMNS.items():
            if column not in have:
                db.execute(f"ALTER TABLE inbox ADD COLUMN {column} {kind}")
        db.execute("CREATE INDEX IF NOT EXISTS inbox_done_at ON inbox (done_at)")
        db.execute("INSERT OR IGNORE INTO ledger_meta (key, value) VALUES ('salt', ?)", (ledger.new_salt(),))
        # A write now, so an unwritable directory fails at start-up rather than in the first group.
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # --- running SQL off the event loop -----------------------------------------------------------

    def _db(self, timeout: float) -> sqlite3.Connection:
        """This thread's connection, opened on first use (each pool thread keeps its own)."""
        conn: sqlite3.Connection | None = getattr(self._local, "db", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=timeout)
            conn.execute("PRAGMA synchronous = NORMAL")
            self._local.db = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    async def _read(self, name: str, default: Callable[[], T], query: Callable[[sqlite3.Connection], T]) -> T:
        """Run `query` in a reader thread; a locked, full or broken store gives `default()` and a warning."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._readers, lambda: query(self._db(READ_BUSY_TIMEOUT)))
        except sqlite3.Error as exc:
            log.warning("storage read %s failed (%s); using the default", name, exc)
            return default()

    async def _write_or_raise(self, name: str, change: Callable[[sqlite3.Connection], T]) -> T:
        """Run `change` in the writer thread; StorageError when it fails or the store failed moments ago."""
        if time.monotonic() < self._degraded_until:
            raise StorageError(f"storage write {name} skipped: the store failed moments ago")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._writer, lambda: change(self._db(WRITE_BUSY_TIMEOUT)))
        except sqlite3.Error as exc:
            if time.monotonic() >= self._degraded_until:
                log.warning(
                    "storage write %s failed (%s); carrying on without the store for %.0f s",
                    name,
                    exc,
                    DEGRADED_SECONDS,
                )
            self._degraded_until = time.monotonic() + DEGRADED_SECONDS
            raise StorageError(f"storage write {name} failed: {exc}") from exc

    async def _write(self, name: str, change: Callable[[sqlite3.Connection], T]) -> T | None:
        """Run `change` in the writer thread; None (logged) when the store fails, so the update goes on."""
        try:
            return await self._write_or_raise(name, change)
        except StorageError as exc:
            log.debug("%s", exc)
            return None

    # --- settings ---------------------------------------------------------------------------------

    async def chat(self, chat_id: int) -> ChatSettings:
        def query(db: sqlite3.Connection) -> ChatSettings:
            row = db.execute("SELECT autoreply, lang FROM chat_settings WHERE chat_id = ?", (chat_id,)).fetchone()
            return ChatSettings(bool(row[0]), row[1]) if row else ChatSettings()

        return await self._read("chat", ChatSettings, query)

    async def set_autoreply(self, chat_id: int, on: bool) -> None:
        await self._write(
            "set_autoreply",
            _statement(
                "INSERT INTO chat_settings (chat_id, autoreply) VALUES (?, ?) "
                "ON CONFLICT(chat_id) DO UPDATE SET autoreply = excluded.autoreply",
                (chat_id, int(on)),
            ),
        )

    async def set_chat_lang(self, chat_id: int, lang: str | None) -> None:
        await self._write(
            "set_chat_lang",
            _statement(
                "INSERT INTO chat_settings (chat_id, lang) VALUES (?, ?) "
                "ON CONFLICT(chat_id) DO UPDATE SET lang = excluded.lang",
                (chat_id, lang),
            ),
        )

    async def user(self, user_id: int) -> UserSettings:
        def query(db: sqlite3.Connection) -> UserSettings:
            row = db.execute("SELECT lang, tz FROM user_settings WHERE user_id = ?", (user_id,)).fetchone()
            return UserSettings(row[0], row[1]) if row else UserSettings()

        return await self._read("user", UserSettings, query)

    async def set_user_lang(self, user_id: int, lang: str | None) -> None:
        await self._write(
            "set_user_lang",
            _statement(
                "INSERT INTO user_settings (user_id, lang) VALUES (?, ?) "
                "ON CONFLICT(user_id) DO UPDATE SET lang = excluded.lang",
                (user_id, lang),
            ),
        )

    async def set_user_tz(self, user_id: int, tz: str | None) -> None:
        await self._write(
            "set_user_tz",
            _statement(
                "INSERT INTO user_settings (user_id, tz) VALUES (?, ?) "
                "ON CONFLICT(user_id) DO UPDATE SET tz = excluded.tz",
                (user_id, tz),
            ),
        )

    # --- the answer map and chat lifecycle --------------------------------------------------------

    async def remember_answer(self, chat_id: int, message_id: int, answer_id: int) -> None:
        now = self.clock()

        def change(db: sqlite3.Connection) -> None:
            with _transaction(db):
                db.execute(
                    "INSERT OR REPLACE INTO answers (chat_id, message_id, answer_id, created) VALUES (?, ?, ?, ?)",
                    (chat_id, message_id, answer_id, now),
                )
                db.execute("DELETE FROM answers WHERE created < ?", (now - ANSWER_TTL_SECONDS,))

        await self._write("remember_answer", change)

    async def answer_for(self, chat_id: int, message_id: int) -> int | None:
        since = self.clock() - ANSWER_TTL_SECONDS

        def query(db: sqlite3.Connection) -> int | None:
            row = db.execute(
                "SELECT answer_id FROM answers WHERE chat_id = ? AND message_id = ? AND created >= ?",
                (chat_id, message_id, since),
            ).fetchone()
            return row[0] if row else None

        return await self._read("answer_for", lambda: None, query)

    async def forget_chat(self, chat_id: int) -> None:
        """The bot left the chat: drop its answers and its subscription."""

        def change(db: sqlite3.Connection) -> None:
            with _transaction(db):
                db.execute("DELETE FROM answers WHERE chat_id = ?", (chat_id,))
                db.execute("DELETE FROM subscriptions WHERE chat_id = ?", (chat_id,))

        await self._write("forget_chat", change)

    async def move_chat(self, old_id: int, new_id: int) -> None:
        """A group became a supergroup: settings and subscription follow (what the new id has wins); answers to
        the old group's messages are dropped, those messages can't be edited now."""

        def change(db: sqlite3.Connection) -> None:
            with _transaction(db):
                for table in ("chat_settings", "subscriptions"):
                    db.execute(f"UPDATE OR IGNORE {table} SET chat_id = ? WHERE chat_id = ?", (new_id, old_id))
                    db.execute(f"DELETE FROM {table} WHERE chat_id = ?", (old_id,))
                db.execute("DELETE FROM answers WHERE chat_id = ?", (old_id,))

        await self._write("move_chat", change)

    # --- auto-answer cooldowns --------------------------------------------------------------------

    async def claim_cooldown(self, chat_id: int, key: str, now: float, seconds: float) -> bool | None:
        """Atomically: True and mark (chat, key) at `now` unless it was marked within `seconds` before; None when
        the store fails."""

        def change(db: sqlite3.Connection) -> bool:
            with _transaction(db):
                # One statement decides: another process claiming at the same moment waits for the write lock and
                # then sees this mark.
                claimed = db.execute(
                    "INSERT INTO cooldowns (chat_id, key, at) VALUES (?, ?, ?) "
                    "ON CONFLICT(chat_id, key) DO UPDATE SET at = excluded.at WHERE excluded.at - cooldowns.at >= ?",
                    (chat_id, key, now, seconds),
                ).rowcount
                db.execute("DELETE FROM cooldowns WHERE at < ?", (now - COOLDOWN_KEEP_SECONDS,))
            return claimed > 0

        return await self._write("claim_cooldown", change)

    # --- status subscriptions ---------------------------------------------------------------------

    async def subscribe(self, chat_id: int, lang: str, tz: str | None = None) -> bool | None:
        """Subscribe a chat; False if it already was (its language and zone are then refreshed)."""
        now = self.clock()

        def change(db: sqlite3.Connection) -> bool:
            with _transaction(db):
                known = db.execute("SELECT 1 FROM subscriptions WHERE chat_id = ?", (chat_id,)).fetchone()
                db.execute(
                    "INSERT INTO subscriptions (chat_id, lang, tz, created) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(chat_id) DO UPDATE SET lang = excluded.lang, tz = excluded.tz",
                    (chat_id, lang, tz, now),
                )
            return known is None

        return await self._write("subscribe", change)

    async def unsubscribe(self, chat_id: int) -> bool | None:
        """Drop a chat's subscription; False if it had none."""

        def change(db: sqlite3.Connection) -> bool:
            return db.execute("DELETE FROM subscriptions WHERE chat_id = ?", (chat_id,)).rowcount > 0

        return await self._write("unsubscribe", change)

    async def subscriptions(self) -> list[Subscription]:
        """Every subscribed chat, oldest subscription first."""

        def query(db: sqlite3.Connection) -> list[Subscription]:
            rows = db.execute("SELECT chat_id, lang, tz FROM subscriptions ORDER BY created, chat_id").fetchall()
            return [Subscription(chat_id, lang, tz) for chat_id, lang, tz in rows]

        return await self._read("subscriptions", list, query)

    async def subscription_count(self) -> int:
        return await self._read("subscription_count", int, _count("subscriptions"))

    # --- incidents last seen ----------------------------------------------------------------------

    async def seen_incidents(self) -> dict[str, SeenIncident] | None:
        """The open incidents as last seen, by id; None before the first look (and when the store fails: the next
        look is then a baseline that announces nothing, rather than a flood of old news)."""

        def query(db: sqlite3.Connection) -> dict[str, SeenIncident] | None:
            with _transaction(db, "BEGIN"):
                if db.execute("SELECT 1 FROM status_meta WHERE key = 'baseline'").fetchone() is None:
                    return None
                rows = db.execute(
                    "SELECT incident_id, revision, name, url, impact, started_at FROM seen_incidents"
                ).fetchall()
            return {r[0]: SeenIncident(r[0], r[1], r[2], r[3], r[4], datetime.fromisoformat(r[5])) for r in rows}

        return await self._read("seen_incidents", lambda: None, query)

    async def save_seen(self, seen: Mapping[str, SeenIncident]) -> None:
        """Replace the incidents last seen in one transaction, so a crash leaves the old state or the new."""
        rows = [(s.id, s.revision, s.name, s.url, s.impact, s.started_at.isoformat()) for s in seen.values()]
        now = self.clock()

        def change(db: sqlite3.Connection) -> None:
            with _transaction(db):
                db.execute("DELETE FROM seen_incidents")
                db.executemany(
                    "INSERT INTO seen_incidents (incident_id, revision, name, url, impact, started_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )
                db.execute("INSERT OR REPLACE INTO status_meta (key, value) VALUES ('baseline', ?)", (str(now),))

        await self._write("save_seen", change)

    async def reset_seen(self) -> None:
        """Forget them: the next look is a fresh baseline that announces nothing."""

        def change(db: sqlite3.Connection) -> None:
            with _transaction(db):
                db.execute("DELETE FROM seen_incidents")
                db.execute("DELETE FROM status_meta WHERE key = 'baseline'")

        await self._write("reset_seen", change)

    # --- leases -----------------------------------------------------------------------------------

    async def acquire_lease(self, name: str, holder: str, seconds: float, now: float) -> bool | None:
        """Atomically take or renew the lease for `holder` until now + seconds; False while another holder's has
        not expired, None when the store fails."""

        def change(db: sqlite3.Connection) -> bool:
            return (
                db.execute(
                    "INSERT INTO leases (name, holder, expires) VALUES (?, ?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET holder = excluded.holder, expires = excluded.expires "
                    "WHERE leases.holder = excluded.holder OR leases.expires <= ?",
                    (name, holder, now + seconds, now),
                ).rowcount
                > 0
            )

        return await self._write("acquire_lease", change)

    async def release_lease(self, name: str, holder: str) -> None:
        await self._write(
            "release_lease", _statement("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))
        )

    # --- the update inbox -------------------------------------------------------------------------

    async def inbox_add(self, updates: Iterable[Mapping[str, Any]], holder: str = "") -> list[int]:
        """Keep updates until they are handled, in one transaction, claimed by `holder`; the ids that were new.
        StorageError when they could not be kept."""
        now = self.clock()
        rows = [(int(u["update_id"]), json.dumps(u, ensure_ascii=False), now, holder, now) for u in updates]
        if not rows:
            return []

        def change(db: sqlite3.Connection) -> list[int]:
            new = []
            with _transaction(db):
                for row in rows:
                    inserted = db.execute(
                        "INSERT OR IGNORE INTO inbox (update_id, body, received, holder, claimed_at) "
                        "VALUES (?, ?, ?, ?, ?)",
                        row,
                    ).rowcount
                    if inserted:
                        new.append(row[0])
            return new

        return await self._write_or_raise("inbox_add", change)

    async def inbox_done(self, update_ids: Iterable[int]) -> None:
        """Forget handled updates, keeping only their ids for a day so a copy Telegram sends again is not new."""
        now = self.clock()
        ids = [(now, int(i)) for i in update_ids]

        def change(db: sqlite3.Connection) -> None:
            with _transaction(db):
                db.executemany("UPDATE inbox SET done_at = ?, body = '' WHERE update_id = ?", ids)
                db.execute("DELETE FROM inbox WHERE done_at < ?", (now - INBOX_DONE_KEEP_SECONDS,))

        await self._write("inbox_done", change)

    async def inbox_pending(self, holder: str = "", stale_seconds: float = 0.0) -> list[dict[str, Any]]:
        """Claim for `holder` the unhandled updates another holder claimed over `stale_seconds` ago (all of them at
        0), oldest first, each counted as one more attempt; those tried more than MAX_ATTEMPTS times are dropped."""
        now = self.clock()

        def change(db: sqlite3.Connection) -> tuple[list[dict[str, Any]], list[int]]:
            with _transaction(db):
                if stale_seconds > 0:
                    # Only other holders' stale claims: this holder's own wait in its queue, however long.
                    rows = db.execute(
                        "SELECT update_id, body, attempts FROM inbox"
                        " WHERE done_at IS NULL AND claimed_at <= ? AND holder <> ? ORDER BY update_id",
                        (now - stale_seconds, holder),
                    ).fetchall()
                else:
                    rows = db.execute(
                        "SELECT update_id, body, attempts FROM inbox WHERE done_at IS NULL ORDER BY update_id"
                    ).fetchall()
                dropped = [(update_id,) for update_id, _, attempts in rows if attempts + 1 > MAX_ATTEMPTS]
                kept = [(holder, now, update_id) for update_id, _, attempts in rows if attempts + 1 <= MAX_ATTEMPTS]
                # A dropped update counts as done: Telegram sending it again must not start it over.
                db.executemany(
                    "UPDATE inbox SET done_at = ?, body = '' WHERE update_id = ?", [(now, *d) for d in dropped]
                )
                db.executemany(
                    "UPDATE inbox SET attempts = attempts + 1, holder = ?, claimed_at = ? WHERE update_id = ?", kept
                )
            bodies = [json.loads(body) for _, body, attempts in rows if attempts + 1 <= MAX_ATTEMPTS]
            return bodies, [update_id for (update_id,) in dropped]

        done = await self._write("inbox_pending", change)
        if done is None:
            return []
        bodies, dropped = done
        for update_id in dropped:
            log.warning("update %s was unfinished at %d starts in a row; dropped", update_id, MAX_ATTEMPTS)
        return bodies

    async def inbox_renew(self, holder: str) -> None:
        await self._write(
            "inbox_renew",
            _statement("UPDATE inbox SET claimed_at = ? WHERE holder = ? AND done_at IS NULL", (self.clock(), holder)),
        )

    async def inbox_count(self) -> int:
        return await self._read("inbox_count", int, _count("inbox WHERE done_at IS NULL"))

    # --- the operator's record --------------------------------------------------------------------

    async def record(
        self,
        answer: str,
        confidence: float,
        *,
        lang: str,
        how: str,
        kb_version: str,
        now: datetime,
        text: str | None = None,
        user_id: int | None = None,
    ) -> int | None:
        """Count an answer; with the text and user of a message addressed to the bot, keep the text masked for
        RECENT_DAYS, and as a miss when unrecognised. Its id, for its feedback."""
        at = now.timestamp()
        kept = (owner_key(self._salt, user_id), mask(text)) if text is not None and user_id is not None else None

        def change(db: sqlite3.Connection) -> int:
            with _transaction(db):
                cur = db.execute(
                    "INSERT INTO diagnoses (at, answer, confidence, lang, how, kb_version) VALUES (?, ?, ?, ?, ?, ?)",
                    (at, answer, round(confidence, 3), lang, how, kb_version),
                )
                diagnosis_id = int(cur.lastrowid or 0)
                if kept is not None:
                    owner, masked = kept
                    db.execute(
                        "INSERT INTO recent_texts (diagnosis_id, owner, text, at) VALUES (?, ?, ?, ?)",
                        (diagnosis_id, owner, masked, at),
                    )
                    if answer == UNRECOGNISED:
                        _keep_miss(db, diagnosis_id, owner, masked, UNRECOGNISED, None, kb_version, at)
            return diagnosis_id

        return await self._write("record", change)

    async def vote(
        self, diagnosis_id: int, user_id: int, vote: str, now: datetime, correction: str | None = None
    ) -> bool | None:
        """One user's 'up' or 'down' on an answer (a new vote replaces theirs); a 'down' from the one who asked
        keeps the text as a miss while it is still kept. False if the answer is unknown."""
        at = now.timestamp()
        voter = owner_key(self._salt, user_id)

        def change(db: sqlite3.Connection) -> bool:
            with _transaction(db):
                row = db.execute("SELECT kb_version FROM diagnoses WHERE id = ?", (diagnosis_id,)).fetchone()
                if row is None:
                    return False
                db.execute(
                    "INSERT INTO feedback (diagnosis_id, voter, vote, correction, at) VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT (diagnosis_id, voter) DO UPDATE SET vote = excluded.vote,"
                    " correction = excluded.correction, at = excluded.at",
                    (diagnosis_id, voter, vote, correction, at),
                )
                if vote == "down":
                    recent = db.execute(
                        "SELECT owner, text FROM recent_texts WHERE diagnosis_id = ?", (diagnosis_id,)
                    ).fetchone()
                    if recent is not None and recent[0] == voter:
                        _keep_miss(db, diagnosis_id, voter, recent[1], "downvote", correction, row[0], at)
            return True

        return await self._write("vote", change)

    async def forget_user(self, user_id: int) -> int | None:
        """Delete every kept text from this user; how many."""
        owner = owner_key(self._salt, user_id)

        def change(db: sqlite3.Connection) -> int:
            with _transaction(db):
                gone = db.execute("DELETE FROM misses WHERE owner = ?", (owner,)).rowcount
                gone += db.execute("DELETE FROM recent_texts WHERE owner = ?", (owner,)).rowcount
            return gone

        return await self._write("forget_user", change)

    async def purge(self, now: datetime, misses_days: int) -> int | None:
        """Delete misses older than `misses_days` and kept texts older than RECENT_DAYS; how many."""
        at = now.timestamp()

        def change(db: sqlite3.Connection) -> int:
            with _transaction(db):
                gone = db.execute("DELETE FROM misses WHERE at < ?", (at - misses_days * ledger.DAY,)).rowcount
                gone += db.execute("DELETE FROM recent_texts WHERE at < ?", (at - RECENT_DAYS * ledger.DAY,)).rowcount
            return gone

        return await self._write("purge", change)

    async def misses(self) -> list[Miss]:
        """Every miss kept, oldest first."""

        def query(db: sqlite3.Connection) -> list[Miss]:
            rows = db.execute("SELECT id, at, text, reason, label, kb_version FROM misses ORDER BY at, id")
            return [miss_of(r) for r in rows]

        return await self._read("misses", list, query)

    async def stats(self, now: datetime, days: int) -> Stats:
        """Answers, languages, feedback and misses of the last `days` days."""
        since = now.timestamp() - days * ledger.DAY

        def query(db: sqlite3.Connection) -> Stats:
            with _transaction(db, "BEGIN"):
                answers = db.execute("SELECT at, answer, lang, how FROM diagnoses WHERE at >= ?", (since,)).fetchall()
                votes = db.execute(
                    "SELECT d.answer, f.vote, COUNT(*) FROM feedback f JOIN diagnoses d ON d.id = f.diagnosis_id"
                    " WHERE f.at >= ? GROUP BY d.answer, f.vote",
                    (since,),
                ).fetchall()
                misses = db.execute("SELECT COUNT(*) FROM misses").fetchone()[0]
            return stats_of(days, answers, votes, misses)

        return await self._read("stats", lambda: Stats(days), query)

    # --- life -------------------------------------------------------------------------------------

    async def healthy(self) -> bool:
        """Whether the store answers a read now."""
        return await self._read("healthy", lambda: False, lambda db: db.execute("SELECT 1").fetchone() == (1,))

    async def close(self) -> None:
        """Finish the writes in progress, then close every connection."""
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()


def _statement(sql: str, params: tuple[Any, ...]) -> Callable[[sqlite3.Connection], None]:
    """A write that is a single statement (atomic by itself)."""

    def change(db: sqlite3.Connection) -> None:
        db.execute(sql, params)

    return change


def _count(table: str) -> Callable[[sqlite3.Connection], int]:
    return lambda db: int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def _keep_miss(
    db: sqlite3.Connection,
    diagnosis_id: int,
    owner: str,
    text: str,
    reason: str,
    label: str | None,
    kb_version: str,
    at: float,
) -> None:
    db.execute(
        "INSERT INTO misses (at, owner, text, reason, label, kb_version, diagnosis_id) VALUES (?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (diagnosis_id) DO UPDATE SET label = COALESCE(excluded.label, misses.label)",
        (at, owner, text, reason, label, kb_version, diagnosis_id),
    )


@contextmanager
def _transaction(db: sqlite3.Connection, begin: str = "BEGIN IMMEDIATE") -> Iterator[None]:
    """The statements inside as one transaction (connections run in autocommit). Writes take the write lock at
    the start, so two processes never deadlock upgrading a read lock; reads use a plain BEGIN for one snapshot."""
    db.execute(begin)
    try:
        yield
    except BaseException:
        # SQLite has already rolled back after some errors (a full disk): don't hide the real error.
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
