"""The Telegram handlers (bot/telegram/handlers.py and adapter.py) through python-telegram-bot's own
`Application.process_update`, with a recording request in place of HTTP (tests/recording.py): what each kind of
update makes the bot ask of Telegram. What the answers say is the conversation layer's (tests/test_conversation.py)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.conversation import Conversation
from bot.core.replies import TELEGRAM_LIMIT
from bot.core.responder import Answer, Button
from tests.recording import BOT_USERNAME, Recorded, recorded_application, settings

CAPACITY = "Due to unexpected capacity constraints, Claude is unable to respond to your message. Please try again soon."
NETWORK = "Request timed out. Check your internet connection and proxy settings"
CHATTER = "morning all, anyone tried the new Sonnet for poetry?"
GROUP = -1001234567890
ALICE = 1001
BOB = 1002


@pytest.fixture
async def bot(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> AsyncIterator[Recorded]:
    """The application with its Bot API recorded; a handler that failed fails the test, so that "no message" is
    never a crash in disguise."""
    async with recorded_application(monkeypatch, settings()) as recorded:
        yield recorded
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def conversation(bot: Recorded) -> Conversation:
    return bot.app.bot_data["conversation"]


def sent(bot: Recorded) -> list[Any]:
    return bot.api.of("sendMessage")


def the_message(update: dict[str, Any]) -> dict[str, Any]:
    return update["message"]


# --- private chats ---------------------------------------------------------------------------------------


async def test_a_private_error_gets_one_html_message_with_buttons(bot: Recorded) -> None:
    await bot.feed(bot.make.private_message(CAPACITY))
    [call] = sent(bot)
    assert call.params["chat_id"] == ALICE and call.params["parse_mode"] == "HTML"
    assert call.params["link_preview_options"] == {"is_disabled": True}
    assert [b for b in call.buttons if not b.startswith("fb:")] == ["fix:network", "fix:service", "fix:context"]


async def test_a_private_answer_does_not_quote_the_message(bot: Recorded) -> None:
    await bot.feed(bot.make.private_message(CAPACITY))
    assert sent(bot)[0].reply_to is None


async def test_a_forwarded_error_is_diagnosed(bot: Recorded) -> None:
    await bot.feed(bot.make.forwarded_message(NETWORK))
    assert "1. Network" in sent(bot)[0].text


async def test_a_photos_caption_is_diagnosed(bot: Recorded) -> None:
    await bot.feed(bot.make.photo_message(caption=CAPACITY))
    assert "3. Capacity" in sent(bot)[-1].text


async def test_a_sticker_gets_a_note(bot: Recorded) -> None:
    await bot.feed(bot.make.sticker_message())
    assert "not stickers, voice notes" in sent(bot)[0].text


@pytest.mark.parametrize(
    ("command", "needle"),
    [
        ("/start", "Claude Doctor"),
        ("/help", "/autoreply"),
        ("/causes", "4. Context"),
        ("/fix 2", "2. Service disruption"),
        ("/fix 网络", "1. 网络异常"),
        ("/fix", "Send me the error"),
        (f"/fix {CAPACITY}", "3. Capacity"),
        ("/lang zh", "中文"),
        ("/tz", "Your time zone: UTC"),
        ("/status", "Status checks are turned off"),
        ("/subscribe", "Status checks are turned off"),
        ("/unsubscribe", "isn't subscribed"),
        ("/privacy", "30 days"),
        ("/forget", "0"),
        ("/stats", "is for the bot's operators"),
        ("/autoreply on", "only works in groups"),
    ],
)
async def test_a_command_gets_its_answer(bot: Recorded, command: str, needle: str) -> None:
    await bot.feed(bot.make.private_message(command))
    [call] = sent(bot)
    assert needle in call.text


@pytest.mark.parametrize(
    ("text", "escaped"),
    [("/fix <i>x</i>", "&lt;i&gt;x&lt;/i&gt;"), ("/tz <b>Mars</b>", "&lt;b&gt;Mars&lt;/b&gt;")],
    ids=["a-fix-name", "a-time-zone-name"],
)
async def test_what_the_user_typed_is_html_escaped_in_the_answer(bot: Recorded, text: str, escaped: str) -> None:
    await bot.feed(bot.make.private_message(text))
    assert escaped in sent(bot)[0].text


async def test_a_long_answer_is_split_under_telegrams_limit_with_the_buttons_on_the_last_part(
    bot: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def long_help(sender: object) -> Answer:
        return Answer("\n".join(f"line {n} " + "x" * 90 for n in range(100)), ((Button("1", "fix:network"),),))

    monkeypatch.setattr(conversation(bot), "help", long_help)
    await bot.feed(bot.make.private_message("/help"))
    calls = sent(bot)
    assert len(calls) > 1 and all(len(c.text) <= TELEGRAM_LIMIT for c in calls)
    assert [bool(c.buttons) for c in calls] == [False] * (len(calls) - 1) + [True]


async def test_a_failing_handler_gets_a_private_chat_an_apology(
    bot: Recorded, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*args: object, **kwargs: object) -> Answer:
        raise RuntimeError("a bug")

    monkeypatch.setattr(conversation(bot), "diagnose", broken)
    await bot.feed(bot.make.private_message(CAPACITY))
    [call] = sent(bot)
    assert call.text == conversation(bot).responder.say("internal_error", "en").text
    assert "its answer is lost: RuntimeError('a bug')" in caplog.text
    caplog.clear()  # the failure this test made is not one the fixture should fail it for


# --- groups ---------------------------------------------------------------------------------------------


async def test_group_chatter_gets_no_message(bot: Recorded) -> None:
    await bot.feed(bot.make.group_message(CHATTER))
    assert sent(bot) == []


async def test_a_sure_error_in_a_group_is_answered_quoting_it(bot: Recorded) -> None:
    update = await bot.feed(bot.make.group_message(CAPACITY))
    [call] = sent(bot)
    assert call.reply_to == the_message(update)["message_id"]


async def test_an_error_from_another_bot_gets_no_message(bot: Recorded) -> None:
    await bot.feed(bot.make.group_message(CAPACITY, user=bot.make.user(4242, "OtherBot", is_bot=True)))
    assert sent(bot) == []


async def test_a_mention_is_answered_quoting_it(bot: Recorded) -> None:
    update = await bot.feed(bot.make.group_message(f"@{BOT_USERNAME} what does this mean: claude keeps timing out"))
    [call] = sent(bot)
    assert "1. Network" in call.text and call.reply_to == the_message(update)["message_id"]


async def test_a_bare_mention_under_an_error_answers_that_error(bot: Recorded) -> None:
    error = await bot.feed(bot.make.group_message("hmm: claude keeps timing out", user=bot.make.user(BOB, "Bob")))
    await bot.feed(bot.make.group_message(f"@{BOT_USERNAME}", reply_to=the_message(error)))
    [call] = sent(bot)
    assert "1. Network" in call.text and call.reply_to == the_message(error)["message_id"]


async def test_a_reply_to_the_bot_is_answered_quoting_it(bot: Recorded) -> None:
    mine = {"message_id": 9000, "date": 1, "chat": bot.make.group_chat(), "from": bot.api.bot_user(), "text": "…"}
    reply = await bot.feed(bot.make.group_message("it still says claude keeps timing out", reply_to=mine))
    [call] = sent(bot)
    assert "1. Network" in call.text and call.reply_to == the_message(reply)["message_id"]


async def test_fix_as_a_reply_answers_the_replied_to_message(bot: Recorded) -> None:
    vague = await bot.feed(bot.make.group_message("claude keeps timing out", user=bot.make.user(BOB, "Bob")))
    await bot.feed(bot.make.group_message(f"/fix@{BOT_USERNAME}", reply_to=the_message(vague)))
    [call] = sent(bot)
    assert "Most likely" in call.text and call.reply_to == the_message(vague)["message_id"]


async def test_an_answer_still_goes_out_when_the_quoted_message_was_deleted(bot: Recorded) -> None:
    ghost = {"message_id": 987654, "date": 1, "chat": bot.make.group_chat(), "text": CAPACITY}
    await bot.feed(bot.make.group_message("/fix", reply_to=ghost))
    quoted = sent(bot)[0].params["reply_parameters"]
    assert (quoted["message_id"], quoted["allow_sending_without_reply"]) == (987654, True)


async def test_a_command_in_a_group_quotes_the_command(bot: Recorded) -> None:
    command = await bot.feed(bot.make.group_message("/causes"))
    assert sent(bot)[0].reply_to == the_message(command)["message_id"]


async def test_a_forum_topics_answer_stays_in_the_topic(bot: Recorded) -> None:
    await bot.feed(bot.make.group_message(CAPACITY, message_thread_id=77))
    assert sent(bot)[0].params["message_thread_id"] == 77


@pytest.mark.parametrize(
    ("status", "needle", "off"),
    [("member", "Only group admins", False), ("administrator", "Automatic answers are off", True)],
    ids=["a-member-is-refused", "an-admin-switches-it"],
)
async def test_autoreply_asks_telegram_whether_the_sender_is_an_admin(
    bot: Recorded, status: str, needle: str, off: bool
) -> None:
    bot.api.members[(GROUP, ALICE)] = status
    await bot.feed(bot.make.group_message("/autoreply off"))
    assert [c.params["user_id"] for c in bot.api.of("getChatMember")] == [ALICE]
    assert needle in sent(bot)[0].text
    assert (await conversation(bot).store.chat(GROUP)).autoreply is not off


async def test_a_group_that_became_a_supergroup_keeps_its_settings(bot: Recorded) -> None:
    await conversation(bot).store.set_autoreply(-4321, False)
    for update in bot.make.migration(-4321, GROUP):
        await bot.feed(update)
    assert not (await conversation(bot).store.chat(GROUP)).autoreply


async def test_a_group_that_removed_the_bot_is_forgotten(bot: Recorded) -> None:
    await conversation(bot).store.subscribe(GROUP, "en")
    await bot.feed(bot.make.my_chat_member(bot.make.group_chat(), old_status="member", new_status="kicked"))
    assert await conversation(bot).store.subscription_count() == 0


# --- buttons --------------------------------------------------------------------------------------------


async def test_a_thumbs_up_is_acknowledged_with_a_notice(bot: Recorded) -> None:
    await bot.feed(bot.make.private_message(CAPACITY))
    answer = sent(bot)[0]
    up = next(b for b in answer.buttons if b.endswith(":up"))
    await bot.feed(bot.make.callback_query(up, answer.result))
    [ack] = bot.api.of("answerCallbackQuery")
    assert ack.params["text"].startswith("Thanks")


async def test_a_cause_button_in_private_edits_its_message(bot: Recorded) -> None:
    await bot.feed(bot.make.private_message("/causes"))
    menu = sent(bot)[0].result
    await bot.feed(bot.make.callback_query("fix:context", menu))
    [edit] = bot.api.of("editMessageText")
    assert edit.params["message_id"] == menu["message_id"] and "4. Context" in edit.text
    assert len(sent(bot)) == 1


async def test_a_cause_button_in_a_group_replies_to_its_message(bot: Recorded) -> None:
    await bot.feed(bot.make.group_message("/causes"))
    menu = sent(bot)[0].result
    await bot.feed(bot.make.callback_query("fix:context", menu))
    assert bot.api.of("editMessageText") == [] and sent(bot)[1].reply_to == menu["message_id"]


async def test_another_users_triage_press_gets_only_a_notice(bot: Recorded) -> None:
    await bot.feed(bot.make.group_message(f"@{BOT_USERNAME} claude keeps cutting off mid answer"))
    question = sent(bot)[0].result
    await bot.feed(bot.make.callback_query(sent(bot)[0].buttons[0], question, user=bot.make.user(BOB, "Bob")))
    [ack] = bot.api.of("answerCallbackQuery")
    assert "for the person who asked" in ack.params["text"] and bot.api.of("editMessageText") == []


# --- edits and inline mode -----------------------------------------------------------------------------


async def test_an_edited_message_edits_the_earlier_answer(bot: Recorded) -> None:
    update = await bot.feed(bot.make.private_message("lunch plans for friday?"))
    await bot.feed(bot.make.edited_message(update, CAPACITY))
    [edit] = bot.api.of("editMessageText")
    assert edit.params["message_id"] == sent(bot)[0].result["message_id"] and "3. Capacity" in edit.text
    assert len(sent(bot)) == 1


async def test_an_inline_query_is_answered_with_articles(bot: Recorded) -> None:
    await bot.feed(bot.make.inline_query(CAPACITY[:80]))
    [call] = bot.api.of("answerInlineQuery")
    results = call.params["results"]
    results = json.loads(results) if isinstance(results, str) else results
    assert [r["type"] for r in results] == ["article"] * 4 and results[0]["id"] == "d-capacity"
    assert "3. Capacity" in results[0]["input_message_content"]["message_text"]


async def test_an_inline_triage_is_answered_as_personal(bot: Recorded) -> None:
    await bot.feed(bot.make.inline_query("claude keeps cutting off mid answer"))
    [call] = bot.api.of("answerInlineQuery")
    assert call.params["is_personal"] is True


async def test_an_inline_diagnosis_may_be_cached_for_everyone(bot: Recorded) -> None:
    await bot.feed(bot.make.inline_query(CAPACITY[:80]))
    [call] = bot.api.of("answerInlineQuery")
    assert call.params["is_personal"] is False and call.params["cache_time"] == 60
