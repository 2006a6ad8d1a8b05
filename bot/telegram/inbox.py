"""The getUpdates connection: updates are written to the inbox before they are handed on, so the next getUpdates
(which confirms them to Telegram for good) never confirms one that a crash could lose; fatal answers stop the bot."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from telegram import Update
from telegram.request import HTTPXRequest

if TYPE_CHECKING:
    from bot.services.storage import Storage

log = logging.getLogger(__name__)
# This many answers in a row that are not an update list (HTML from a proxy, a broken server) end polling.
GARBLED_LIMIT = 3
_EMPTY = b'{"ok": true, "result": []}'
_REVOKED = (
    "Telegram rejected TELEGRAM_BOT_TOKEN while polling ({}): it was revoked or is wrong; check it with @BotFather"
)
_FATAL = {
    401: _REVOKED.format(401),
    404: _REVOKED.format(404),
    409: "another instance is polling this bot or a webhook is set (409 Conflict): run one instance only",
}


def parseable(update: Any) -> dict[str, Any] | None:
    """The update if python-telegram-bot can read it; a bare {"update_id"} when it cannot (it is skipped but still
    confirmed, logged once without its content); None without even an update id."""
    if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
        return None
    try:
        Update.de_json(update, None)
    except Exception as exc:  # whatever a malformed field makes the library raise
        log.warning("update %s cannot be read (%s); skipped", update["update_id"], type(exc).__name__)
        return {"update_id": update["update_id"]}
    return update


class InboxRequest(HTTPXRequest):
    """HTTPXRequest for getUpdates only: keeps each batch in the inbox before returning it, skips unreadable
    updates, and reports a revoked token, a second instance or a stream of garbage through `on_fatal`."""

    def __init__(self, storage: Storage | None, **kwargs: Any) -> None:
        kwargs.setdefault("connection_pool_size", 1)
        super().__init__(**kwargs)
        self.storage = storage
        self.on_fatal: Callable[[str], None] = lambda reason: None
        self.fatal: str | None = None
        self.last_ok: float | None = None
        self._garbled = 0

    def _fail(self, reason: str) -> tuple[int, bytes]:
        if self.fatal is None:
            self.fatal = reason
            self.on_fatal(reason)
        # An empty batch: the library then neither logs a traceback nor retries hard while the bot stops.
        return 200, _EMPTY

    async def do_request(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        if self.fatal is not None:
            return 200, _EMPTY
        code, payload = await super().do_request(*args, **kwargs)
        if code in _FATAL:
            return self._fail(_FATAL[code])
        if code != 200:
            return code, payload
        try:
            body = json.loads(payload)
            result = body["result"]
            if not isinstance(result, list):
                raise TypeError("result is not a list")
        except (ValueError, TypeError, KeyError):
            self._garbled += 1
            if self._garbled >= GARBLED_LIMIT:
                return self._fail(
                    f"the Bot API answered getUpdates {GARBLED_LIMIT} times with something that is not a list of "
                    "updates (a proxy's page?): check TELEGRAM_BASE_URL"
                )
            # Handed on as a gateway error: the library retries with backoff, without a traceback per try.
            return 502, b'{"ok": false, "error_code": 502, "description": "not a list of updates"}'

        self._garbled = 0
        updates = [u for u in map(parseable, result) if u is not None]
        if updates and self.storage is not None:
            await self.storage.write(self.storage.inbox_add, updates)
        self.last_ok = time.monotonic()
        return code, json.dumps({"ok": True, "result": updates}, ensure_ascii=False).encode()
