"""Prometheus metrics (prometheus-client), named `claude_doctor_..._total` for counters and `..._seconds` for
durations; labels take small fixed sets of values only (never user ids or text)."""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Awaitable, Callable

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)

UPDATES = Counter("claude_doctor_updates_total", "Updates taken from Telegram, by type.", ["type"])
DIAGNOSES = Counter(
    "claude_doctor_diagnoses_total",
    "Answers to pasted text: the cause, known non-cause or 'unrecognised', and how it was asked"
    " (private, group, auto).",
    ["answer", "how"],
)
FEEDBACK = Counter("claude_doctor_feedback_total", "👍 and 👎 given on answers.", ["vote"])
HANDLER_SECONDS = Histogram("claude_doctor_handler_seconds", "Time to handle one update, sends included.")
SEND_RETRIES = Counter("claude_doctor_send_retries_total", "Bot API calls retried after a transient failure.")
SEND_FAILURES = Counter("claude_doctor_send_failures_total", "Bot API calls that failed after their retries.")
OCR_SECONDS = Histogram("claude_doctor_ocr_seconds", "Time to read one screenshot.")
STATUS_ERRORS = Counter("claude_doctor_status_fetch_errors_total", "Failed reads of Claude's status page.")
INBOX_DEPTH = Gauge("claude_doctor_inbox_depth", "Updates in the durable inbox not yet handled.")
OCR_QUEUE = Gauge("claude_doctor_ocr_queue_depth", "Screenshots waiting to be read.")

# The update fields Telegram sends, as metric labels; anything else is "other".
_UPDATE_TYPES = ("message", "edited_message", "callback_query", "inline_query", "my_chat_member", "chat_member")


def update_type(update: object) -> str:
    """The kind of an update, for the updates counter."""
    for name in _UPDATE_TYPES:
        if getattr(update, name, None) is not None:
            return name
    return "other"


class _InboxDepth:
    """The inbox depth as last counted. A scrape runs outside the event loop and can't wait for the store, so it
    reads this value, which the running bot refreshes (`refresh_inbox_depth`); NaN until counted or when the count
    fails."""

    def __init__(self) -> None:
        self.count: Callable[[], Awaitable[int] | int] | None = None
        self.value = math.nan

    async def refresh(self) -> None:
        if self.count is None:
            return
        try:
            counted = self.count()
            self.value = float(await counted if inspect.isawaitable(counted) else counted)
        except Exception as exc:  # a store that is closed or broken must not stop the caller's loop
            log.debug("inbox depth not counted: %s", exc)
            self.value = math.nan


_INBOX = _InboxDepth()
INBOX_DEPTH.set_function(lambda: _INBOX.value)


def watch_inbox(count: Callable[[], Awaitable[int] | int]) -> None:
    """Count the inbox with `count` (e.g. `store.inbox_count`) whenever `refresh_inbox_depth` runs."""
    _INBOX.count = count
    _INBOX.value = math.nan


async def refresh_inbox_depth() -> float:
    """Count the inbox now, for the next scrape; the value counted."""
    await _INBOX.refresh()
    return _INBOX.value


def exposition(registry: CollectorRegistry = REGISTRY) -> tuple[bytes, str]:
    """The metrics page and its content type."""
    return generate_latest(registry), CONTENT_TYPE_LATEST
