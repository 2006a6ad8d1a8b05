"""A fake Telegram Bot API server for end-to-end tests on loopback.

The real python-telegram-bot ``Application`` is pointed at it with::

    server = FakeBotApi()
    server.start()
    app = server.application_builder().build()   # token + base_url + base_file_url already set

It serves ``/bot<token>/<method>`` (GET or POST; form-urlencoded, multipart or JSON bodies) and
``/file/bot<token>/<file_path>``, records every call in order, answers with realistic results, and
long-polls ``getUpdates`` (woken at once when a test pushes an update). When the bot has set a
webhook, pushed updates are POSTed to it instead, with the ``X-Telegram-Bot-Api-Secret-Token``
header, like Telegram does.

The server runs its own asyncio loop (Tornado) in a background thread, so it works with whatever
loop the test uses, and test code may call it from any thread. Everything is loopback only.

Proving "no answer" without sleeping
------------------------------------
A bot that stays silent leaves nothing to wait for, and sleeping "long enough" is both slow and
flaky. Instead, push a *marker* update after the update under test, one the bot is known to answer
(by default ``/start`` in a private chat with a dedicated marker user). PTB processes updates one
at a time and in order (``concurrent_updates`` is off by default), so once the marker is answered
every handler for the earlier update has finished. Whatever it did not send by then, it never
sends::

    mark = server.mark()
    server.push_update(server.make.group_message("just chatting"))
    await server.assert_no_call("sendMessage", since=mark)

The bot's own update processor runs chats side by side; tests that use this proof build it with
``Settings(workers=1)``, one update at a time. This proof does not hold otherwise, or if a handler hands work
to a background task (``application.create_task``, ``block=False``) that sends later; wait for
that task explicitly instead.

API at a glance
---------------
``push_update(dict)``, ``make.<builder>(...)`` (private_message, group_message, edited_message,
forwarded_message, photo_message, document_message, sticker_message, voice_message,
callback_query, inline_query, my_chat_member), ``await wait_for_call(method, predicate)``,
``calls(method)``, ``mark()``, ``await assert_no_call(method, since=mark)``,
``fail_next(method, flood(1) | REPLY_NOT_FOUND | BLOCKED_BY_USER | ...)``, ``answer_raw(method, status,
body)``, ``hold(method)`` / ``release(method)`` / ``await wait_for_held(n)``, ``add_file(bytes)``,
``set_chat_member(chat_id, user_id, status)``, ``await wait_for_delivery(update_id)``,
``await wait_for_idle_poll()``; ``started_polling(app)`` / ``started_webhook(app, ...)``.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import logging
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import tornado.httpclient
import tornado.httpserver
import tornado.netutil
import tornado.web

if TYPE_CHECKING:
    from telegram.ext import Application, ApplicationBuilder

__all__ = [
    "BLOCKED_BY_USER",
    "CHAT_NOT_FOUND",
    "KICKED_FROM_GROUP",
    "MAX_DOWNLOAD_SIZE",
    "MESSAGE_NOT_MODIFIED",
    "REPLY_NOT_FOUND",
    "UNAUTHORIZED",
    "ApiError",
    "Call",
    "FakeBotApi",
    "UpdateFactory",
    "UploadedFile",
    "WebhookDelivery",
    "detect_entities",
    "find_free_port",
    "flood",
    "group_migrated",
    "post_update",
    "started_polling",
    "started_webhook",
]

_LOGGER = logging.getLogger(__name__)

DEFAULT_BOT_ID = 7012345678
DEFAULT_USERNAME = "claude_doctor_bot"
#: Telegram caps getFile at 20 MB; bots must cope with "file is too big".
MAX_DOWNLOAD_SIZE = 20 * 1024 * 1024

# Telegram does not send these update types unless allowed_updates asks for them explicitly.
_OPT_IN_UPDATE_TYPES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})

# PTB (RequestParameter.json_value) sends str values raw and everything else JSON-encoded, so
# "123" could be the text "123" or the int 123. Parameters that are always strings stay raw;
# any other value is JSON-decoded when it parses.
_STRING_PARAMS = frozenset(
    {
        "action",
        "business_connection_id",
        "callback_query_id",
        "caption",
        "custom_title",
        "description",
        "emoji",
        "explanation",
        "file_id",
        "first_name",
        "inline_message_id",
        "inline_query_id",
        "ip_address",
        "language_code",
        "last_name",
        "message_effect_id",
        "name",
        "next_offset",
        "parse_mode",
        "query",
        "question",
        "secret_token",
        "short_description",
        "switch_pm_parameter",
        "switch_pm_text",
        "text",
        "title",
        "url",
    }
)

_COMMAND_RE = re.compile(r"(?<![\w/@])/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?")
_MENTION_RE = re.compile(r"(?<![\w/@])@[A-Za-z0-9_]{5,32}")


# --------------------------------------------------------------------------------------------
# Errors and records
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiError:
    """An error answer of the Bot API: ``{"ok": false, "error_code", "description", "parameters"}``."""

    error_code: int
    description: str
    parameters: dict[str, Any] | None = None

    def payload(self) -> dict[str, Any]:
        """The JSON body Telegram sends for this error."""
        body: dict[str, Any] = {"ok": False, "error_code": self.error_code, "description": self.description}
        if self.parameters:
            body["parameters"] = dict(self.parameters)
        return body


def flood(retry_after: int = 1) -> ApiError:
    """A 429 flood-control error; PTB raises ``telegram.error.RetryAfter``."""
    return ApiError(429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after})


def group_migrated(new_chat_id: int) -> ApiError:
    """A 400 for a group upgraded to a supergroup; PTB raises ``telegram.error.ChatMigrated``."""
    return ApiError(
        400,
        "Bad Request: group chat was upgraded to a supergroup chat",
        {"migrate_to_chat_id": new_chat_id},
    )


UNAUTHORIZED = ApiError(401, "Unauthorized")
NOT_FOUND = ApiError(404, "Not Found")
REPLY_NOT_FOUND = ApiError(400, "Bad Request: message to be replied not found")
CHAT_NOT_FOUND = ApiError(400, "Bad Request: chat not found")
BLOCKED_BY_USER = ApiError(403, "Forbidden: bot was blocked by the user")
KICKED_FROM_GROUP = ApiError(403, "Forbidden: bot was kicked from the group chat")
MESSAGE_NOT_MODIFIED = ApiError(
    400,
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message",
)


class _Fail(Exception):
    """Raised inside a method implementation to answer with an API error."""

    def __init__(self, error: ApiError) -> None:
        super().__init__(error.description)
        self.error = error


@dataclass(frozen=True)
class UploadedFile:
    """One multipart file part of a call."""

    filename: str
    content_type: str
    body: bytes


@dataclass(frozen=True)
class Call:
    """One recorded request to the fake API, in arrival order (``index`` is its position)."""

    index: int
    method: str
    params: dict[str, Any]
    files: dict[str, UploadedFile] = field(default_factory=dict)
    result: Any = None
    error: ApiError | None = None
    http_method: str = "POST"

    @property
    def ok(self) -> bool:
        """Whether the fake answered ``ok: true``."""
        return self.error is None

    @property
    def chat_id(self) -> Any:
        """The ``chat_id`` parameter, if any."""
        return self.params.get("chat_id")

    @property
    def text(self) -> Any:
        """The ``text`` parameter, if any."""
        return self.params.get("text")

    def __getitem__(self, key: str) -> Any:
        return self.params[key]

    def get(self, key: str, default: Any = None) -> Any:
        """``params.get``."""
        return self.params.get(key, default)

    def __str__(self) -> str:
        status = "ok" if self.ok else f"error {self.error.error_code}"  # type: ignore[union-attr]
        return f"#{self.index} {self.method}({self.params!r}) -> {status}"


@dataclass(frozen=True)
class WebhookDelivery:
    """One POST of an update from the fake server to the bot's webhook."""

    index: int
    update_id: int
    url: str
    status: int  # 0 when the connection itself failed
    error: str | None = None


@dataclass
class _Waiter:
    kind: str
    match: Callable[[Any], bool]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


@dataclass
class _ScriptedFailure:
    method: str
    error: ApiError
    remaining: int
    predicate: Callable[[dict[str, Any]], bool] | None


def _resolve(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _safe(predicate: Callable[[Any], bool] | None, item: Any) -> bool:
    # A predicate like ``lambda c: c["text"] == ...`` raises KeyError on calls without text;
    # that means "not this one", not "abort the wait".
    if predicate is None:
        return True
    try:
        return bool(predicate(item))
    except Exception:
        return False


def _method_matches(wanted: str | Iterable[str] | None, method: str) -> bool:
    if wanted is None:
        return True
    if isinstance(wanted, str):
        return wanted.lower() == method.lower()
    return method.lower() in {w.lower() for w in wanted}


def _utf16_len(text: str) -> int:
    # Telegram entity offsets and lengths count UTF-16 code units, not code points.
    return len(text.encode("utf-16-le")) // 2


def detect_entities(text: str) -> list[dict[str, Any]]:
    """Entities Telegram would attach: ``bot_command`` (``/fix``, ``/fix@bot``) and ``mention``."""
    found: list[tuple[int, int, str]] = []
    for m in _COMMAND_RE.finditer(text):
        found.append((m.start(), m.end(), "bot_command"))
    for m in _MENTION_RE.finditer(text):
        if not any(s <= m.start() < e for s, e, _ in found):
            found.append((m.start(), m.end(), "mention"))
    found.sort()
    return [{"offset": _utf16_len(text[:s]), "length": _utf16_len(text[s:e]), "type": kind} for s, e, kind in found]


def find_free_port() -> int:
    """An OS-assigned free TCP port on 127.0.0.1 (for a webhook listener that needs it up front)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _update_type(update: dict[str, Any]) -> str | None:
    return next((key for key in update if key != "update_id"), None)


# --------------------------------------------------------------------------------------------
# Update builders
# --------------------------------------------------------------------------------------------


class UpdateFactory:
    """Builds realistic update dicts (without ``update_id``; :meth:`FakeBotApi.push_update` adds it).

    Message ids come from the server's counter so they never collide with the bot's own messages.
    Every builder that takes ``chat``/``user`` accepts dicts from :meth:`user`,
    :meth:`private_chat` and :meth:`group_chat`; by default it uses Alice (id 1001, ``en``) and
    the supergroup ``-1001234567890``.
    """

    DEFAULT_USER_ID = 1001
    MARKER_USER_ID = 999_000_001
    DEFAULT_GROUP_ID = -1001234567890

    def __init__(self, server: FakeBotApi) -> None:
        self._server = server
        self._ids = itertools.count(1)

    # -- people and chats ---------------------------------------------------------------------

    def user(
        self,
        user_id: int = DEFAULT_USER_ID,
        first_name: str = "Alice",
        *,
        username: str | None = "alice",
        last_name: str | None = None,
        language_code: str | None = "en",
        is_bot: bool = False,
        is_premium: bool | None = None,
    ) -> dict[str, Any]:
        """A ``User`` object."""
        user: dict[str, Any] = {"id": user_id, "is_bot": is_bot, "first_name": first_name}
        if last_name:
            user["last_name"] = last_name
        if username:
            user["username"] = username
        if language_code:
            user["language_code"] = language_code
        if is_premium is not None:
            user["is_premium"] = is_premium
        return user

    def marker_user(self) -> dict[str, Any]:
        """The dedicated user the "no answer" marker comes from."""
        return self.user(self.MARKER_USER_ID, "Marker", username="marker_user", language_code="en")

    def private_chat(self, user: dict[str, Any] | None = None) -> dict[str, Any]:
        """The private ``Chat`` with ``user``."""
        user = user or self.user()
        chat: dict[str, Any] = {"id": user["id"], "type": "private", "first_name": user["first_name"]}
        for key in ("last_name", "username"):
            if key in user:
                chat[key] = user[key]
        return chat

    def group_chat(
        self,
        chat_id: int = DEFAULT_GROUP_ID,
        title: str = "Claude Users",
        *,
        chat_type: str = "supergroup",
        is_forum: bool = False,
        username: str | None = None,
    ) -> dict[str, Any]:
        """A group or supergroup ``Chat`` (``chat_type`` "group" needs a small negative id)."""
        chat: dict[str, Any] = {"id": chat_id, "type": chat_type, "title": title}
        if is_forum:
            chat["is_forum"] = True
        if username:
            chat["username"] = username
        return chat

    # -- messages -----------------------------------------------------------------------------

    def _next_message_id(self) -> int:
        return self._server._next_message_id()

    def _message(
        self,
        chat: dict[str, Any],
        user: dict[str, Any] | None,
        *,
        reply_to: dict[str, Any] | None = None,
        message_thread_id: int | None = None,
        **content: Any,
    ) -> dict[str, Any]:
        msg: dict[str, Any] = {"message_id": self._next_message_id()}
        if user is not None:
            msg["from"] = user
        msg["chat"] = chat
        msg["date"] = int(time.time())
        if message_thread_id is not None:
            msg["message_thread_id"] = message_thread_id
            msg["is_topic_message"] = True
            if reply_to is None:
                # In forum topics Telegram sets reply_to_message on *every* message to the topic's
                # creation service message; bots that read "is a reply" naively trip on this.
                reply_to = {
                    "message_id": message_thread_id,
                    "from": user,
                    "chat": chat,
                    "date": msg["date"] - 3600,
                    "message_thread_id": message_thread_id,
                    "forum_topic_created": {"name": "Help", "icon_color": 7322096},
                    "is_topic_message": True,
                }
        if reply_to is not None:
            reply = copy.deepcopy(_as_message(reply_to))
            reply.pop("reply_to_message", None)  # Telegram nests one level only
            msg["reply_to_message"] = reply
        msg.update({k: v for k, v in content.items() if v is not None})
        return msg

    @staticmethod
    def _with_text(text: str) -> dict[str, Any]:
        content: dict[str, Any] = {"text": text}
        entities = detect_entities(text)
        if entities:
            content["entities"] = entities
        return content

    @staticmethod
    def _with_caption(caption: str | None) -> dict[str, Any]:
        if caption is None:
            return {}
        content: dict[str, Any] = {"caption": caption}
        entities = detect_entities(caption)
        if entities:
            content["caption_entities"] = entities
        return content

    def private_message(
        self,
        text: str,
        *,
        user: dict[str, Any] | None = None,
        language_code: str | None = None,
        reply_to: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A text message in the private chat with ``user``; ``language_code`` overrides the user's."""
        user = dict(user or self.user())
        if language_code is not None:
            user["language_code"] = language_code
        msg = self._message(self.private_chat(user), user, reply_to=reply_to, **self._with_text(text))
        return {"message": msg}

    def group_message(
        self,
        text: str,
        *,
        chat: dict[str, Any] | None = None,
        user: dict[str, Any] | None = None,
        reply_to: dict[str, Any] | None = None,
        message_thread_id: int | None = None,
    ) -> dict[str, Any]:
        """A text message in a (super)group; ``message_thread_id`` makes it a forum topic message.

        ``/fix``, ``/fix@<bot>`` and ``@<bot>`` in the text get their entities, as Telegram adds.
        """
        if chat is None:
            chat = self.group_chat(is_forum=message_thread_id is not None)
        msg = self._message(
            chat,
            user or self.user(),
            reply_to=reply_to,
            message_thread_id=message_thread_id,
            **self._with_text(text),
        )
        return {"message": msg}

    def migration(self, old_chat_id: int, new_chat_id: int) -> list[dict[str, Any]]:
        """The two service messages Telegram sends when a group becomes a supergroup: one in the old group
        (``migrate_to_chat_id``), one in the new supergroup (``migrate_from_chat_id``)."""
        old = self.group_chat(old_chat_id, chat_type="group")
        new = self.group_chat(new_chat_id)
        return [
            {"message": self._message(old, self.user(), migrate_to_chat_id=new_chat_id)},
            {"message": self._message(new, self.user(), migrate_from_chat_id=old_chat_id)},
        ]

    def edited_message(self, original: dict[str, Any], text: str) -> dict[str, Any]:
        """The ``edited_message`` update for ``original`` (an update or message) now reading ``text``."""
        msg = copy.deepcopy(_as_message(original))
        msg.pop("entities", None)
        msg.update(self._with_text(text))
        msg["edit_date"] = max(int(time.time()), msg["date"] + 1)
        return {"edited_message": msg}

    def forwarded_message(
        self,
        text: str,
        *,
        origin: str | dict[str, Any] = "user",
        chat: dict[str, Any] | None = None,
        user: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A forwarded text message; ``origin`` is "user", "hidden_user", "chat", "channel" or a dict."""
        user = user or self.user()
        date = int(time.time()) - 600
        if isinstance(origin, dict):
            forward_origin = origin
        elif origin == "user":
            forward_origin = {
                "type": "user",
                "date": date,
                "sender_user": self.user(2002, "Bob", username="bob", language_code=None),
            }
        elif origin == "hidden_user":
            forward_origin = {"type": "hidden_user", "date": date, "sender_user_name": "Hidden Person"}
        elif origin == "chat":
            forward_origin = {"type": "chat", "date": date, "sender_chat": self.group_chat(-1009876543210)}
        elif origin == "channel":
            forward_origin = {
                "type": "channel",
                "date": date,
                "chat": {"id": -1001111111111, "type": "channel", "title": "News", "username": "news"},
                "message_id": 42,
            }
        else:
            raise ValueError(f"unknown forward origin {origin!r}")
        msg = self._message(
            chat or self.private_chat(user), user, forward_origin=forward_origin, **self._with_text(text)
        )
        return {"message": msg}

    def _file_ref(self, file: dict[str, Any] | None, size: int) -> dict[str, Any]:
        if file is not None:
            return {k: file[k] for k in ("file_id", "file_unique_id", "file_size") if k in file}
        n = next(self._ids)
        return {"file_id": f"FAKE-file-{n}", "file_unique_id": f"uniq{n}", "file_size": size}

    def photo_message(
        self,
        caption: str | None = None,
        *,
        file: dict[str, Any] | None = None,
        chat: dict[str, Any] | None = None,
        user: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A photo (three sizes, the largest is ``file`` if given) with an optional caption."""
        user = user or self.user()
        n = next(self._ids)
        sizes = [
            {"file_id": f"FAKE-thumb-{n}-s", "file_unique_id": f"thumb{n}s", "file_size": 1200,
             "width": 90, "height": 67},
            {"file_id": f"FAKE-thumb-{n}-m", "file_unique_id": f"thumb{n}m", "file_size": 15000,
             "width": 320, "height": 240},
            {**self._file_ref(file, 80000), "width": 1280, "height": 960},
        ]  # fmt: skip
        msg = self._message(chat or self.private_chat(user), user, photo=sizes, **self._with_caption(caption))
        return {"message": msg}

    def document_message(
        self,
        file_name: str = "log.txt",
        *,
        caption: str | None = None,
        mime_type: str = "text/plain",
        file: dict[str, Any] | None = None,
        chat: dict[str, Any] | None = None,
        user: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A document; pass ``file=server.add_file(...)`` to make it downloadable."""
        user = user or self.user()
        document = {"file_name": file_name, "mime_type": mime_type, **self._file_ref(file, 2048)}
        msg = self._message(chat or self.private_chat(user), user, document=document, **self._with_caption(caption))
        return {"message": msg}

    def sticker_message(
        self,
        emoji: str = "👍",
        *,
        chat: dict[str, Any] | None = None,
        user: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A regular static sticker."""
        user = user or self.user()
        sticker = {
            **self._file_ref(None, 24000),
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": emoji,
            "set_name": "FakeStickers",
        }
        return {"message": self._message(chat or self.private_chat(user), user, sticker=sticker)}

    def voice_message(
        self,
        duration: int = 3,
        *,
        file: dict[str, Any] | None = None,
        chat: dict[str, Any] | None = None,
        user: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A voice note (OGG/Opus)."""
        user = user or self.user()
        voice = {"duration": duration, "mime_type": "audio/ogg", **self._file_ref(file, 9000)}
        return {"message": self._message(chat or self.private_chat(user), user, voice=voice)}

    def callback_query(
        self, data: str, message: dict[str, Any], *, user: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """A button press on ``message`` (the bot's message, e.g. ``call.result`` of sendMessage)."""
        msg = copy.deepcopy(_as_message(message))
        return {
            "callback_query": {
                "id": str(4_000_000_000_000_000_000 + next(self._ids)),
                "from": user or self.user(),
                "message": msg,
                "chat_instance": str(-7_000_000_000_000_000_000 + abs(msg["chat"]["id"])),
                "data": data,
            }
        }

    def inline_query(
        self,
        query: str,
        *,
        user: dict[str, Any] | None = None,
        offset: str = "",
        chat_type: str | None = "sender",
    ) -> dict[str, Any]:
        """An inline query typed as ``@bot <query>``."""
        inline: dict[str, Any] = {
            "id": str(5_000_000_000_000_000_000 + next(self._ids)),
            "from": user or self.user(),
            "query": query,
            "offset": offset,
        }
        if chat_type:
            inline["chat_type"] = chat_type
        return {"inline_query": inline}

    def my_chat_member(
        self,
        chat: dict[str, Any] | None = None,
        *,
        old_status: str = "left",
        new_status: str = "member",
        user: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The bot's own membership changing in ``chat`` (added: left -> member; kicked: -> kicked)."""
        bot = self._server.bot_user()

        def member(status: str) -> dict[str, Any]:
            body: dict[str, Any] = {"status": status, "user": bot}
            if status == "kicked":
                body["until_date"] = 0
            return body

        return {
            "my_chat_member": {
                "chat": chat or self.group_chat(),
                "from": user or self.user(),
                "date": int(time.time()),
                "old_chat_member": member(old_status),
                "new_chat_member": member(new_status),
            }
        }


def _as_message(obj: dict[str, Any]) -> dict[str, Any]:
    """Accept an update (``{"message": ...}``) or a bare message dict."""
    for key in ("message", "edited_message", "channel_post", "edited_channel_post"):
        if key in obj and isinstance(obj[key], dict) and "message_id" in obj[key]:
            return obj[key]
    return obj


# --------------------------------------------------------------------------------------------
# HTTP handlers
# --------------------------------------------------------------------------------------------


class _BaseHandler(tornado.web.RequestHandler):
    server: FakeBotApi

    def initialize(self, server: FakeBotApi) -> None:
        self.server = server
        self.connection_closed = False

    def on_connection_close(self) -> None:
        # A client that gave up (PTB cancelling its long poll at shutdown) must not keep a
        # getUpdates handler waiting for its full timeout.
        self.connection_closed = True
        self.server._wake_pollers_now()

    def send_json(self, status: int, body: dict[str, Any]) -> None:
        """Answer with a JSON body."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        if exc_info is not None and not isinstance(exc_info[1], tornado.web.HTTPError):
            self.server._internal_error(f"{exc_info[0].__name__}: {exc_info[1]}")
        self.send_json(
            status_code,
            {"ok": False, "error_code": status_code, "description": f"Fake server error {status_code}"},
        )


class _ApiHandler(_BaseHandler):
    async def get(self, token: str, method: str) -> None:
        await self._handle(token, method)

    async def post(self, token: str, method: str) -> None:
        await self._handle(token, method)

    def _params(self) -> tuple[dict[str, Any], dict[str, UploadedFile]]:
        raw: dict[str, Any] = {}
        for key, values in self.request.query_arguments.items():
            raw[key] = values[-1].decode("utf-8")
        content_type = self.request.headers.get("Content-Type", "")
        if content_type.startswith("application/json") and self.request.body:
            body = json.loads(self.request.body)
            if not isinstance(body, dict):
                raise _Fail(ApiError(400, "Bad Request: JSON object expected"))
            params = {k: _decode_value(k, v) if isinstance(v, str) else v for k, v in raw.items()}
            params.update(body)
        else:
            # Tornado already parsed form-urlencoded and multipart bodies into body_arguments.
            for key, values in self.request.body_arguments.items():
                raw[key] = values[-1].decode("utf-8")
            params = {k: _decode_value(k, v) for k, v in raw.items()}
        files = {
            name: UploadedFile(parts[-1].filename, parts[-1].content_type, parts[-1].body)
            for name, parts in self.request.files.items()
        }
        return params, files

    async def _handle(self, token: str, method: str) -> None:
        server = self.server
        http_method = self.request.method or "POST"
        try:
            params, files = self._params()
        except (ValueError, _Fail) as exc:
            error = exc.error if isinstance(exc, _Fail) else ApiError(400, "Bad Request: can't parse body")
            server._record(method, {}, {}, None, error, http_method)
            self.send_json(error.error_code, error.payload())
            return
        if not method:
            self.send_json(404, NOT_FOUND.payload())
            return
        if token != server.token:
            server._record(method, params, files, None, UNAUTHORIZED, http_method)
            self.send_json(401, UNAUTHORIZED.payload())
            return
        raw = server._take_raw(method)
        if raw is not None:
            server._record(method, params, files, None, ApiError(raw[0], "raw answer"), http_method)
            if raw[0] == 0:  # status 0: the connection is reset instead of answered
                assert self.request.connection is not None
                self.request.connection.close()
                return
            self.set_status(raw[0])
            self.finish(raw[1])
            return
        if not await server._pass_hold(method, self):
            return
        if method.lower() == "getupdates":
            result, error = await server._get_updates(params, self)
        else:
            result, error = server._dispatch(method, params, files)
        server._record(method, params, files, result, error, http_method)
        if error is not None:
            self.send_json(error.error_code, error.payload())
        else:
            self.send_json(200, {"ok": True, "result": result})


class _FileHandler(_BaseHandler):
    def get(self, token: str, path: str) -> None:
        if token != self.server.token:
            self.send_json(401, UNAUTHORIZED.payload())
            return
        content = self.server._file_content(path)
        if content is None:
            self.send_json(404, NOT_FOUND.payload())
            return
        self.set_header("Content-Type", "application/octet-stream")
        self.finish(content)


class _NotFoundHandler(_BaseHandler):
    def get(self, *_: Any) -> None:
        self.send_json(404, NOT_FOUND.payload())

    post = get


def _decode_value(key: str, value: str) -> Any:
    if key in _STRING_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------

_API_METHODS: dict[str, Callable[..., Any]] = {}


def _api(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        _API_METHODS[name.lower()] = func
        return func

    return register


class FakeBotApi:
    """A fake Bot API server on 127.0.0.1 (see the module docstring for the moving parts)."""

    def __init__(
        self,
        *,
        token: str | None = None,
        bot_id: int = DEFAULT_BOT_ID,
        username: str = DEFAULT_USERNAME,
        first_name: str = "Claude Doctor",
        can_join_groups: bool = True,
        can_read_all_group_messages: bool = False,
        supports_inline_queries: bool = True,
        marker_text: str = "/start",
    ) -> None:
        self.bot_id = bot_id
        self.token = token or f"{bot_id}:AAFakeTokenForEndToEndTests_0123456789"
        self.username = username
        self.first_name = first_name
        self.can_join_groups = can_join_groups
        self.can_read_all_group_messages = can_read_all_group_messages
        self.supports_inline_queries = supports_inline_queries
        #: What the default "no answer" marker says; the bot must answer it in a private chat.
        self.marker_text = marker_text
        #: Builders for realistic updates: ``server.push_update(server.make.private_message("hi"))``.
        self.make = UpdateFactory(self)
        #: Unexpected exceptions inside the fake; the ``fake_bot_api`` fixture fails the test on any.
        self.internal_errors: list[str] = []

        self._lock = threading.RLock()
        self._calls: list[Call] = []
        self._deliveries: list[WebhookDelivery] = []
        self._idle_polls = 0  # getUpdates requests that found nothing and started to wait
        self._waiters: list[_Waiter] = []
        self._failures: list[_ScriptedFailure] = []
        self._queue: list[dict[str, Any]] = []  # updates waiting for getUpdates
        self._next_update_id = 860_000_001
        self._message_ids = itertools.count(100)
        self._messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._chats: dict[int, dict[str, Any]] = {}
        self._users: dict[int, dict[str, Any]] = {}
        self._members: dict[tuple[int, int], dict[str, Any]] = {}
        self._files: dict[str, dict[str, Any]] = {}  # file_id -> File + "content"
        self._file_counter = itertools.count(1)
        self._commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._texts: dict[tuple[str, str], str] = {}  # (kind, language_code) -> description/name
        self._webhook: dict[str, Any] | None = None
        self._poll_generation = 0
        self._holds: set[str] = set()  # methods whose calls wait until released (see hold())
        self._held = 0  # calls that have started to wait on a hold, ever
        self._raw: list[tuple[str, int, bytes, int]] = []  # (method, status, body, times) scripted raw answers

        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._http_server: tornado.httpserver.HTTPServer | None = None
        self._http_client: tornado.httpclient.AsyncHTTPClient | None = None
        self._wake_event: asyncio.Event | None = None
        self._delivery_queue: asyncio.Queue[dict[str, Any]] | None = None
        self._delivery_task: asyncio.Task[None] | None = None
        self._closing = False
        self.port = 0

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> FakeBotApi:
        """Bind an OS-assigned port on 127.0.0.1 and serve from a background thread."""
        if self._thread is not None or self._closing:
            raise RuntimeError("a FakeBotApi starts once; make a new one")
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                loop.run_until_complete(self._serve_setup())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="FakeBotApi", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise RuntimeError("FakeBotApi failed to start") from failure[0]
        return self

    async def _serve_setup(self) -> None:
        self._wake_event = asyncio.Event()
        self._delivery_queue = asyncio.Queue()
        app = tornado.web.Application(
            [
                (r"/bot([^/]*)/([^/]*)", _ApiHandler, {"server": self}),
                (r"/file/bot([^/]*)/(.+)", _FileHandler, {"server": self}),
                (r".*", _NotFoundHandler, {"server": self}),
            ],
            log_function=lambda _handler: None,  # 4xx answers are intended here, not noise
        )
        sockets = tornado.netutil.bind_sockets(0, address="127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        self._http_server = tornado.httpserver.HTTPServer(app)
        self._http_server.add_sockets(sockets)
        self._http_client = tornado.httpclient.AsyncHTTPClient(force_instance=True)
        self._delivery_task = asyncio.create_task(self._deliver_webhooks())

    def stop(self) -> None:
        """Answer pending long polls at once, close all connections and join the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        with suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._thread = None

    async def _shutdown(self) -> None:
        self._closing = True
        self._wake_pollers_now()
        if self._http_server is not None:
            self._http_server.stop()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._http_server.close_all_connections(), 5)
        if self._delivery_task is not None:
            self._delivery_task.cancel()
            with suppress(asyncio.CancelledError):
                await self._delivery_task
        if self._http_client is not None:
            self._http_client.close()

    def __enter__(self) -> FakeBotApi:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- addresses and PTB wiring -------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """For ``ApplicationBuilder().base_url(...)`` (PTB appends the token)."""
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        """For ``ApplicationBuilder().base_file_url(...)`` (PTB appends the token)."""
        return f"http://127.0.0.1:{self.port}/file/bot"

    def application_builder(self) -> ApplicationBuilder:
        """A PTB ``ApplicationBuilder`` with token, base_url and base_file_url pointing here."""
        from telegram.ext import ApplicationBuilder

        return ApplicationBuilder().token(self.token).base_url(self.base_url).base_file_url(self.base_file_url)

    def bot_user(self) -> dict[str, Any]:
        """The bot's ``User`` object as getMe returns it."""
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.first_name,
            "username": self.username,
            "can_join_groups": self.can_join_groups,
            "can_read_all_group_messages": self.can_read_all_group_messages,
            "supports_inline_queries": self.supports_inline_queries,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    # -- test-side API: updates ---------------------------------------------------------------

    def push_update(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue an update for getUpdates, or POST it to the webhook if one is set.

        Adds ``update_id`` when missing and returns the (copied) update as the bot will see it.
        """
        update = copy.deepcopy(update)
        with self._lock:
            update.setdefault("update_id", self._next_update_id)
            # Update ids only grow, or an offset the bot already sent would swallow the next one.
            self._next_update_id = max(self._next_update_id, update["update_id"] + 1)
            self._remember_update(update)
            via_webhook = self._webhook is not None
            if not via_webhook:
                self._queue.append(update)
        if via_webhook:
            self._call_in_loop(self._enqueue_delivery, update)
        else:
            self._wake_pollers()
        return copy.deepcopy(update)

    def pending_updates(self) -> list[dict[str, Any]]:
        """Updates not yet confirmed by the bot (getUpdates with a higher offset)."""
        with self._lock:
            return copy.deepcopy(self._queue)

    @property
    def webhook(self) -> dict[str, Any] | None:
        """The parameters of the last setWebhook (url, secret_token, ...), or None."""
        with self._lock:
            return copy.deepcopy(self._webhook)

    def deliveries(self) -> list[WebhookDelivery]:
        """All webhook POSTs made so far, in order."""
        with self._lock:
            return list(self._deliveries)

    async def wait_for_delivery(
        self,
        update_id: int | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109 - a deadline for the wait, like asyncio.wait_for
    ) -> WebhookDelivery:
        """Wait until an update (any, or ``update_id``) has been POSTed to the webhook."""
        return await self._wait_for(
            "delivery",
            lambda d: update_id is None or d.update_id == update_id,
            timeout,
            lambda: f"no webhook delivery of update {update_id}; deliveries: {self.deliveries()}",
        )

    async def wait_for_idle_poll(
        self,
        since: int = 0,
        timeout: float = 5.0,  # noqa: ASYNC109 - a deadline for the wait, like asyncio.wait_for
    ) -> int:
        """Wait until a getUpdates finds no update and starts long-polling; returns its number.

        getUpdates calls are recorded when they *return*, so :meth:`wait_for_call` cannot see a
        poll in progress; this can. Pass ``since=`` a previous result + 1 to wait for a later one.
        """
        return await self._wait_for(
            "idle", lambda n: n >= since, timeout, lambda: f"no idle getUpdates #{since} or later"
        )

    # -- test-side API: scripting -------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        error: ApiError,
        *,
        times: int = 1,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        """Make the next ``times`` calls of ``method`` (whose params match ``predicate``) fail."""
        with self._lock:
            self._failures.append(_ScriptedFailure(method.lower(), error, times, predicate))

    def hold(self, method: str) -> None:
        """Make calls of ``method`` wait (unanswered, unrecorded) until :meth:`release`; a held call whose
        client goes away (a killed bot) is dropped, as if it never reached Telegram."""
        with self._lock:
            self._holds.add(method.lower())

    def release(self, method: str) -> None:
        """Let held and later calls of ``method`` through."""
        with self._lock:
            self._holds.discard(method.lower())
        self._wake_pollers()

    async def wait_for_held(
        self,
        count: int,
        timeout: float = 10.0,  # noqa: ASYNC109 - a deadline for the wait, like asyncio.wait_for
    ) -> int:
        """Wait until ``count`` calls in all have started waiting on a hold."""
        return await self._wait_for("held", lambda n: n >= count - 1, timeout, lambda: f"fewer than {count} held")

    def answer_raw(self, method: str, status: int, body: bytes, *, times: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with this status and raw body (an HTML error page, a
        truncated JSON), as a broken proxy in front of the Bot API would; status 0 resets the connection."""
        with self._lock:
            self._raw.append((method.lower(), status, body, times))

    def _take_raw(self, method: str) -> tuple[int, bytes] | None:
        with self._lock:
            for n, (name, status, body, times) in enumerate(self._raw):
                if name == method.lower():
                    if times <= 1:
                        del self._raw[n]
                    else:
                        self._raw[n] = (name, status, body, times - 1)
                    return status, body
        return None

    async def _pass_hold(self, method: str, handler: _BaseHandler) -> bool:
        """Wait while ``method`` is held; False when the client went away meanwhile."""
        with self._lock:
            if method.lower() not in self._holds:
                return True
            self._held += 1
            self._notify_waiters("held", self._held - 1)
        while True:
            with self._lock:
                if method.lower() not in self._holds:
                    return not handler.connection_closed
            if handler.connection_closed or self._closing:
                return False
            assert self._wake_event is not None
            await self._wake_event.wait()

    def add_file(
        self,
        content: bytes,
        *,
        file_path: str | None = None,
        file_id: str | None = None,
        file_size: int | None = None,
    ) -> dict[str, Any]:
        """Register downloadable bytes; returns the ``File`` dict (pass it to the media builders).

        ``file_size`` may claim a larger size than ``content`` to test the 20 MB getFile limit.
        """
        n = next(self._file_counter)
        file_id = file_id or f"FAKE-upload-{n}"
        entry = {
            "file_id": file_id,
            "file_unique_id": f"AgAD{n:06d}",
            "file_size": len(content) if file_size is None else file_size,
            "file_path": file_path or f"documents/file_{n}",
            "content": bytes(content),
        }
        with self._lock:
            self._files[file_id] = entry
        return {k: v for k, v in entry.items() if k != "content"}

    def add_chat(self, chat: dict[str, Any]) -> None:
        """Make a chat known to getChat/sendMessage (chats in pushed updates are known already)."""
        with self._lock:
            self._chats[chat["id"]] = copy.deepcopy(chat)

    def set_chat_member(
        self,
        chat_id: int,
        user_id: int,
        status: str = "member",
        *,
        user: dict[str, Any] | None = None,
        **fields: Any,
    ) -> None:
        """Set what getChatMember answers: status creator/administrator/member/restricted/left/kicked.

        Use ``user_id=server.bot_id`` for the bot's own rights. ``fields`` override the defaults.
        """
        with self._lock:
            if user is not None:
                self._users[user["id"]] = copy.deepcopy(user)
            self._members[(chat_id, user_id)] = {"status": status, **fields}

    # -- test-side API: calls -----------------------------------------------------------------

    def mark(self) -> int:
        """The index the next recorded call will get; pass as ``since=`` to ignore older calls."""
        with self._lock:
            return len(self._calls)

    def calls(
        self,
        method: str | Iterable[str] | None = None,
        predicate: Callable[[Call], bool] | None = None,
        *,
        since: int = 0,
    ) -> list[Call]:
        """Recorded calls (optionally of ``method``), oldest first."""
        with self._lock:
            snapshot = self._calls[since:]
        return [c for c in snapshot if _method_matches(method, c.method) and _safe(predicate, c)]

    def sent_texts(self, chat_id: int | str | None = None, *, since: int = 0) -> list[str]:
        """Texts of successful sendMessage calls (optionally to ``chat_id``)."""
        return [
            c.text for c in self.calls("sendMessage", since=since) if c.ok and (chat_id is None or c.chat_id == chat_id)
        ]

    async def wait_for_call(
        self,
        method: str | Iterable[str] | None,
        predicate: Callable[[Call], bool] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109 - a deadline for the wait, like asyncio.wait_for
        *,
        since: int = 0,
    ) -> Call:
        """Return the first call of ``method`` (None: any) matching ``predicate``, waiting for it.

        Returns at once if it was already recorded; otherwise wakes the moment it is recorded.
        A predicate that raises (e.g. KeyError on a call without that parameter) counts as no
        match. Raises AssertionError after ``timeout`` seconds, listing the calls seen.
        """

        def match(call: Call) -> bool:
            return call.index >= since and _method_matches(method, call.method) and _safe(predicate, call)

        return await self._wait_for("call", match, timeout, lambda: self._describe_miss(method, since))

    async def assert_no_call(
        self,
        method: str | Iterable[str] | None = "sendMessage",
        predicate: Callable[[Call], bool] | None = None,
        *,
        since: int = 0,
        marker: dict[str, Any] | None = None,
        marker_answered: Callable[[Call], bool] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109 - a deadline for the wait, like asyncio.wait_for
    ) -> None:
        """Prove the bot made no ``method`` call (matching ``predicate``) since ``since``.

        Pushes ``marker`` (default: ``marker_text`` from a dedicated private user), waits until the
        bot answers it (default: any call whose chat_id is the marker's chat), then checks the calls
        made before that answer. See the module docstring for why this is deterministic.
        """
        marker = (
            marker if marker is not None else self.make.private_message(self.marker_text, user=self.make.marker_user())
        )
        marker_chat = _as_message(marker).get("chat", {}).get("id")
        answered = marker_answered or (lambda c: marker_chat is not None and c.chat_id == marker_chat)
        before_marker = self.mark()
        self.push_update(marker)
        reply = await self.wait_for_call(None, answered, timeout, since=before_marker)
        offending = [
            c
            for c in self.calls(method, predicate, since=since)
            if c.index < reply.index and (marker_chat is None or c.chat_id != marker_chat)
        ]
        if offending:
            raise AssertionError("expected no such call, got:\n" + "\n".join(map(str, offending)))

    # -- internals: waiting -------------------------------------------------------------------

    async def _wait_for(
        self,
        kind: str,
        match: Callable[[Any], bool],
        timeout: float,  # noqa: ASYNC109 - a deadline for the wait, like asyncio.wait_for
        describe: Callable[[], str],
    ) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        with self._lock:
            items: Iterable[Any] = {
                "call": self._calls,
                "delivery": self._deliveries,
                "idle": range(self._idle_polls),
                "held": range(self._held),
            }[kind]
            for item in items:
                if match(item):
                    return item
            waiter = _Waiter(kind, match, loop, future)
            self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise AssertionError(f"timed out after {timeout}s: {describe()}") from None
        finally:
            with self._lock, suppress(ValueError):
                self._waiters.remove(waiter)

    def _notify_waiters(self, kind: str, item: Any) -> None:
        # Called with the lock held, on the server thread; waiters live on the tests' loops.
        for waiter in list(self._waiters):
            if waiter.kind == kind and not waiter.future.done() and waiter.match(item):
                self._waiters.remove(waiter)
                with suppress(RuntimeError):  # the waiting loop may be closed already
                    waiter.loop.call_soon_threadsafe(_resolve, waiter.future, item)

    def _describe_miss(self, method: str | Iterable[str] | None, since: int) -> str:
        seen = [str(c) for c in self.calls(since=since) if c.method.lower() != "getupdates"]
        return f"no matching {method} call; calls since #{since}:\n  " + "\n  ".join(seen[-20:] or ["(none)"])

    def _record(
        self,
        method: str,
        params: dict[str, Any],
        files: dict[str, UploadedFile],
        result: Any,
        error: ApiError | None,
        http_method: str,
    ) -> Call:
        name = _CANONICAL.get(method.lower(), method)
        with self._lock:
            call = Call(len(self._calls), name, params, files, copy.deepcopy(result), error, http_method)
            self._calls.append(call)
            self._notify_waiters("call", call)
        return call

    def _internal_error(self, description: str) -> None:
        _LOGGER.error("FakeBotApi internal error: %s", description)
        with self._lock:
            self.internal_errors.append(description)

    # -- internals: loop plumbing -------------------------------------------------------------

    def _call_in_loop(self, func: Callable[..., Any], *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            func(*args)
        else:
            with suppress(RuntimeError):
                loop.call_soon_threadsafe(func, *args)

    def _wake_pollers(self) -> None:
        self._call_in_loop(self._wake_pollers_now)

    def _wake_pollers_now(self) -> None:
        # Each waiting getUpdates re-checks its conditions, then waits on the fresh event.
        event = self._wake_event
        self._wake_event = asyncio.Event()
        if event is not None:
            event.set()

    def _enqueue_delivery(self, update: dict[str, Any]) -> None:
        if self._delivery_queue is not None:
            self._delivery_queue.put_nowait(update)

    async def _deliver_webhooks(self) -> None:
        # Telegram delivers webhook updates one at a time, in order.
        assert self._delivery_queue is not None
        while True:
            update = await self._delivery_queue.get()
            with self._lock:
                hook = copy.deepcopy(self._webhook)
                if hook is None:
                    # The webhook was deleted meanwhile: the update waits for getUpdates instead.
                    self._queue.append(update)
            if hook is None:
                self._wake_pollers_now()
                continue
            allowed = hook.get("allowed_updates")
            kind = _update_type(update)
            if (kind not in allowed) if allowed else (kind in _OPT_IN_UPDATE_TYPES):
                continue  # Telegram never sends update types the webhook did not ask for
            headers = {"Content-Type": "application/json"}
            if hook.get("secret_token"):
                headers["X-Telegram-Bot-Api-Secret-Token"] = hook["secret_token"]
            status, error = 0, None
            try:
                assert self._http_client is not None
                response = await self._http_client.fetch(
                    hook["url"],
                    method="POST",
                    headers=headers,
                    body=json.dumps(update),
                    request_timeout=5,
                    raise_error=False,
                )
                status = response.code
                if response.error is not None and status == 599:
                    status, error = 0, str(response.error)
            except Exception as exc:  # connection refused etc.: recorded for the test to inspect
                error = f"{type(exc).__name__}: {exc}"
            with self._lock:
                delivery = WebhookDelivery(len(self._deliveries), update["update_id"], hook["url"], status, error)
                self._deliveries.append(delivery)
                self._notify_waiters("delivery", delivery)

    # -- internals: state ---------------------------------------------------------------------

    def _next_message_id(self) -> int:
        with self._lock:
            return next(self._message_ids)

    def _remember_message(self, msg: dict[str, Any]) -> None:
        chat = msg.get("chat")
        if not isinstance(chat, dict) or "message_id" not in msg:
            return
        self._chats.setdefault(chat["id"], copy.deepcopy(chat))
        if isinstance(msg.get("from"), dict):
            self._users.setdefault(msg["from"]["id"], copy.deepcopy(msg["from"]))
        self._messages[(chat["id"], msg["message_id"])] = copy.deepcopy(msg)
        reply = msg.get("reply_to_message")
        if isinstance(reply, dict):
            self._messages.setdefault((chat["id"], reply["message_id"]), copy.deepcopy(reply))

    def _remember_update(self, update: dict[str, Any]) -> None:
        for key in ("message", "edited_message", "channel_post", "edited_channel_post"):
            if isinstance(update.get(key), dict):
                self._remember_message(update[key])
        for key in ("callback_query", "inline_query", "my_chat_member", "chat_member"):
            body = update.get(key)
            if not isinstance(body, dict):
                continue
            if isinstance(body.get("from"), dict):
                self._users.setdefault(body["from"]["id"], copy.deepcopy(body["from"]))
            if isinstance(body.get("message"), dict):
                self._remember_message(body["message"])
            if isinstance(body.get("chat"), dict):
                self._chats.setdefault(body["chat"]["id"], copy.deepcopy(body["chat"]))

    def _resolve_chat(self, chat_id: Any) -> dict[str, Any]:
        if isinstance(chat_id, str) and chat_id.startswith("@"):
            for chat in self._chats.values():
                if chat.get("username", "").lower() == chat_id[1:].lower():
                    return chat
            raise _Fail(CHAT_NOT_FOUND)
        if not isinstance(chat_id, int):
            raise _Fail(CHAT_NOT_FOUND)
        if chat_id in self._chats:
            return self._chats[chat_id]
        # Lenient on purpose: bots may message an operator chat the test never pushed an update from.
        if chat_id > 0:
            chat = {"id": chat_id, "type": "private", "first_name": f"User{chat_id}"}
        elif str(chat_id).startswith("-100"):
            chat = {"id": chat_id, "type": "supergroup", "title": f"Chat {chat_id}"}
        else:
            chat = {"id": chat_id, "type": "group", "title": f"Chat {chat_id}"}
        self._chats[chat_id] = chat
        return chat

    def _resolve_user(self, user_id: int) -> dict[str, Any]:
        if user_id == self.bot_id:
            return {"id": self.bot_id, "is_bot": True, "first_name": self.first_name, "username": self.username}
        return copy.deepcopy(
            self._users.get(user_id) or {"id": user_id, "is_bot": False, "first_name": f"User{user_id}"}
        )

    def _known_message(self, chat_id: int, message_id: Any, missing: ApiError) -> dict[str, Any]:
        msg = self._messages.get((chat_id, message_id))
        if msg is None:
            raise _Fail(missing)
        return msg

    def _file_content(self, path: str) -> bytes | None:
        with self._lock:
            for entry in self._files.values():
                if entry["file_path"] == path:
                    return bytes(entry["content"])
        return None

    def _take_failure(self, method: str, params: dict[str, Any]) -> ApiError | None:
        for failure in self._failures:
            if failure.method == method.lower() and _safe(failure.predicate, params):
                failure.remaining -= 1
                if failure.remaining <= 0:
                    self._failures.remove(failure)
                return failure.error
        return None

    def _dispatch(
        self, method: str, params: dict[str, Any], files: dict[str, UploadedFile]
    ) -> tuple[Any, ApiError | None]:
        with self._lock:
            error = self._take_failure(method, params)
            if error is not None:
                return None, error
            impl = _API_METHODS.get(method.lower())
            if impl is None:
                return True, None  # unknown methods: recorded, and "it worked"
            try:
                return impl(self, params, files), None
            except _Fail as fail:
                return None, fail.error
            except (KeyError, TypeError, ValueError) as exc:
                # Missing/ill-typed parameters: Telegram says 400, and so does the fake.
                return None, ApiError(400, f"Bad Request: fake could not handle {method}: {exc!r}")

    async def _get_updates(self, params: dict[str, Any], handler: _BaseHandler) -> tuple[Any, ApiError | None]:
        with self._lock:
            error = self._take_failure("getUpdates", params)
            if error is not None:
                return None, error
            if self._webhook is not None:
                return None, ApiError(
                    409,
                    "Conflict: can't use getUpdates method while webhook is active; "
                    "use deleteWebhook to delete the webhook first",
                )
            self._poll_generation += 1
            generation = self._poll_generation
        # Terminate an older poll still waiting, as Telegram does with two bot instances.
        self._wake_pollers_now()
        offset = params.get("offset")
        limit = max(1, min(int(params.get("limit") or 100), 100))
        timeout = max(0.0, float(params.get("timeout") or 0))
        allowed = params.get("allowed_updates")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            with self._lock:
                if generation != self._poll_generation:
                    return None, ApiError(
                        409,
                        "Conflict: terminated by other getUpdates request; "
                        "make sure that only one bot instance is running",
                    )
                batch = self._select_updates(offset, limit, allowed)
            remaining = deadline - loop.time()
            if batch or remaining <= 0 or self._closing or handler.connection_closed:
                return batch, None
            with self._lock:
                self._idle_polls += 1
                self._notify_waiters("idle", self._idle_polls - 1)
            assert self._wake_event is not None
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake_event.wait(), remaining)

    def _select_updates(self, offset: Any, limit: int, allowed: Any) -> list[dict[str, Any]]:
        if isinstance(offset, int):
            # An offset confirms (forgets) every update below it, like Telegram; a negative one
            # keeps only the last -offset updates.
            self._queue = self._queue[offset:] if offset < 0 else [u for u in self._queue if u["update_id"] >= offset]
        if allowed:
            types = set(allowed)
            self._queue = [u for u in self._queue if _update_type(u) in types]
        else:
            self._queue = [u for u in self._queue if _update_type(u) not in _OPT_IN_UPDATE_TYPES]
        return copy.deepcopy(self._queue[:limit])

    # -- Bot API method implementations (called with the lock held) ---------------------------

    def _message_result(self, chat: dict[str, Any], params: dict[str, Any], **content: Any) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "from": self._resolve_user(self.bot_id),
            "chat": copy.deepcopy(chat),
            "date": int(time.time()),
        }
        thread_id = params.get("message_thread_id")
        if thread_id is not None:
            msg["message_thread_id"] = thread_id
            if chat.get("is_forum"):
                msg["is_topic_message"] = True
        reply_parameters = params.get("reply_parameters")
        if isinstance(reply_parameters, dict) and "message_id" in reply_parameters:
            reply_chat_id = reply_parameters.get("chat_id", chat["id"])
            reply_chat = self._resolve_chat(reply_chat_id) if reply_chat_id != chat["id"] else chat
            replied = self._messages.get((reply_chat["id"], reply_parameters["message_id"]))
            if replied is not None:
                reply = copy.deepcopy(replied)
                reply.pop("reply_to_message", None)
                if reply_chat["id"] == chat["id"]:
                    msg["reply_to_message"] = reply
                else:
                    msg["external_reply"] = {"origin": {"type": "user", "date": reply["date"]}, "chat": reply_chat}
            elif not reply_parameters.get("allow_sending_without_reply"):
                raise _Fail(REPLY_NOT_FOUND)
        msg.update({k: v for k, v in content.items() if v is not None})
        markup = params.get("reply_markup")
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            msg["reply_markup"] = markup  # Telegram echoes inline keyboards only
        self._remember_message(msg)
        return msg

    @_api("getMe")
    def _get_me(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        return self.bot_user()

    @_api("logOut")
    def _log_out(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        return True

    @_api("close")
    def _close(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        return True

    @_api("setWebhook")
    def _set_webhook(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        url = params.get("url") or ""
        if not url:
            return self._delete_webhook(params, files)
        self._webhook = {
            "url": url,
            "secret_token": params.get("secret_token"),
            "allowed_updates": params.get("allowed_updates"),
            "max_connections": params.get("max_connections", 40),
            "ip_address": params.get("ip_address"),
        }
        pending, self._queue = self._queue, []
        if not params.get("drop_pending_updates"):
            for update in pending:  # Telegram hands pending updates to the new webhook
                self._call_in_loop(self._enqueue_delivery, update)
        return True

    @_api("deleteWebhook")
    def _delete_webhook(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        self._webhook = None
        if params.get("drop_pending_updates"):
            self._queue = []
        return True

    @_api("getWebhookInfo")
    def _get_webhook_info(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        hook = self._webhook
        info: dict[str, Any] = {
            "url": hook["url"] if hook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._queue),
        }
        if hook:
            info["max_connections"] = hook["max_connections"]
            info["ip_address"] = "127.0.0.1"
            if hook.get("allowed_updates"):
                info["allowed_updates"] = hook["allowed_updates"]
        return info

    @staticmethod
    def _command_key(params: dict[str, Any]) -> tuple[str, str]:
        scope = params.get("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), params.get("language_code") or ""

    @_api("setMyCommands")
    def _set_my_commands(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        commands = params["commands"]
        if not isinstance(commands, list) or len(commands) > 100:
            raise _Fail(ApiError(400, "Bad Request: too many commands"))
        for command in commands:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", str(command.get("command", ""))):
                raise _Fail(ApiError(400, "Bad Request: BOT_COMMAND_INVALID"))
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise _Fail(ApiError(400, "Bad Request: command description is empty"))
        self._commands[self._command_key(params)] = commands
        return True

    @_api("deleteMyCommands")
    def _delete_my_commands(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        self._commands.pop(self._command_key(params), None)
        return True

    @_api("getMyCommands")
    def _get_my_commands(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        return copy.deepcopy(self._commands.get(self._command_key(params), []))

    def _set_text(self, kind: str, params: dict[str, Any]) -> Any:
        key = (kind, params.get("language_code") or "")
        if params.get(kind):
            self._texts[key] = params[kind]
        else:
            self._texts.pop(key, None)
        return True

    def _get_text(self, kind: str, params: dict[str, Any]) -> Any:
        return {kind: self._texts.get((kind, params.get("language_code") or ""), "")}

    @_api("setMyDescription")
    def _set_my_description(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        return self._set_text("description", params)

    @_api("getMyDescription")
    def _get_my_description(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        return self._get_text("description", params)

    @_api("setMyShortDescription")
    def _set_my_short_description(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        return self._set_text("short_description", params)

    @_api("getMyShortDescription")
    def _get_my_short_description(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        return self._get_text("short_description", params)

    @_api("setMyName")
    def _set_my_name(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        return self._set_text("name", params)

    @_api("getMyName")
    def _get_my_name(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        name = self._get_text("name", params)
        return name if name["name"] else {"name": self.first_name}

    @_api("sendMessage")
    def _send_message(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        chat = self._resolve_chat(params["chat_id"])
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise _Fail(ApiError(400, "Bad Request: message text is empty"))
        if _utf16_len(text) > 4096:
            raise _Fail(ApiError(400, "Bad Request: message is too long"))
        return self._message_result(chat, params, text=text, entities=params.get("entities"))

    @_api("copyMessage")
    def _copy_message(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        self._resolve_chat(params["chat_id"])
        return {"message_id": next(self._message_ids)}

    def _send_media(self, kind: str, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        chat = self._resolve_chat(params["chat_id"])
        value = params.get(kind)
        upload: UploadedFile | None = None
        if isinstance(value, str) and value.startswith("attach://"):
            upload = files.get(value[len("attach://") :])
        elif kind in files:
            upload = files[kind]
        if upload is not None:
            ref = self.add_file(upload.body, file_path=f"{kind}s/{upload.filename or 'file'}")
        elif isinstance(value, str) and value in self._files:
            ref = {k: v for k, v in self._files[value].items() if k != "content"}
        else:
            n = next(self._file_counter)
            ref = {"file_id": f"FAKE-sent-{n}", "file_unique_id": f"sent{n}", "file_size": 1000}
        ref.pop("file_path", None)
        media: Any
        if kind == "photo":
            media = [{**ref, "width": 1280, "height": 960}]
        elif kind == "document":
            media = {**ref, "file_name": upload.filename if upload else "file", "mime_type": "application/octet-stream"}
        elif kind == "sticker":
            media = {**ref, "type": "regular", "width": 512, "height": 512, "is_animated": False, "is_video": False}
        else:
            media = {**ref, "duration": 1}
        content: dict[str, Any] = {kind: media, "caption": params.get("caption")}
        return self._message_result(chat, params, **content)

    @_api("sendPhoto")
    def _send_photo(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        return self._send_media("photo", params, files)

    @_api("sendDocument")
    def _send_document(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        return self._send_media("document", params, files)

    @_api("sendSticker")
    def _send_sticker(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        return self._send_media("sticker", params, files)

    @_api("sendVoice")
    def _send_voice(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        return self._send_media("voice", params, files)

    def _edit_target(self, params: dict[str, Any]) -> dict[str, Any] | None:
        if params.get("inline_message_id"):
            return None
        chat = self._resolve_chat(params["chat_id"])
        msg = self._known_message(
            chat["id"], params["message_id"], ApiError(400, "Bad Request: message to edit not found")
        )
        if msg.get("from", {}).get("id") != self.bot_id:
            raise _Fail(ApiError(400, "Bad Request: message can't be edited"))
        return msg

    def _apply_edit(self, msg: dict[str, Any], changes: dict[str, Any], markup: Any) -> dict[str, Any]:
        new_markup = markup if isinstance(markup, dict) and "inline_keyboard" in markup else None
        unchanged = all(msg.get(k) == v for k, v in changes.items() if v is not None)
        if unchanged and msg.get("reply_markup") == new_markup:
            raise _Fail(MESSAGE_NOT_MODIFIED)
        for key, value in changes.items():
            if value is None:
                msg.pop(key, None)
            else:
                msg[key] = value
        if new_markup is None:
            msg.pop("reply_markup", None)
        else:
            msg["reply_markup"] = new_markup
        msg["edit_date"] = int(time.time())
        return copy.deepcopy(msg)

    @_api("editMessageText")
    def _edit_message_text(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        msg = self._edit_target(params)
        if msg is None:
            return True
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise _Fail(ApiError(400, "Bad Request: message text is empty"))
        return self._apply_edit(msg, {"text": text, "entities": params.get("entities")}, params.get("reply_markup"))

    @_api("editMessageCaption")
    def _edit_message_caption(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        msg = self._edit_target(params)
        if msg is None:
            return True
        return self._apply_edit(
            msg,
            {"caption": params.get("caption"), "caption_entities": params.get("caption_entities")},
            params.get("reply_markup"),
        )

    @_api("editMessageReplyMarkup")
    def _edit_message_reply_markup(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        msg = self._edit_target(params)
        if msg is None:
            return True
        return self._apply_edit(msg, {}, params.get("reply_markup"))

    @_api("deleteMessage")
    def _delete_message(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        chat = self._resolve_chat(params["chat_id"])
        key = (chat["id"], params["message_id"])
        if key not in self._messages:
            raise _Fail(ApiError(400, "Bad Request: message to delete not found"))
        del self._messages[key]
        return True

    @_api("answerCallbackQuery")
    def _answer_callback_query(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        if not params.get("callback_query_id"):
            raise _Fail(
                ApiError(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
            )
        return True

    @_api("answerInlineQuery")
    def _answer_inline_query(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        results = params.get("results")
        if not isinstance(results, list) or len(results) > 50:
            raise _Fail(ApiError(400, "Bad Request: RESULTS_TOO_MUCH"))
        return True

    @_api("sendChatAction")
    def _send_chat_action(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        self._resolve_chat(params["chat_id"])
        return True

    @_api("getChat")
    def _get_chat(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        chat = copy.deepcopy(self._resolve_chat(params["chat_id"]))
        # ChatFullInfo requires these in PTB 22.
        chat.setdefault("accent_color_id", 0)
        chat.setdefault("max_reaction_count", 11)
        chat.setdefault(
            "accepted_gift_types",
            {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        )
        return chat

    def _member(self, chat_id: int, user_id: int) -> dict[str, Any]:
        configured = self._members.get((chat_id, user_id), {"status": "member"})
        status = configured["status"]
        body: dict[str, Any] = {"status": status, "user": self._resolve_user(user_id)}
        if status == "creator":
            body["is_anonymous"] = False
        elif status == "administrator":
            body.update(
                can_be_edited=False, is_anonymous=False, can_manage_chat=True, can_delete_messages=True,
                can_manage_video_chats=True, can_restrict_members=True, can_promote_members=False,
                can_change_info=True, can_invite_users=True, can_post_stories=False,
                can_edit_stories=False, can_delete_stories=False, can_pin_messages=True,
                can_manage_topics=True,
            )  # fmt: skip
        elif status == "restricted":
            body.update(
                is_member=True, can_change_info=False, can_invite_users=False, can_pin_messages=False,
                can_send_messages=False, can_send_polls=False, can_send_other_messages=False,
                can_add_web_page_previews=False, can_manage_topics=False, until_date=0,
                can_send_audios=False, can_send_documents=False, can_send_photos=False,
                can_send_videos=False, can_send_video_notes=False, can_send_voice_notes=False,
                can_edit_tag=False, can_react_to_messages=False,
            )  # fmt: skip
        elif status == "kicked":
            body["until_date"] = 0
        body.update({k: v for k, v in configured.items() if k != "status"})
        return body

    @_api("getChatMember")
    def _get_chat_member(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        chat = self._resolve_chat(params["chat_id"])
        return self._member(chat["id"], int(params["user_id"]))

    @_api("getChatAdministrators")
    def _get_chat_administrators(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        chat = self._resolve_chat(params["chat_id"])
        if chat["type"] == "private":
            raise _Fail(ApiError(400, "Bad Request: there are no administrators in the private chat"))
        return [
            self._member(chat_id, user_id)
            for (chat_id, user_id), member in self._members.items()
            if chat_id == chat["id"] and member["status"] in ("creator", "administrator")
        ]

    @_api("getChatMemberCount")
    def _get_chat_member_count(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        chat = self._resolve_chat(params["chat_id"])
        return max(2, sum(1 for chat_id, _ in self._members if chat_id == chat["id"]))

    @_api("leaveChat")
    def _leave_chat(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        chat = self._resolve_chat(params["chat_id"])
        self._members[(chat["id"], self.bot_id)] = {"status": "left"}
        return True

    @_api("getFile")
    def _get_file(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        entry = self._files.get(params.get("file_id", ""))
        if entry is None:
            raise _Fail(ApiError(400, "Bad Request: invalid file_id"))
        if entry["file_size"] > MAX_DOWNLOAD_SIZE:
            raise _Fail(ApiError(400, "Bad Request: file is too big"))
        return {k: v for k, v in entry.items() if k != "content"}


# The Bot API is case-insensitive about method names; records use the documented spelling.
_CANONICAL = {
    name.lower(): name
    for name in [
        "getMe",
        "logOut",
        "close",
        "setWebhook",
        "deleteWebhook",
        "getWebhookInfo",
        "setMyCommands",
        "deleteMyCommands",
        "getMyCommands",
        "setMyDescription",
        "getMyDescription",
        "setMyShortDescription",
        "getMyShortDescription",
        "setMyName",
        "getMyName",
        "sendMessage",
        "copyMessage",
        "sendPhoto",
        "sendDocument",
        "sendSticker",
        "sendVoice",
        "editMessageText",
        "editMessageCaption",
        "editMessageReplyMarkup",
        "deleteMessage",
        "answerCallbackQuery",
        "answerInlineQuery",
        "sendChatAction",
        "getChat",
        "getChatMember",
        "getChatAdministrators",
        "getChatMemberCount",
        "leaveChat",
        "getFile",
        "getUpdates",
    ]
}


# --------------------------------------------------------------------------------------------
# Helpers for tests
# --------------------------------------------------------------------------------------------


async def post_update(
    url: str,
    update: dict[str, Any],
    *,
    secret_token: str | None = None,
    timeout: float = 5.0,  # noqa: ASYNC109 - handed to httpx as its request timeout
) -> int:
    """POST ``update`` as JSON to a webhook ``url`` (as Telegram would) and return the HTTP status."""
    import httpx  # a PTB dependency; imported here so the module loads without it

    headers = {"Content-Type": "application/json"}
    if secret_token is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret_token
    async with httpx.AsyncClient(timeout=timeout) as client:
        response = await client.post(url, content=json.dumps(update), headers=headers)
    return response.status_code


@asynccontextmanager
async def started_polling(application: Application, **start_polling_kwargs: Any) -> AsyncIterator[Application]:
    """Run ``application`` with long polling for the ``async with`` body, then shut it down fully."""
    await application.initialize()
    try:
        await application.start()
        assert application.updater is not None
        await application.updater.start_polling(**start_polling_kwargs)
        yield application
    finally:
        if application.updater is not None and application.updater.running:
            await application.updater.stop()
        if application.running:
            await application.stop()
        await application.shutdown()


@asynccontextmanager
async def started_webhook(application: Application, **start_webhook_kwargs: Any) -> AsyncIterator[Application]:
    """Run ``application`` in webhook mode (``updater.start_webhook(**kwargs)``) for the body."""
    await application.initialize()
    try:
        await application.start()
        assert application.updater is not None
        await application.updater.start_webhook(**start_webhook_kwargs)
        yield application
    finally:
        if application.updater is not None and application.updater.running:
            await application.updater.stop()
        if application.running:
            await application.stop()
        await application.shutdown()
