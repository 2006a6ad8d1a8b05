"""The real bot (bot.telegram.app.build_application) end to end over HTTP, against the fake Bot API on loopback: only
the flows that need real HTTP are here: polling round trips, a state that survives a restart, the Bot API's own
errors (a blocked chat, a flood wait), the command menus at start-up and the webhook.

What the bot says (language policy, /lang, /autoreply, auto-answers and their cooldown, /tz, /status, buttons, votes,
inline results, edits) is tested in tests/test_conversation.py, with no Telegram; what the handlers ask of Telegram
(one HTML message with buttons, quoting in groups, mentions, /fix as a reply, commands, button notices, edits,
inline articles, long answers split, escaping) in tests/test_handlers.py, through process_update with no HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from telegram.ext import Application

from bot.core.matcher import get_matcher
from bot.services.sqlite_store import SqliteStore
from bot.settings import Settings
from bot.telegram.app import _post_init, build_application
from tests.fakebotapi import BLOCKED_BY_USER, Call, FakeBotApi, flood, started_polling, started_webhook

CAPACITY = "Due to unexpected capacity constraints, Claude is unable to respond to your message. Please try again soon."
NETWORK = "Request timed out. Check your internet connection and proxy settings"
GROUP = -1001234567890
ALICE = 1001
BOB = 1002


def settings_for(server: FakeBotApi, data_dir: Path) -> Settings:
    # Status checks off: these tests must not reach the real status page (tests/test_status_bot.py has a fake one).
    return Settings(
        token=server.token,
        base_url=server.base_url,
        base_file_url=server.base_file_url,
        data_dir=data_dir,
        # One update at a time: the "no answer" proofs (a marker answered after the update under test) need it.
        workers=1,
        status_page_url="",
    )


def make_app(server: FakeBotApi, data_dir: Path) -> Application:  # type: ignore[type-arg]
    return build_application(settings_for(server, data_dir), get_matcher(), SqliteStore(data_dir))


@pytest.fixture
async def bot(fake_bot_api: FakeBotApi, tmp_path: Path) -> AsyncIterator[FakeBotApi]:
    """The bot polling the fake server; yields the server to push updates to and read calls from."""
    app = make_app(fake_bot_api, tmp_path)
    async with started_polling(app):
        yield fake_bot_api
    await app.bot_data["conversation"].store.close()


def to_chat(chat_id: int) -> Any:
    return lambda c: c.chat_id == chat_id


def buttons(call: Call) -> list[str]:
    markup = call.params.get("reply_markup") or {}
    return [b["callback_data"] for row in markup.get("inline_keyboard", []) for b in row]


# --- round trips over polling ---------------------------------------------------------------------


async def test_private_error_gets_cause_fix_and_buttons_in_html(bot: FakeBotApi) -> None:
    bot.push_update(bot.make.private_message(CAPACITY))
    call = await bot.wait_for_call("sendMessage", to_chat(ALICE))
    assert "<b>3. Capacity" in call.text and "1. Wait a few minutes" in call.text
    assert call.params["parse_mode"] == "HTML"
    assert call.params["link_preview_options"]["is_disabled"] is True
    assert [b for b in buttons(call) if not b.startswith("fb:")] == ["fix:network", "fix:service", "fix:context"]
    assert [b.rsplit(":", 1)[1] for b in buttons(call) if b.startswith("fb:")] == ["up", "down"]


async def test_cause_button_opens_that_fix_in_place(bot: FakeBotApi) -> None:
    bot.push_update(bot.make.private_message("/causes"))
    menu = await bot.wait_for_call("sendMessage")
    bot.push_update(bot.make.callback_query("fix:context", menu.result))
    edit = await bot.wait_for_call("editMessageText")
    assert "4. Context and usage limits" in edit.text and edit.params["message_id"] == menu.result["message_id"]
    assert (await bot.wait_for_call("answerCallbackQuery")).ok


# --- state across a restart, and the Bot API's own errors ---------------------------------------------


async def test_autoreply_switch_is_for_admins_and_survives_a_restart(fake_bot_api: FakeBotApi, tmp_path: Path) -> None:
    server = fake_bot_api
    server.set_chat_member(GROUP, ALICE, "member")
    server.set_chat_member(GROUP, BOB, "administrator")
    app = make_app(server, tmp_path)
    async with started_polling(app):
        server.push_update(server.make.group_message("/autoreply off"))
        assert "Only group admins" in (await server.wait_for_call("sendMessage", to_chat(GROUP))).text
        mark = server.mark()
        server.push_update(server.make.group_message("/autoreply off", user=server.make.user(BOB, "Bob")))
        assert "off" in (await server.wait_for_call("sendMessage", to_chat(GROUP), since=mark)).text
    await app.bot_data["conversation"].store.close()
    again = make_app(server, tmp_path)
    async with started_polling(again):
        mark = server.mark()
        server.push_update(server.make.group_message(CAPACITY))
        await server.assert_no_call("sendMessage", to_chat(GROUP), since=mark)
        mark = server.mark()
        server.push_update(server.make.group_message(f"/fix {CAPACITY}"))
        assert "3. Capacity" in (await server.wait_for_call("sendMessage", to_chat(GROUP), since=mark)).text
    await again.bot_data["conversation"].store.close()


async def test_removed_from_group_and_blocked_chats_do_not_crash(bot: FakeBotApi) -> None:
    bot.push_update(bot.make.my_chat_member(bot.make.group_chat(), old_status="member", new_status="kicked"))
    bot.fail_next("sendMessage", BLOCKED_BY_USER)
    bot.push_update(bot.make.private_message(CAPACITY))
    assert not (await bot.wait_for_call("sendMessage")).ok
    mark = bot.mark()
    bot.push_update(bot.make.private_message(NETWORK))
    assert "1. Network" in (await bot.wait_for_call("sendMessage", since=mark)).text


async def test_flood_limit_is_waited_out(bot: FakeBotApi) -> None:
    bot.fail_next("sendMessage", flood(retry_after=1))
    bot.push_update(bot.make.private_message(CAPACITY))
    ok = await bot.wait_for_call("sendMessage", lambda c: c.ok, timeout=10)
    assert "3. Capacity" in ok.text and len(bot.calls("sendMessage")) == 2


# --- start-up, menus, webhook ----------------------------------------------------------------------------


async def test_command_menus_are_registered_in_both_languages(fake_bot_api: FakeBotApi, tmp_path: Path) -> None:
    app = make_app(fake_bot_api, tmp_path)
    async with started_polling(app):
        await _post_init(app)
    calls = fake_bot_api.calls("setMyCommands")
    assert {c.params.get("language_code") for c in calls} == {None, "zh"}
    await app.bot_data["conversation"].store.close()


async def test_menu_failure_is_logged_and_the_bot_runs_on(
    fake_bot_api: FakeBotApi, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.fakebotapi import ApiError

    app = make_app(fake_bot_api, tmp_path)
    fake_bot_api.fail_next("setMyCommands", ApiError(400, "Bad Request: boom"), times=2)
    async with started_polling(app):
        await _post_init(app)
        fake_bot_api.push_update(fake_bot_api.make.private_message(CAPACITY))
        assert (await fake_bot_api.wait_for_call("sendMessage")).ok
    assert "could not register the en command menu" in caplog.text
    await app.bot_data["conversation"].store.close()


async def test_webhook_mode_verifies_the_secret(
    fake_bot_api: FakeBotApi, tmp_path: Path, free_port: int, post_webhook_update: Any
) -> None:
    settings = replace(settings_for(fake_bot_api, tmp_path), webhook_secret="s3cret")
    app = build_application(settings, get_matcher(), SqliteStore(tmp_path))
    url = f"http://127.0.0.1:{free_port}/hook"
    async with started_webhook(
        app, listen="127.0.0.1", port=free_port, url_path="hook", webhook_url=url, secret_token="s3cret"
    ):
        assert (await fake_bot_api.wait_for_call("setWebhook")).params["secret_token"] == "s3cret"
        update = {**fake_bot_api.make.private_message(CAPACITY), "update_id": 1}
        assert await post_webhook_update(url, update, secret_token="wrong") == 403
        assert await post_webhook_update(url, update, secret_token="s3cret") == 200
        assert "3. Capacity" in (await fake_bot_api.wait_for_call("sendMessage")).text
        assert len(fake_bot_api.calls("sendMessage")) == 1
    await app.bot_data["conversation"].store.close()
