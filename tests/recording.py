"""A Bot API with no network: a python-telegram-bot request object that records every call and answers it at once
with a canned result, and the real application (bot.telegram.app.build_application) built around it, so handler
tests feed updates to `Application.process_update` and read what the bot asked Telegram to do."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from telegram import Update
from telegram.ext import Application, ApplicationBuilder
from telegram.request import BaseRequest, RequestData

from bot.core.matcher import get_matcher
from bot.services.memory_store import MemoryStore
from bot.settings import Settings
from bot.telegram import app as telegram_app
from tests.fakebotapi import UpdateFactory

TOKEN = "123456:ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghi"
BOT_ID = 7012345678
BOT_USERNAME = "claude_doctor_bot"
# What getChatMember must say beyond the status for python-telegram-bot to read each kind of member.
MEMBER_FIELDS: dict[str, dict[str, bool]] = {
    "member": {},
    "creator": {"is_anonymous": False},
    "administrator": {
        name: False
        for name in (
            "can_be_edited",
            "is_anonymous",
            "can_manage_chat",
            "can_delete_messages",
            "can_manage_video_chats",
            "can_restrict_members",
            "can_promote_members",
            "can_change_info",
            "can_invite_users",
            "can_post_stories",
            "can_edit_stories",
            "can_delete_stories",
        )
    },
}


@dataclass(frozen=True)
class Call:
    """One Bot API call: the method's name and its parameters as python-telegram-bot sent them."""

    method: str
    params: dict[str, Any]
    # What the fake answered: for sendMessage, the Message a button press or a reply refers to.
    result: Any = None

    @property
    def text(self) -> str:
        return str(self.params.get("text", ""))

    @property
    def buttons(self) -> list[str]:
        """The callback data of the call's inline keyboard, row by row."""
        markup = self.params.get("reply_markup") or {}
        return [b["callback_data"] for row in markup.get("inline_keyboard", []) for b in row]

    @property
    def reply_to(self) -> int | None:
        params = self.params.get("reply_parameters")
        return params["message_id"] if params else None


class RecordingRequest(BaseRequest):
    """Answers every Bot API call at once with a plausible result and keeps each call, in order. `members` says
    what getChatMember answers for (chat, user) pairs: "member" (when not listed), "administrator" or "creator"."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.members: dict[tuple[int, int], str] = {}
        self._message_ids = itertools.count(1)

    @property
    def read_timeout(self) -> float | None:
        return 5.0

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def do_request(
        self, url: str, method: str, request_data: RequestData | None = None, **_: Any
    ) -> tuple[int, bytes]:
        name = url.rsplit("/", 1)[-1]
        params = dict(request_data.parameters) if request_data else {}
        result = self._result(name, params)
        self.calls.append(Call(name, params, result))
        return 200, json.dumps({"ok": True, "result": result}).encode()

    def _result(self, name: str, params: dict[str, Any]) -> Any:
        if name == "getMe":
            return self.bot_user()
        if name in ("sendMessage", "editMessageText"):
            chat_id = int(params["chat_id"])
            chat = {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"}
            message_id = params.get("message_id") or self._next_message_id()
            sent = {"message_id": message_id, "date": int(time.time()), "chat": chat, "text": params["text"]}
            return {**sent, "from": self.bot_user()}
        if name == "getChatMember":
            user = {"id": int(params["user_id"]), "is_bot": False, "first_name": "Someone"}
            status = self.members.get((int(params["chat_id"]), int(params["user_id"])), "member")
            return {"status": status, "user": user, **MEMBER_FIELDS[status]}
        return True

    def of(self, method: str) -> list[Call]:
        """The calls of one method, in order."""
        return [c for c in self.calls if c.method == method]

    # What UpdateFactory needs of a server: message ids that never collide with the bot's, and the bot's user.
    def _next_message_id(self) -> int:
        return next(self._message_ids)

    def bot_user(self) -> dict[str, Any]:
        return {
            "id": BOT_ID,
            "is_bot": True,
            "first_name": "Doctor",
            "username": BOT_USERNAME,
            "can_join_groups": True,
            "can_read_all_group_messages": True,
            "supports_inline_queries": True,
        }


@dataclass
class Recorded:
    """The application under test, what it asked of Telegram, and realistic updates to give it."""

    app: Application  # type: ignore[type-arg]
    api: RecordingRequest
    make: UpdateFactory

    async def feed(self, update: dict[str, Any]) -> dict[str, Any]:
        """Handle one update (a dict as Telegram sends it) to the end; returns it for replies and edits."""
        update = {"update_id": next(self.make._ids), **update}
        await self.app.process_update(Update.de_json(update, self.app.bot))
        return update


@asynccontextmanager
async def recorded_application(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> AsyncIterator[Recorded]:
    """build_application as the bot runs it, its Bot API calls going to a RecordingRequest: build_application has
    no seam for the request, so its ApplicationBuilder gets one added before it builds."""
    api = RecordingRequest()

    class RecordingBuilder(ApplicationBuilder):  # type: ignore[type-arg]
        def build(self) -> Application:  # type: ignore[type-arg,override]
            self.request(api)
            return super().build()

    monkeypatch.setattr(telegram_app, "ApplicationBuilder", RecordingBuilder)
    app = telegram_app.build_application(settings, get_matcher(), MemoryStore())
    await app.initialize()
    try:
        yield Recorded(app, api, UpdateFactory(api))  # type: ignore[arg-type]
    finally:
        await app.shutdown()


def settings() -> Settings:
    # Status checks off: no test may reach the real status page.
    return Settings(token=TOKEN, status_page_url="")
