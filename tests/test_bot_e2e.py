"""The real bot (bot.telegram.app.build_application) end to end over HTTP, against the fake Bot API on loopback."""

from __future__ import annotations

import json
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
# Too short to say what language it is in: the reader's settings decide.
SHORT_CAPACITY = "API 529"
TRADITIONAL_SERVICE = "Claude 現在無法回應，服務暫時中斷"
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


def reply_target(call: Call) -> int | None:
    params = call.params.get("reply_parameters")
    return params["message_id"] if params else None


# --- private chats ------------------------------------------------------------------------------


async def test_private_error_gets_cause_fix_and_buttons_in_html(bot: FakeBotApi) -> None:
    bot.push_update(bot.make.private_message(CAPACITY))
    call = await bot.wait_for_call("sendMessage", to_chat(ALICE))
    assert "<b>3. Capacity" in call.text and "1. Wait a few minutes" in call.text
    assert call.params["parse_mode"] == "HTML"
    assert call.params["link_preview_options"]["is_disabled"] is True
    assert [b for b in buttons(call) if not b.startswith("fb:")] == ["fix:network", "fix:service", "fix:context"]
    assert [b.rsplit(":", 1)[1] for b in buttons(call) if b.startswith("fb:")] == ["up", "down"]


async def test_a_paste_that_does_not_decide_is_answered_in_the_telegram_language(bot: FakeBotApi) -> None:
    bot.push_update(bot.make.private_message(SHORT_CAPACITY, language_code="zh-hans"))
    assert "访问量太高" in (await bot.wait_for_call("sendMessage")).text
    mark = bot.mark()
    bot.push_update(bot.make.private_message(SHORT_CAPACITY, language_code="zh-hant"))
    assert "訪問量太高" in (await bot.wait_for_call("sendMessage", since=mark)).text


async def test_a_pasted_error_is_answered_in_its_own_language_whatever_the_settings(bot: FakeBotApi) -> None:
    bot.push_update(bot.make.private_message(TRADITIONAL_SERVICE, language_code="en"))
    assert "服務" in (await bot.wait_for_call("sendMessage")).text
    mark = bot.mark()
    bot.push_update(bot.make.private_message(CAPACITY, language_code="zh-hans"))
    assert "3. Capacity" in (await bot.wait_for_call("sendMessage", since=mark)).text


async def test_lang_command_overrides_the_telegram_language(bot: FakeBotApi) -> None:
    bot.push_update(bot.make.private_message("/lang zh"))
    assert "中文" in (await bot.wait_for_call("sendMessage")).text
    mark = bot.mark()
    bot.push_update(bot.make.private_message(SHORT_CAPACITY))
    assert "访问量太高" in (await bot.wait_for_call("sendMessage", since=mark)).text


async def test_start_help_and_causes(bot: FakeBotApi) -> None:
    for command, needle in (("/start", "Claude Doctor"), ("/help", "/autoreply"), ("/causes", "4. Context")):
        mark = bot.mark()
        bot.push_update(bot.make.private_message(command))
        assert needle in (await bot.wait_for_call("sendMessage", since=mark)).text


@pytest.mark.parametrize(
    ("command", "needle"),
    [
        ("/fix 2", "2. Service disruption"),
        ("/fix 网络", "1. 网络异常"),
        ("/fix", "Send me the error"),
        (f"/fix {CAPACITY}", "3. Capacity"),
        ("/fix banana", "no cause called"),
    ],
)
async def test_fix_command(bot: FakeBotApi, command: str, needle: str) -> None:
    bot.push_update(bot.make.private_message(command))
    assert needle in (await bot.wait_for_call("sendMessage")).text


async def test_cause_button_opens_that_fix_in_place(bot: FakeBotApi) -> None:
    bot.push_update(bot.make.private_message("/causes"))
    menu = await bot.wait_for_call("sendMessage")
    bot.push_update(bot.make.callback_query("fix:context", menu.result))
    edit = await bot.wait_for_call("editMessageText")
    assert "4. Context and usage limits" in edit.text and edit.params["message_id"] == menu.result["message_id"]
    assert (await bot.wait_for_call("answerCallbackQuery")).ok


async def test_editing_a_message_edits_the_answer(bot: FakeBotApi) -> None:
    update = bot.push_update(bot.make.private_message("lunch plans for friday?"))
    first = await bot.wait_for_call("sendMessage")
    assert "couldn't recognise" in first.text
    bot.push_update(bot.make.edited_message(update, CAPACITY))
    edit = await bot.wait_for_call("editMessageText")
    assert edit.params["message_id"] == first.result["message_id"] and "3. Capacity" in edit.text
    assert len(bot.calls("sendMessage")) == 1


async def test_forwarded_error_is_diagnosed(bot: FakeBotApi) -> None:
    bot.push_update(bot.make.forwarded_message(NETWORK))
    assert "1. Network" in (await bot.wait_for_call("sendMessage")).text


async def test_media_without_text_gets_a_note(bot: FakeBotApi) -> None:
    bot.push_update(bot.make.sticker_message())
    assert "not stickers, voice notes" in (await bot.wait_for_call("sendMessage")).text


async def test_photo_caption_counts_as_text(bot: FakeBotApi) -> None:
    bot.push_update(bot.make.photo_message(caption=CAPACITY))
    assert "3. Capacity" in (await bot.wait_for_call("sendMessage")).text


# --- groups ----------------------------------------------------------------------------------------


async def test_group_chatter_gets_silence(bot: FakeBotApi) -> None:
    mark = bot.mark()
    bot.push_update(bot.make.group_message("morning all, anyone tried the new Sonnet for poetry?"))
    await bot.assert_no_call("sendMessage", to_chat(GROUP), since=mark)


async def test_fix_as_a_reply_answers_the_replied_to_message(bot: FakeBotApi) -> None:
    error = bot.push_update(bot.make.group_message("hmm: " + NETWORK, user=bot.make.user(BOB, "Bob")))
    await bot.wait_for_call("sendMessage", to_chat(GROUP))  # the strict auto-answer
    mark = bot.mark()
    bot.push_update(bot.make.group_message("/fix@claude_doctor_bot", reply_to=error["message"]))
    call = await bot.wait_for_call("sendMessage", to_chat(GROUP), since=mark)
    assert "1. Network" in call.text and reply_target(call) == error["message"]["message_id"]


async def test_fix_reply_to_an_unsure_message_still_answers(bot: FakeBotApi) -> None:
    vague = bot.push_update(bot.make.group_message("claude keeps timing out", user=bot.make.user(BOB, "Bob")))
    mark = bot.mark()
    bot.push_update(bot.make.group_message("/fix", reply_to=vague["message"]))
    call = await bot.wait_for_call("sendMessage", to_chat(GROUP), since=mark)
    assert "Most likely" in call.text and reply_target(call) == vague["message"]["message_id"]


async def test_auto_answer_cooldown_per_cause(bot: FakeBotApi) -> None:
    first = bot.push_update(bot.make.group_message(CAPACITY))
    call = await bot.wait_for_call("sendMessage", to_chat(GROUP))
    assert reply_target(call) == first["message"]["message_id"]
    mark = bot.mark()
    bot.push_update(bot.make.group_message("again: " + CAPACITY))
    await bot.assert_no_call("sendMessage", to_chat(GROUP), since=mark)
    mark = bot.mark()
    bot.push_update(bot.make.group_message(NETWORK))
    assert "1. Network" in (await bot.wait_for_call("sendMessage", to_chat(GROUP), since=mark)).text


async def test_no_auto_answer_to_other_bots(bot: FakeBotApi) -> None:
    mark = bot.mark()
    bot.push_update(bot.make.group_message(CAPACITY, user=bot.make.user(4242, "OtherBot", is_bot=True)))
    await bot.assert_no_call("sendMessage", to_chat(GROUP), since=mark)


async def test_mention_with_an_error_is_answered(bot: FakeBotApi) -> None:
    msg = bot.push_update(bot.make.group_message("@claude_doctor_bot what does this mean: claude keeps timing out"))
    call = await bot.wait_for_call("sendMessage", to_chat(GROUP))
    assert "1. Network" in call.text and reply_target(call) == msg["message"]["message_id"]


async def test_forum_topic_answer_stays_in_the_topic(bot: FakeBotApi) -> None:
    bot.push_update(bot.make.group_message(CAPACITY, message_thread_id=77))
    assert (await bot.wait_for_call("sendMessage", to_chat(GROUP))).params["message_thread_id"] == 77


async def test_deleted_error_message_is_answered_without_the_quote(bot: FakeBotApi) -> None:
    ghost = {"message_id": 987654, "date": 1, "chat": bot.make.group_chat(), "from": bot.make.user(BOB, "Bob"),
             "text": CAPACITY}  # fmt: skip
    bot.push_update(bot.make.group_message("/fix", reply_to=ghost))
    call = await bot.wait_for_call("sendMessage", to_chat(GROUP))
    assert call.ok and call.params["reply_parameters"]["allow_sending_without_reply"] is True


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


async def test_group_language_set_by_admin(bot: FakeBotApi) -> None:
    bot.set_chat_member(GROUP, ALICE, "creator")
    bot.push_update(bot.make.group_message("/lang zh"))
    await bot.wait_for_call("sendMessage", to_chat(GROUP))
    mark = bot.mark()
    bot.push_update(bot.make.group_message(f"@claude_doctor_bot {SHORT_CAPACITY}"))
    assert "访问量太高" in (await bot.wait_for_call("sendMessage", to_chat(GROUP), since=mark)).text


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


# --- inline mode -------------------------------------------------------------------------------------


async def test_inline_query_offers_the_diagnosis_first(bot: FakeBotApi) -> None:
    bot.push_update(bot.make.inline_query(CAPACITY[:80]))
    call = await bot.wait_for_call("answerInlineQuery")
    results = call.params["results"]
    results = json.loads(results) if isinstance(results, str) else results
    assert results[0]["id"] == "d-capacity"
    assert "3. Capacity" in results[0]["input_message_content"]["message_text"]
    assert len(results) == 4


async def test_empty_inline_query_offers_the_four_causes(bot: FakeBotApi) -> None:
    bot.push_update(bot.make.inline_query(""))
    call = await bot.wait_for_call("answerInlineQuery")
    results = call.params["results"]
    results = json.loads(results) if isinstance(results, str) else results
    assert [r["id"] for r in results] == ["c-network", "c-service", "c-capacity", "c-context"]


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


async def test_a_vague_report_in_a_group_is_triaged_for_the_asker_only(bot: FakeBotApi) -> None:
    asker, other = bot.make.user(5001, "Asker"), bot.make.user(5002, "Bystander")
    report = bot.push_update(
        bot.make.group_message("@claude_doctor_bot claude keeps cutting off mid answer", user=asker)
    )
    question = await bot.wait_for_call("sendMessage", to_chat(GROUP))
    assert reply_target(question) == report["message"]["message_id"]
    options = buttons(question)
    assert options and all(d.startswith("tri:") and ":5001:" in d for d in options)
    # Somebody else's press gets a polite word and changes nothing.
    mark = bot.mark()
    bot.push_update(bot.make.callback_query(options[0], question.result, user=other))
    refused = await bot.wait_for_call("answerCallbackQuery", since=mark)
    assert "for the person who asked" in refused.params["text"]
    await bot.assert_no_call("editMessageText", since=mark)
    # The asker: no message, only in a long chat -> cause 4's fix, edited into the question's own message.
    bot.push_update(bot.make.callback_query(options[-1], question.result, user=asker))
    second = await bot.wait_for_call("editMessageText", since=mark)
    assert second.params["message_id"] == question.result["message_id"] and "long chat" in second.text
    mark = bot.mark()
    bot.push_update(bot.make.callback_query(buttons(second)[0], question.result, user=asker))
    fix = await bot.wait_for_call("editMessageText", since=mark)
    assert "4. Context and usage limits" in fix.text and "Start a new chat" in fix.text


async def test_a_greeting_in_private_gets_a_welcome(bot: FakeBotApi) -> None:
    bot.push_update(bot.make.private_message("hello"))
    assert "Paste or forward the message Claude showed you" in (await bot.wait_for_call("sendMessage")).text


async def test_inline_query_with_a_problem_in_words_offers_the_triage(bot: FakeBotApi) -> None:
    bot.push_update(bot.make.inline_query("claude keeps cutting off mid answer", user=bot.make.user(6001, "Inline")))
    call = await bot.wait_for_call("answerInlineQuery")
    results = call.params["results"]
    results = json.loads(results) if isinstance(results, str) else results
    first = results[0]
    assert "Did Claude show a message?" in first["input_message_content"]["message_text"]
    data = [b["callback_data"] for row in first["reply_markup"]["inline_keyboard"] for b in row]
    assert data and all(d.startswith("tri:") and ":6001:" in d for d in data)
    assert call.params["is_personal"] in (True, "true", "True")


async def test_pasted_traditional_chinese_gets_traditional_whatever_the_senders_language(bot: FakeBotApi) -> None:
    bot.push_update(bot.make.private_message("Claude 現在無法回應，服務暫時中斷", language_code="en"))
    text = (await bot.wait_for_call("sendMessage")).text
    assert "服務中斷" in text and "服务中断" not in text
