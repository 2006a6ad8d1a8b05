"""The operator's record: what was answered (no user, no text), the 👍/👎 feedback, and the misses: texts people
sent the bot that it did not recognise or got wrong, masked and kept for a stated time.

These are the pure parts (masking, the salted owner key, Miss, Stats and how rows become them) that every store
shares; the SQL lives in the stores (`Store.record`, `vote`, `forget_user`, `purge`, `misses`, `stats`)."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

# The record's tables in SQLite's dialect (PostgresStore keeps the same tables and columns in its migrations).
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
# Secrets people paste with their errors: Anthropic and other API keys, bearer tokens, bot tokens, e-mail addresses.
_SECRETS = (
    (re.compile(r"\bsk-ant-[A-Za-z0-9_-]{6,}"), "sk-ant-***"),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"), "sk-***"),
    (re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{12,}", re.I), r"\1 ***"),
    (re.compile(r"\b\d{6,12}:[A-Za-z0-9_-]{30,}\b"), "<bot token>"),
    (re.compile(r"\b(?:x-api-key|api[_-]?key|token)(\s*[:=]\s*)\"?[A-Za-z0-9._-]{12,}", re.I), r"<key>\1***"),
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "<email>"),
)


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
