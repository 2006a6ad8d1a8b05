"""Updates handled concurrently with python-telegram-bot's update processor: one chat's updates in order, chats
independent, floods dropped at the door, and each update marked done in the inbox once handled."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Hashable
from inspect import iscoroutine
from typing import TYPE_CHECKING, Any

from telegram import ReplyParameters, Update
from telegram.constants import ChatType
from telegram.error import TelegramError
from telegram.ext import BaseUpdateProcessor

from bot.services.metrics import HANDLER_SECONDS, UPDATES, update_type
from bot.telegram.adapter import sender_of
from bot.telegram.flood import FloodGate, Verdict
from bot.telegram.ratelimit import ANSWERED

if TYPE_CHECKING:
    from telegram.ext import Application

    from bot.services.store import Store

log = logging.getLogger(__name__)
# Updates waiting for their chat's turn only cost memory (they are in the inbox already); the work itself is
# bounded by `workers`, taken once a chat's turn comes, so a chat waiting on its own flood limit holds no slot.
MAX_WAITING = 100_000


def chat_key(update: object) -> Hashable | None:
    """What orders updates: their chat, else their user (inline queries, buttons on inline messages)."""
    if not isinstance(update, Update):
        return None
    if update.effective_chat is not None:
        return ("chat", update.effective_chat.id)
    if update.effective_user is not None:
        return ("user", update.effective_user.id)
    return None


def _discard(coroutine: Awaitable[Any]) -> None:
    if iscoroutine(coroutine):
        coroutine.close()


class ChatOrderedProcessor(BaseUpdateProcessor):
    """Per-chat ordering with at most `workers` updates being worked on; on shutdown, `drain` stops taking new
    ones (they stay in the inbox for the next start) and gives the ones in flight a grace period."""

    def __init__(self, *, workers: int = 64, flood: FloodGate | None = None) -> None:
        super().__init__(max_concurrent_updates=MAX_WAITING)
        self.workers = workers
        self.flood = flood
        self.store: Store | None = None
        self.application: Application | None = None  # type: ignore[type-arg]
        self.draining = False
        self._slots = asyncio.Semaphore(workers)
        self._chats: dict[Hashable, tuple[asyncio.Lock, int]] = {}
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._finished: list[int] = []
        self._flushing = False

    def attach(self, application: Application, store: Store | None) -> None:  # type: ignore[type-arg]
        """The application (for the bot's identity and "slow down" notes) and the inbox to mark updates done in."""
        self.application = application
        self.store = store

    async def initialize(self) -> None:
        self.draining = False

    async def shutdown(self) -> None:
        """Nothing to free: the inbox belongs to the store."""

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        UPDATES.labels(update_type(update)).inc()
        if self.draining:
            _discard(coroutine)  # left in the inbox for the next start
            return
        verdict = self._verdict(update)
        if verdict is not Verdict.OK:
            _discard(coroutine)
            if verdict is Verdict.WARN:
                await self._slow_down(update)
            await self._done(update)
            return
        # One worker means one queue: updates then run strictly in arrival order across chats as well.
        key = chat_key(update) if self.workers > 1 else "all"
        if key is None:
            if await self._work(coroutine):
                await self._done(update)
            return
        lock, users = self._chats.get(key) or (asyncio.Lock(), 0)
        self._chats[key] = (lock, users + 1)
        try:
            async with lock:
                handled = await self._work(coroutine)
        finally:
            lock, users = self._chats[key]
            if users <= 1:
                del self._chats[key]
            else:
                self._chats[key] = (lock, users - 1)
        if handled:
            await self._done(update)

    async def _work(self, coroutine: Awaitable[Any]) -> bool:
        """Handle one update when a worker is free; False when shutdown began meanwhile (it stays in the inbox)."""
        async with self._slots:
            if self.draining:
                _discard(coroutine)
                return False
            task = asyncio.current_task()
            if task is not None:
                self._in_flight.add(task)
            # The error handler runs in this task: it apologises only when nothing went out for this update.
            ANSWERED.set(False)
            try:
                with HANDLER_SECONDS.time():
                    await coroutine
            finally:
                if task is not None:
                    self._in_flight.discard(task)
        return True

    def _verdict(self, update: object) -> Verdict:
        if self.flood is None or not isinstance(update, Update) or self.application is None:
            return Verdict.OK
        bot = self.application.bot
        try:
            username = bot.username
        except RuntimeError:  # not initialised (a test driving the processor alone)
            username = None
        return self.flood.check(update, bot.id, username)

    async def _slow_down(self, update: object) -> None:
        if not isinstance(update, Update) or self.application is None:
            return
        chat, message = update.effective_chat, update.effective_message
        if chat is None:
            return
        conversation = self.application.bot_data.get("conversation")
        if conversation is None:
            return
        # What the user is told once, then silence, in their language.
        text = (await conversation.slow_down(sender_of(update))).text
        in_group = chat.type != ChatType.PRIVATE and message is not None
        try:
            await self.application.bot.send_message(
                chat.id,
                text,
                reply_parameters=ReplyParameters(message.message_id, allow_sending_without_reply=True)
                if in_group and message is not None
                else None,
            )
        except TelegramError as exc:
            log.info("could not tell chat %s to slow down: %s", chat.id, exc)

    async def _done(self, update: object) -> None:
        """Mark an update done in the inbox. Marks that arrive while one write is running go out together in the
        next one (a group commit): one write per burst rather than per update."""
        if self.store is None or not isinstance(update, Update):
            return
        self._finished.append(update.update_id)
        if self._flushing:
            return
        self._flushing = True
        try:
            while self._finished:
                ids, self._finished = self._finished, []
                await self.store.inbox_done(ids)
        finally:
            self._flushing = False

    @property
    def in_flight(self) -> int:
        """Updates being worked on right now."""
        return len(self._in_flight)

    async def drain(self, grace: float) -> int:
        """Take no new updates; wait up to `grace` seconds for those in flight, then cancel the rest (they stay
        in the inbox). Returns how many were cancelled."""
        self.draining = True
        pending = set(self._in_flight)
        if pending:
            _, pending = await asyncio.wait(pending, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1.0)
        return len(pending)
