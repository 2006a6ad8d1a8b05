"""Per-chat and per-user settings and the message-to-answer map, kept in SQLite under DATA_DIR."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

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


class Storage:
    """A small SQLite database; every call is one short transaction, fast enough to run inside handlers."""

    def __init__(self, data_dir: Path) -> None:
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            self.path = data_dir / "claude-doctor.sqlite3"
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.db.executescript(_SCHEMA)
            # A write now, so an unwritable directory fails at start-up rather than in the first group.
            self.db.execute("PRAGMA user_version = 1")
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
        """The bot left or was removed: drop what it kept about the chat."""
        self.db.execute("DELETE FROM answers WHERE chat_id = ?", (chat_id,))
