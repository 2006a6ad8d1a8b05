"""What the bot keeps, as one async protocol: per-chat and per-user settings, the message-to-answer map, auto-answer
cooldowns, status subscriptions, the incidents last seen, leases (one status poller among replicas), the update inbox
and the operator's record. SQLite (one process) and PostgreSQL (several replicas) implement it.

Every method is a coroutine and never blocks the event loop. A store that is locked, full or unreachable degrades:
reads return their default and writes return None (each logged), so an answer goes out without the setting rather
than not at all. Only `open_store` and start-up raise StorageError."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlparse

from bot.core.notify import SeenIncident

if TYPE_CHECKING:
    from bot.services.ledger import Miss, Stats
    from bot.settings import Settings

# An update still unfinished after this many starts is dropped: one that kills the process must not do it forever.
MAX_ATTEMPTS = 3
# Edits older than this are not followed: the answer map stays small.
ANSWER_TTL_SECONDS = 2 * 24 * 3600
# A handled update's id is remembered this long (Telegram keeps an unconfirmed update for a day), so a copy sent
# again after a crash or a slow webhook answer is recognised and not handled twice.
INBOX_DONE_KEEP_SECONDS = 24 * 3600
# Cooldown rows older than this are useless (the cooldown is minutes): pruned as new ones are claimed.
COOLDOWN_KEEP_SECONDS = 24 * 3600


class StorageError(Exception):
    """The store can't be opened or migrated; the message is one line for the operator, with no password in it."""


@dataclass(frozen=True)
class ChatSettings:
    """A group's switches."""

    autoreply: bool = True
    lang: str | None = None


@dataclass(frozen=True)
class UserSettings:
    """A user's /lang and /tz choices (None: not chosen)."""

    lang: str | None = None
    tz: str | None = None


@dataclass(frozen=True)
class Subscription:
    """A chat that wants status notifications, with the language and time zone chosen when it subscribed."""

    chat_id: int
    lang: str
    tz: str | None = None


class Store(Protocol):
    """The bot's state. Implementations: `bot.services.sqlite_store.SqliteStore`,
    `bot.services.postgres_store.PostgresStore`; `open_store` picks one from the settings."""

    # --- settings ---------------------------------------------------------------------------------
    async def chat(self, chat_id: int) -> ChatSettings: ...
    async def set_autoreply(self, chat_id: int, on: bool) -> None: ...
    async def set_chat_lang(self, chat_id: int, lang: str | None) -> None: ...
    async def user(self, user_id: int) -> UserSettings: ...
    async def set_user_lang(self, user_id: int, lang: str | None) -> None: ...
    async def set_user_tz(self, user_id: int, tz: str | None) -> None: ...

    # --- the answer map (edits follow) and chat lifecycle -----------------------------------------
    async def remember_answer(self, chat_id: int, message_id: int, answer_id: int) -> None: ...
    async def answer_for(self, chat_id: int, message_id: int) -> int | None: ...
    async def forget_chat(self, chat_id: int) -> None:
        """The bot left the chat: drop its answers and its subscription."""

    async def move_chat(self, old_id: int, new_id: int) -> None:
        """A group became a supergroup: settings and subscription follow (what the new id has wins)."""

    # --- auto-answer cooldowns --------------------------------------------------------------------
    async def claim_cooldown(self, chat_id: int, key: str, now: float, seconds: float) -> bool | None:
        """Atomically: True and mark (chat, key) at `now` if it was not marked within `seconds` before `now`,
        else False (None: the store failed). Two replicas claiming the same key at once: exactly one gets True."""

    # --- status subscriptions ---------------------------------------------------------------------
    async def subscribe(self, chat_id: int, lang: str, tz: str | None = None) -> bool | None:
        """Subscribe a chat; False if it already was (its language and zone are then refreshed)."""

    async def unsubscribe(self, chat_id: int) -> bool | None:
        """Drop a chat's subscription; False if it had none."""

    async def subscriptions(self) -> list[Subscription]:
        """Every subscribed chat, oldest subscription first."""

    async def subscription_count(self) -> int: ...

    # --- incidents last seen ----------------------------------------------------------------------
    async def seen_incidents(self) -> dict[str, SeenIncident] | None:
        """The open incidents as last seen, by id; None before the first look (no baseline yet)."""

    async def save_seen(self, seen: Mapping[str, SeenIncident]) -> None:
        """Replace the incidents last seen in one transaction."""

    async def reset_seen(self) -> None:
        """Forget them: the next look is a fresh baseline that announces nothing."""

    # --- leases -----------------------------------------------------------------------------------
    async def acquire_lease(self, name: str, holder: str, seconds: float, now: float) -> bool | None:
        """Atomically take or renew the lease `name` for `holder` until now + seconds; False while another holder's
        lease has not expired (None: the store failed). A holder that dies loses it when it expires."""

    async def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up (only if `holder` holds it)."""

    # --- the update inbox -------------------------------------------------------------------------
    async def inbox_add(self, updates: Iterable[Mapping[str, Any]], holder: str = "") -> list[int]:
        """Keep updates taken from Telegram until they are handled, in one transaction, claimed by `holder`.
        Returns the ids that were new: an update already kept (Telegram sent it twice, or to another replica) is not
        returned, so it is handled once. On failure: raises StorageError (the caller decides whether to confirm the
        updates to Telegram unkept or not at all)."""

    async def inbox_done(self, update_ids: Iterable[int]) -> None:
        """Forget handled updates, but remember their ids for INBOX_DONE_KEEP_SECONDS: `inbox_add` does not call
        them new again."""

    async def inbox_pending(self, holder: str = "", stale_seconds: float = 0.0) -> list[dict[str, Any]]:
        """Claim for `holder` the updates taken but not handled whose claim by another holder is older than
        `stale_seconds` (not renewed by `inbox_renew` in that time; this holder's own wait in its queue), or all of
        them at 0 (one process after a restart), oldest first, each counted as one more attempt; those tried more
        than MAX_ATTEMPTS times are dropped with a warning (and count as done)."""

    async def inbox_renew(self, holder: str) -> None:
        """Date `holder`'s claims on its unhandled updates now: a live holder renews them more often than
        `stale_seconds`, so however long they wait in its queue, `inbox_pending` leaves them to it."""

    async def inbox_count(self) -> int: ...

    # --- the operator's record (see bot.services.ledger) ------------------------------------------
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
        """Count an answer (`answer`: a cause, a known id or 'unrecognised'); with the text and user of a message
        addressed to the bot, keep the text masked for RECENT_DAYS, and as a miss when unrecognised. Its id."""

    async def vote(
        self, diagnosis_id: int, user_id: int, vote: str, now: datetime, correction: str | None = None
    ) -> bool | None:
        """One user's 'up' or 'down' on an answer; False if the answer is unknown."""

    async def forget_user(self, user_id: int) -> int | None:
        """Delete every kept text from this user; how many."""

    async def purge(self, now: datetime, misses_days: int) -> int | None:
        """Delete misses and kept texts past their time; how many."""

    async def misses(self) -> list[Miss]:
        """Every miss kept, oldest first (for `claude-doctor misses`)."""

    async def stats(self, now: datetime, days: int) -> Stats:
        """Answers, languages, feedback and misses of the last `days` days (for /stats)."""

    # --- life -------------------------------------------------------------------------------------
    async def healthy(self) -> bool:
        """Whether the store answers now (for /healthz)."""

    async def close(self) -> None: ...


async def open_store(settings: Settings) -> Store:
    """The store the settings name: PostgreSQL when DATABASE_URL is a postgresql:// URL, else SQLite in DATA_DIR.
    Call it inside the event loop that will use the store (a PostgreSQL pool belongs to its loop). StorageError
    with one line (no password) when it can't be opened."""
    url = (getattr(settings, "database_url", None) or "").strip()
    if not url:
        from bot.services.sqlite_store import SqliteStore

        return SqliteStore(settings.data_dir)
    scheme = urlparse(url).scheme
    if scheme not in ("postgresql", "postgres"):
        raise StorageError(f"DATABASE_URL must start with postgresql://, not {scheme or 'nothing'}://")
    # Imported only here: a SQLite deployment needs no PostgreSQL driver installed.
    from bot.services.postgres_store import PostgresStore

    return await PostgresStore.open(url)
