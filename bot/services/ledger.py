"""The operator's record: what was answered (no user, no text), the 👍/👎 feedback, and the misses: texts people
sent the bot that it did not recognise or got wrong, masked and kept for a stated time.

The pure parts (masking, the salted owner key, Miss, Stats and how rows become them) serve every store; the SQL
lives in the stores. `Ledger` is the old synchronous SQLite form, kept until nothing uses `Storage`."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Types only: a PostgreSQL store imports the helpers here without pulling in SQLite.
    import sqlite3

    from bot.core.matcher import Diagnosis
    from bot.services.storage import Storage

SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS diagnoses (
    id INTEGER PRIMARY KEY, at REAL NOT NULL, answer TEXT NOT NULL, confidence REAL NOT NULL, lang TEXT NOT NULL,
    how TEXT NOT NULL, kb_version TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS feedback (
    diagnosis_id INTEGER NOT NULL, voter TEXT NOT NULL, vote TEXT NOT NULL, correction TEXT, at REAL NOT NULL,
    PRIMARY KEY (diagnosis_id, voter)
);
CREATE TABLE IF NOT EXISTS recent_texts (
    diagnosis_id INTEGER PRIMARY KEY, owner TEXT NOT NULL, text TEXT NOT NULL, at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS misses (
    id INTEGER PRIMARY KEY, at REAL NOT NULL, owner TEXT NOT NULL, text TEXT NOT NULL, reason TEXT NOT NULL,
    label TEXT, kb_version TEXT NOT NULL, diagnosis_id INTEGER UNIQUE
);
"""
# A text somebody sent the bot is kept this long, so they can still say its answer was wrong; then it is deleted
# unless it became a miss.
RECENT_DAYS = 2
UNRECOGNISED = "unrecognised"
DAY = 86_400.0
_DAY = DAY
# Secrets people paste with their errors: Anthropic and other API keys, bearer tokens, bot tokens, e-mail addresses.
_SECRETS = (
    (re.compile(r"\bsk-ant-[A-Za-z0-9_-]{6,}"), "sk-ant-***"),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"), "sk-***"),
    (re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{12,}", re.I), r"\1 ***"),
    (re.compile(r"\b\d{6,12}:[A-Za-z0-9_-]{30,}\b"), "<bot token>"),
    (re.compile(r"\b(?:x-api-key|api[_-]?key|token)(\s*[:=]\s*)\"?[A-Za-z0-9._-]{12,}", re.I), r"<key>\1***"),
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "<email>"),
)


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """The statements inside as one transaction (the store's connections run in autocommit)."""
    db.execute("BEGIN")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def mask(text: str) -> str:
    """The text with keys, tokens and e-mail addresses replaced by placeholders."""
    for pattern, placeholder in _SECRETS:
        text = pattern.sub(placeholder, text)
    return text


def new_salt() -> str:
    """A fresh salt for owner keys, made once per store and kept in it."""
    return secrets.token_hex(16)


def owner_key(salt: str, user_id: int) -> str:
    """A key for what came from one user, so /forget can find it: a salted hash, not the user id."""
    return hashlib.sha256(f"{salt}:{user_id}".encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Miss:
    """A text that was not recognised, or whose answer was marked wrong (`label`: what it was, if said)."""

    id: int
    at: datetime
    text: str
    reason: str
    label: str | None
    kb_version: str


@dataclass
class Stats:
    """What the bot answered over some days."""

    days: int
    by_day: dict[str, Counter[str]] = field(default_factory=dict)
    by_lang: Counter[str] = field(default_factory=Counter)
    by_how: Counter[str] = field(default_factory=Counter)
    total: int = 0
    unrecognised: int = 0
    votes: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    misses: int = 0

    def format(self, version: str) -> str:
        """Plain lines for the operator (the CLI and /stats)."""
        rate = f"{self.unrecognised / self.total:.1%}" if self.total else "-"
        out = [
            f"last {self.days} day(s), knowledge base {version}",
            f"answers: {self.total}; not recognised: {self.unrecognised} ({rate}); misses kept: {self.misses}",
            "by how asked: " + (", ".join(f"{k} {v}" for k, v in sorted(self.by_how.items())) or "-"),
            "by language: " + (", ".join(f"{k} {v}" for k, v in sorted(self.by_lang.items())) or "-"),
        ]
        for day, counts in sorted(self.by_day.items()):
            out.append(f"{day}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        for answer, votes in sorted(self.votes.items()):
            total = votes["up"] + votes["down"]
            share = f"{votes['up'] / total:.0%}" if total else "-"
            out.append(f"feedback on {answer}: {votes['up']} up, {votes['down']} down ({share} up)")
        return "\n".join(out)


def miss_of(row: tuple[int, float, str, str, str | None, str]) -> Miss:
    """A miss from its stored row: id, at (epoch seconds), text, reason, label, kb_version."""
    return Miss(row[0], datetime.fromtimestamp(row[1], UTC), row[2], row[3], row[4], row[5])


def stats_of(
    days: int,
    answers: Iterable[tuple[float, str, str, str]],
    votes: Iterable[tuple[str, str, int]],
    misses: int,
) -> Stats:
    """Stats from the answers of the period (at, answer, lang, how), the vote counts (answer, vote, n) and the
    number of misses kept."""
    stats = Stats(days)
    for at, answer, lang, how in answers:
        day = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d")
        stats.by_day.setdefault(day, Counter())[answer] += 1
        stats.by_lang[lang] += 1
        stats.by_how[how] += 1
        stats.total += 1
        stats.unrecognised += answer == UNRECOGNISED
    for answer, vote, n in votes:
        stats.votes[answer][vote] = n
    stats.misses = misses
    return stats


class Ledger:
    """Reads and writes the record in the bot's store (each thread on its own connection, as the store does);
    every write is a method to run with `Storage.write`, off the event loop."""

    def __init__(self, store: Storage) -> None:
        self.store = store
        db = store.db
        db.executescript(SCHEMA)
        db.execute("INSERT OR IGNORE INTO ledger_meta (key, value) VALUES ('salt', ?)", (new_salt(),))
        self._salt = db.execute("SELECT value FROM ledger_meta WHERE key = 'salt'").fetchone()[0]

    @property
    def db(self) -> sqlite3.Connection:
        return self.store.db

    def owner(self, user_id: int) -> str:
        """A key for what came from one user, so /forget can find it: a salted hash, not the user id."""
        return owner_key(self._salt, user_id)

    def record(
        self,
        diagnosis: Diagnosis,
        *,
        lang: str,
        how: str,
        kb_version: str,
        now: datetime,
        text: str | None = None,
        user_id: int | None = None,
    ) -> int:
        """Count an answer; with the `text` and `user_id` of a message addressed to the bot, keep the text (masked)
        for RECENT_DAYS, and as a miss when nothing was recognised. Returns the answer's id for its feedback."""
        answer = diagnosis.cause or diagnosis.known or UNRECOGNISED
        at = now.timestamp()
        with _transaction(self.db):
            cur = self.db.execute(
                "INSERT INTO diagnoses (at, answer, confidence, lang, how, kb_version) VALUES (?, ?, ?, ?, ?, ?)",
                (at, answer, round(diagnosis.confidence, 3), lang, how, kb_version),
            )
            diagnosis_id = int(cur.lastrowid or 0)
            if text is not None and user_id is not None:
                owner, masked = self.owner(user_id), mask(text)
                self.db.execute(
                    "INSERT INTO recent_texts (diagnosis_id, owner, text, at) VALUES (?, ?, ?, ?)",
                    (diagnosis_id, owner, masked, at),
                )
                if answer == UNRECOGNISED:
                    self._miss(diagnosis_id, owner, masked, UNRECOGNISED, None, kb_version, at)
        return diagnosis_id

    def _miss(
        self, diagnosis_id: int, owner: str, text: str, reason: str, label: str | None, kb_version: str, at: float
    ) -> None:
        self.db.execute(
            "INSERT INTO misses (at, owner, text, reason, label, kb_version, diagnosis_id) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (diagnosis_id) DO UPDATE SET label = COALESCE(excluded.label, misses.label)",
            (at, owner, text, reason, label, kb_version, diagnosis_id),
        )

    def vote(self, diagnosis_id: int, user_id: int, vote: str, now: datetime, correction: str | None = None) -> bool:
        """One user's 👍 or 👎 on an answer (a new vote replaces theirs); after 👎, `correction` says what it was.
        A 👎 keeps the text as a miss while it is still kept. False if the answer is unknown."""
        at = now.timestamp()
        voter = self.owner(user_id)
        with _transaction(self.db):
            row = self.db.execute("SELECT kb_version FROM diagnoses WHERE id = ?", (diagnosis_id,)).fetchone()
            if row is None:
                return False
            self.db.execute(
                "INSERT INTO feedback (diagnosis_id, voter, vote, correction, at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (diagnosis_id, voter) DO UPDATE SET vote = excluded.vote,"
                " correction = excluded.correction, at = excluded.at",
                (diagnosis_id, voter, vote, correction, at),
            )
            if vote == "down":
                recent = self.db.execute(
                    "SELECT owner, text FROM recent_texts WHERE diagnosis_id = ?", (diagnosis_id,)
                ).fetchone()
                if recent is not None and recent[0] == voter:
                    self._miss(diagnosis_id, voter, recent[1], "downvote", correction, row[0], at)
        return True

    def forget(self, user_id: int) -> int:
        """Delete every kept text that came from this user; how many."""
        owner = self.owner(user_id)
        with _transaction(self.db):
            gone = self.db.execute("DELETE FROM misses WHERE owner = ?", (owner,)).rowcount
            gone += self.db.execute("DELETE FROM recent_texts WHERE owner = ?", (owner,)).rowcount
        return gone

    def purge(self, now: datetime, misses_days: int) -> int:
        """Delete misses older than `misses_days` and kept texts older than RECENT_DAYS; how many."""
        at = now.timestamp()
        with _transaction(self.db):
            gone = self.db.execute("DELETE FROM misses WHERE at < ?", (at - misses_days * _DAY,)).rowcount
            gone += self.db.execute("DELETE FROM recent_texts WHERE at < ?", (at - RECENT_DAYS * _DAY,)).rowcount
        return gone

    def misses(self) -> list[Miss]:
        """Every miss kept, oldest first."""
        rows = self.db.execute("SELECT id, at, text, reason, label, kb_version FROM misses ORDER BY at, id")
        return [miss_of(r) for r in rows]

    def stats(self, now: datetime, days: int) -> Stats:
        """Answers, languages, feedback and misses of the last `days` days."""
        since = now.timestamp() - days * _DAY
        answers = self.db.execute("SELECT at, answer, lang, how FROM diagnoses WHERE at >= ?", (since,)).fetchall()
        votes = self.db.execute(
            "SELECT d.answer, f.vote, COUNT(*) FROM feedback f JOIN diagnoses d ON d.id = f.diagnosis_id"
            " WHERE f.at >= ? GROUP BY d.answer, f.vote",
            (since,),
        ).fetchall()
        return stats_of(days, answers, votes, self.db.execute("SELECT COUNT(*) FROM misses").fetchone()[0])
