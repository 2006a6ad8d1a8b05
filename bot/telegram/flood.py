"""Input limits per user and per group (token buckets), so one flooding user or group costs the others nothing."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from telegram import Update
from telegram.constants import ChatType

log = logging.getLogger(__name__)


class Verdict(Enum):
    """What to do with an update: handle it, drop it after saying "slow down" once, or drop it silently."""

    OK = "ok"
    WARN = "warn"
    DROP = "drop"


@dataclass
class _Bucket:
    tokens: float
    at: float
    warned: float | None = None


class FloodGate:
    """Token buckets: each user may address the bot `user_burst` times at once and `user_rate` times a second
    after that; each group may bring `group_burst` updates at once and `group_rate` a second. Plain group chatter
    counts against the group only, so a lively group does not get a user told off."""

    def __init__(
        self,
        *,
        user_burst: float = 20,
        user_rate: float = 1 / 3,
        group_burst: float = 60,
        group_rate: float = 1.0,
        warn_every: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 50_000,
    ) -> None:
        self.user = (user_burst, user_rate)
        self.group = (group_burst, group_rate)
        self.warn_every = warn_every
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: dict[tuple[str, int], _Bucket] = {}

    def _take(self, key: tuple[str, int], burst: float, rate: float, now: float) -> _Bucket | None:
        """Take a token from the bucket; the bucket when it is empty (the update is over the limit), else None."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._prune(now)
            bucket = self._buckets[key] = _Bucket(burst, now)
        bucket.tokens = min(burst, bucket.tokens + (now - bucket.at) * rate)
        bucket.at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return None
        return bucket

    def _prune(self, now: float) -> None:
        # Buckets that would be full again carry no state worth keeping.
        def full(key: tuple[str, int], b: _Bucket) -> bool:
            burst, rate = self.user if key[0] == "user" else self.group
            return b.tokens + (now - b.at) * rate >= burst

        self._buckets = {k: b for k, b in self._buckets.items() if not full(k, b)}

    def check(self, update: Update, bot_id: int, username: str | None) -> Verdict:
        """The verdict for one incoming update."""
        if update.inline_query is not None or update.chosen_inline_result is not None:
            # One per keystroke while typing, answered from the matcher alone: not worth limiting.
            return Verdict.OK
        now = self.clock()
        chat = update.effective_chat
        user = update.effective_user
        if chat is not None and chat.type in (ChatType.GROUP, ChatType.SUPERGROUP):
            if self._take(("group", chat.id), *self.group, now) is not None:
                log.debug("group %s over its input limit; update %s dropped", chat.id, update.update_id)
                return Verdict.DROP
            if not addresses_bot(update, bot_id, username):
                return Verdict.OK
        if user is None or (update.message is None and update.edited_message is None and update.callback_query is None):
            return Verdict.OK
        bucket = self._take(("user", user.id), *self.user, now)
        if bucket is None:
            return Verdict.OK
        if bucket.warned is None or now - bucket.warned >= self.warn_every:
            bucket.warned = now
            log.info("user %s over the input limit: told to slow down once, then ignored", user.id)
            return Verdict.WARN
        return Verdict.DROP


def addresses_bot(update: Update, bot_id: int, username: str | None) -> bool:
    """Whether a group update asks the bot for something: a command, a mention, a reply to the bot, a button."""
    if update.callback_query is not None:
        return True
    message = update.message or update.edited_message
    if message is None:
        return False
    text = message.text or message.caption or ""
    if text.startswith("/"):
        return True
    if username and f"@{username.lower()}" in text.lower():
        return True
    replied = message.reply_to_message
    return replied is not None and replied.from_user is not None and replied.from_user.id == bot_id
