"""The status poller and notifier, without Telegram: while any chat is subscribed, read the status page and send each
subscribed chat one message per change. With several replicas on one store, one polls at a time (the holder of the
store's lease) and another takes over within a minute when it dies."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import TYPE_CHECKING

from bot.core.notify import Backoff, Event, diff
from bot.core.replies import split_message
from bot.core.statuspage import StatusSummary
from bot.services.metrics import STATUS_ERRORS
from bot.services.status import StatusError
from bot.services.store import Subscription

if TYPE_CHECKING:
    from bot.conversation import Conversation

log = logging.getLogger(__name__)
LEASE = "status-poller"


class Delivery(Enum):
    """How sending one message to a chat went."""

    SENT = "sent"
    # The chat blocked or removed the bot: it is unsubscribed.
    CLOSED = "closed"
    FAILED = "failed"


Send = Callable[[int, str], Awaitable[Delivery]]


def replica_id() -> str:
    """This process among replicas: host, pid and a random part (a restarted process is a new holder)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class StatusNotifier:
    """Polls on `tick()`; the front end schedules the ticks (python-telegram-bot's job queue in the bot).

    `poll_seconds` and `lease_seconds` are STATUS_POLL_SECONDS and STATUS_LEASE_SECONDS (see bot.settings): the
    page is read every `poll_seconds` while it answers, and the lease is held `lease_seconds` after each renewal,
    renewed (and looked at by the other replicas) every half of it."""

    def __init__(
        self,
        conversation: Conversation,
        send: Send,
        *,
        poll_seconds: float,
        lease_seconds: float,
        holder: str | None = None,
    ) -> None:
        self.conversation = conversation
        self.send = send
        self.holder = holder or replica_id()
        self.lease_seconds = lease_seconds
        # Wall-clock seconds: leases are compared across processes (and a test moves it by hand).
        self.clock: Callable[[], float] = time.time
        self.backoff = Backoff(base=poll_seconds)
        # One poll at a time: a tick and a /subscribe's baseline must not diff the same state twice.
        self.lock = asyncio.Lock()
        self._next_poll = 0.0

    @property
    def first_delay(self) -> float:
        """How soon the first tick after a /subscribe or a start comes."""
        return min(self.backoff.delay, self.lease_seconds / 2)

    async def baseline(self, summary: StatusSummary) -> None:
        """The first subscriber's view is the baseline: what is open now is not news to announce later."""
        store = self.conversation.store
        async with self.lock:
            if await store.seen_incidents() is None:
                await store.save_seen(diff(None, summary)[1])

    async def tick(self) -> float | None:
        """Poll if this replica holds the lease and it is time; the seconds until the next tick, or None when
        nobody is subscribed (the incidents seen are forgotten then, so a later first subscriber starts afresh)."""
        store = self.conversation.store
        if not await store.subscription_count():
            self.backoff.succeeded()
            await store.reset_seen()
            return None
        now = self.clock()
        if not await store.acquire_lease(LEASE, self.holder, self.lease_seconds, now):
            return self.lease_seconds / 2
        if now >= self._next_poll:
            ok = await self.poll_once()
            delay = self.backoff.succeeded() if ok else self.backoff.failed()
            if not ok:
                log.info("status poll failed; next try in %.0f s", delay)
            self._next_poll = now + delay
        return min(self._next_poll - now, self.lease_seconds / 2)

    async def poll_once(self) -> bool:
        """Read the status page once and send each subscribed chat one message per change; False if the page
        could not be read."""
        conversation, store = self.conversation, self.conversation.store
        if conversation.status is None:
            return False
        async with self.lock:
            try:
                summary = await conversation.status.get()
            except StatusError as exc:
                STATUS_ERRORS.inc()
                log.info("status poll: %s", exc)
                return False
            events, seen = diff(await store.seen_incidents(), summary)
            # Remembered before sending: a crash halfway may drop a message but a restart never repeats one.
            await store.save_seen(seen)
            for event in events:
                for subscription in await store.subscriptions():
                    await self.notify(subscription, event)
        return True

    async def notify(self, subscription: Subscription, event: Event) -> None:
        """Send one chat the message about one event; a chat that blocked or removed the bot is unsubscribed."""
        conversation, store = self.conversation, self.conversation.store
        chat_id = subscription.chat_id
        if chat_id > 0:  # a private chat: the user's current /lang and /tz win over those saved at /subscribe
            user = await store.user(chat_id)
            lang = user.lang or subscription.lang
            tz = conversation.responder.live.user_zone(user.tz or subscription.tz, lang)
        else:
            lang = (await store.chat(chat_id)).lang or subscription.lang
            tz = conversation.responder.live.user_zone(subscription.tz, lang)
        text = conversation.responder.live.event(event, conversation.now(), tz, lang)
        for part in split_message(text):
            delivery = await self.send(chat_id, part)
            if delivery is Delivery.CLOSED:
                log.info("chat %s is closed to the bot; unsubscribed", chat_id)
                await store.unsubscribe(chat_id)
                return
            if delivery is Delivery.FAILED:
                return
