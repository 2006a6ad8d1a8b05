"""The getUpdates connection: updates are written to the inbox before they are handed on, so the next getUpdates
(which confirms them to Telegram for good) never confirms one that a crash could lose, and an update the inbox
already had is not handed on twice; fatal answers stop the bot."""

from __future__ import annotations

import functools
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from telegram import Update
from telegram.request import HTTPXRequest, RequestData
from telegram.request._requestparameter import RequestParameter

from bot.services.store import StorageError

if TYPE_CHECKING:
    from bot.services.store import Store

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


@functools.cache
def process_holder() -> str:
    """This process's name on the inbox rows it claims: host, pid and a random tag (a pid is reused after a restart,
    in a container always)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def _with_offset(request_data: RequestData, offset: int) -> RequestData:
    """The same getUpdates request confirming everything below `offset`."""
    # RequestParameter is not exported, but the public RequestData is made of it (the dependency is pinned < 23).
    params = {**request_data.parameters, "offset": offset}
    return RequestData([RequestParameter.from_input(key, value) for key, value in params.items()])


class InboxRequest(HTTPXRequest):
    """HTTPXRequest for getUpdates only: keeps each batch in the inbox before returning it and hands on only the
    updates the inbox did not have, skips unreadable updates, and reports a revoked token, a second instance or a
    stream of garbage through `on_fatal`."""

    def __init__(self, store: Store | None, *, holder: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("connection_pool_size", 1)
        super().__init__(**kwargs)
        self.store = store
        self.holder = holder if holder is not None else process_holder()
        # Everything below this is in the inbox (or was handled): the next getUpdates confirms it even when none of
        # the last batch was handed on (all already kept), which python-telegram-bot alone would ask for again.
        self.kept_below = 0
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
        data = kwargs.get("request_data")
        if isinstance(data, RequestData) and int(data.parameters.get("offset", 0)) < self.kept_below:
            kwargs["request_data"] = _with_offset(data, self.kept_below)
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
        if updates and self.store is not None:
            updates = await self._keep(updates)
        self.last_ok = time.monotonic()
        return code, json.dumps({"ok": True, "result": updates}, ensure_ascii=False).encode()

    async def _keep(self, updates: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The updates of a batch that are new to the inbox, once kept there. A store that fails hands them all on
        unkept: answered now, and lost only if the process dies before they are."""
        assert self.store is not None
        try:
            new = set(await self.store.inbox_add(updates, self.holder))
        except StorageError as exc:
            log.warning("%d updates could not be kept in the inbox (%s); handling them anyway", len(updates), exc)
            return updates
        self.kept_below = max(self.kept_below, max(u["update_id"] for u in updates) + 1)
        if len(new) < len(updates):
            log.info("%d updates were in the inbox already; not handled twice", len(updates) - len(new))
        return [u for u in updates if u["update_id"] in new]
