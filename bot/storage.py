"""Per-chat and per-user settings, the message-to-answer map, status subscriptions and the incidents last seen,
kept in SQLite under DATA_DIR."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bot.notify import SeenIncident

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
"""
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


class Storage:
    """A small SQLite database; every call is one short transaction, fast enough to run inside handlers."""

    def __init__(self, data_dir: Path) -> None:
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            self.path = data_dir / "claude-doctor.sqlite3"
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            # WAL without a sync per commit: a write per answered message must not cost an fsync (a crash of
            # the process loses nothing; only a power cut can lose the last moments).
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = NORMAL")
            self.db.executescript(_SCHEMA)
            # A write now, so an unwritable directory fails at start-up rather than in the first group.
            self.db.execute("PRAGMA user_version = 2")
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"DATA_DIR {str(data_dir)!r} is not usable: {exc}") from exc

    def close(self) -> None:
        self.db.close()

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

    def is_subscribed(self, chat_id: int) -> bool:
        return self.db.execute("SELECT 1 FROM subscriptions WHERE chat_id = ?", (chat_id,)).fetchone() is not None

    def subscriptions(self) -> list[Subscription]:
        """Every subscribed chat, oldest subscription first."""
        rows = self.db.execute("SELECT chat_id, lang, tz FROM subscriptions ORDER BY created, chat_id").fetchall()
        return [Subscription(chat_id, lang, tz) for chat_id, lang, tz in rows]

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

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        # The connection is in autocommit mode; group statements that must land together.
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
