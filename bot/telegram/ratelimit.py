"""Sending under Telegram's limits without one chat holding up the others: python-telegram-bot's AIORateLimiter
(30 messages a second overall, 20 a minute per group) with a 429's wait kept to its own chat, and transient
failures (5xx, resets, timeouts) retried with backoff and jitter."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from typing import Any

from telegram.error import BadRequest, NetworkError, RetryAfter
from telegram.ext import AIORateLimiter

from bot.services.metrics import SEND_FAILURES, SEND_RETRIES

log = logging.getLogger(__name__)

# Set once a message went out while handling the current update: the error handler then owes no apology.
ANSWERED: ContextVar[bool] = ContextVar("answered", default=False)
# A 429 without a chat (a global flood wait) stops every request for at most this long; longer ones are logged.
GLOBAL_WAIT_CAP = 10.0
# A chat's own 429 longer than this is not waited out inside a handler: the answer is dropped and logged.
CHAT_WAIT_CAP = 60.0
_SENDS = ("send", "edit", "copy", "forward", "answerInlineQuery")

JSON = Any


class ChatRateLimiter(AIORateLimiter):
    """AIORateLimiter whose flood waits are per chat, plus bounded retries of transient failures."""

    def __init__(
        self,
        *,
        retries: int = 3,
        backoff: float = 0.25,
        backoff_cap: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(max_retries=0)
        self.retries = retries
        self.backoff = backoff
        self.backoff_cap = backoff_cap
        self.clock = clock
        self._chat_until: dict[int | str, float] = {}

    def delay(self, attempt: int) -> float:
        """The pause before retry `attempt` (0-based): doubling from `backoff`, capped, with full jitter."""
        return random.uniform(0.5, 1.0) * min(self.backoff_cap, self.backoff * 2**attempt)

    async def _wait_for_chat(self, chat_id: int | str | None) -> None:
        if chat_id is None:
            return
        until = self._chat_until.get(chat_id)
        if until is None:
            return
        left = until - self.clock()
        if left > CHAT_WAIT_CAP:
            # Telegram refuses this chat for minutes: drop the send now rather than hold a worker that long.
            raise RetryAfter(int(left) + 1)
        if left > 0:
            await asyncio.sleep(left)
        elif len(self._chat_until) > 1024:
            # Expired waits: keep the map small however many chats once flooded.
            now = self.clock()
            self._chat_until = {k: t for k, t in self._chat_until.items() if t > now}

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, JSON]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> JSON:
        chat_id = data.get("chat_id")
        with contextlib.suppress(ValueError, TypeError):
            chat_id = int(chat_id)  # type: ignore[arg-type]
        group: int | str | bool = (
            chat_id if (isinstance(chat_id, int) and chat_id < 0) or isinstance(chat_id, str) else False
        )
        attempts = (rate_limit_args or self.retries) + 1
        for attempt in range(attempts):
            await self._wait_for_chat(chat_id)
            try:
                result = await self._run_request(
                    chat=chat_id is not None,
                    group=group,
                    allow_paid_broadcast=bool(data.get("allow_paid_broadcast", False)),
                    callback=callback,
                    args=args,
                    kwargs=kwargs,
                )
            except RetryAfter as exc:
                await self._flood_wait(exc, chat_id, endpoint, last=attempt == attempts - 1)
                continue
            except BadRequest:
                raise
            except NetworkError as exc:
                # 5xx, resets and timeouts; a timed-out send may have gone out, so a retry can repeat it (rare,
                # and better than an answer lost).
                if attempt == attempts - 1:
                    SEND_FAILURES.inc()
                    raise
                SEND_RETRIES.inc()
                pause = self.delay(attempt)
                log.info("%s failed (%s); retry %d in %.2f s", endpoint, exc.message, attempt + 1, pause)
                await asyncio.sleep(pause)
                continue
            if endpoint.startswith(_SENDS):
                ANSWERED.set(True)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    async def _flood_wait(self, exc: RetryAfter, chat_id: int | str | None, endpoint: str, *, last: bool) -> None:
        """Telegram said to wait: a whole-bot wait pauses every send (capped); a chat's wait holds up only that
        chat. Raises `exc` when this was the last attempt or the chat's wait is too long to hold an answer for."""
        # The timedelta form, as the library's own limiter reads it (the public attribute warns).
        wait = exc._retry_after.total_seconds()
        if chat_id is None:
            capped = min(wait, GLOBAL_WAIT_CAP)
            log.warning("%s: flood wait of %.0f s for the whole bot; pausing %.0f s", endpoint, wait, capped)
            self._retry_after_event.clear()
            try:
                await asyncio.sleep(capped)
            finally:
                self._retry_after_event.set()
            if last:
                raise exc
            return
        self._chat_until[chat_id] = self.clock() + wait
        if wait > CHAT_WAIT_CAP or last:
            log.warning("%s to chat %s: flood wait of %.0f s; giving up", endpoint, chat_id, wait)
            raise exc
        log.info("%s to chat %s: flood wait of %.0f s for this chat", endpoint, chat_id, wait)
