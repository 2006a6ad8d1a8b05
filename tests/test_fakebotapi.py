"""End-to-end checks of the fake Bot API harness with a real PTB Application.

The application here is a throwaway (echo, /start, /fix, a button menu), defined in this file so
the harness is proven independently of the bot's own code.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from telegram import (
    Bot,
    ChatFullInfo,
    ChatMemberAdministrator,
    ChatMemberOwner,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQueryResultArticle,
    InputTextMessageContent,
    MessageOriginChannel,
    MessageOriginHiddenUser,
    MessageOriginUser,
    Update,
)
from telegram.error import BadRequest, Forbidden, InvalidToken, RetryAfter
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    InlineQueryHandler,
    MessageHandler,
    filters,
)

from tests.fakebotapi import (
    BLOCKED_BY_USER,
    REPLY_NOT_FOUND,
    FakeBotApi,
    detect_entities,
    flood,
    started_polling,
    started_webhook,
)

ALICE = 1001
GROUP = -1001234567890


def build_app(server: FakeBotApi) -> tuple[Application, asyncio.Queue[BaseException]]:
    """A small real PTB application; errors raised in handlers land in the returned queue."""
    app = server.application_builder().build()
    errors: asyncio.Queue[BaseException] = asyncio.Queue()

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.effective_message.reply_text("hello")

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        msg = update.effective_message
        await msg.reply_text(f"echo[{update.effective_user.language_code}]: {msg.text}")

    async def fix(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.effective_message.reply_text("fixing")  # quotes by default in groups

    async def mentioned(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.effective_message.reply_text("you called?")

    async def edited(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        msg = update.edited_message
        await context.bot.send_message(msg.chat_id, f"edited: {msg.text}")

    async def menu(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("One", callback_data="pick:1")]])
        await update.effective_message.reply_text("choose", reply_markup=keyboard)

    async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        await query.answer("ok")
        await query.edit_message_text(f"you chose {query.data}")

    async def document(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        file = await update.effective_message.document.get_file()
        data = await file.download_as_bytearray()
        await update.effective_message.reply_text(f"got {len(data)} bytes: {data.decode()}")

    async def inline(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.inline_query
        result = InlineQueryResultArticle("1", "Answer", InputTextMessageContent(f"about {query.query}"))
        await query.answer([result], cache_time=0)

    async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        errors.put_nowait(context.error)

    mention = filters.Entity("mention") & filters.Regex(f"@{server.username}")
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CommandHandler("fix", fix, filters=filters.ChatType.GROUPS))
    app.add_handler(CommandHandler("menu", menu))
    app.add_handler(MessageHandler(filters.ChatType.GROUPS & mention, mentioned))
    app.add_handler(MessageHandler(filters.UpdateType.EDITED_MESSAGE & filters.TEXT, edited))
    app.add_handler(MessageHandler(filters.ChatType.PRIVATE & filters.Document.ALL, document))
    app.add_handler(MessageHandler(filters.ChatType.PRIVATE & filters.TEXT & ~filters.COMMAND, echo))
    app.add_handler(CallbackQueryHandler(button, pattern=r"^pick:"))
    app.add_handler(InlineQueryHandler(inline))
    app.add_error_handler(on_error)
    return app, errors


async def next_error(errors: asyncio.Queue[BaseException]) -> BaseException:
    """The next handler error (event-driven; fails after 5 s instead of hanging)."""
    return await asyncio.wait_for(errors.get(), 5)


# ---------------------------------------------------------------------------------------------
# Polling
# ---------------------------------------------------------------------------------------------


async def test_polling_round_trip(fake_bot_api: FakeBotApi) -> None:
    app, _ = build_app(fake_bot_api)
    async with started_polling(app):
        pushed = fake_bot_api.push_update(fake_bot_api.make.private_message("hello there", language_code="de"))
        call = await fake_bot_api.wait_for_call("sendMessage", lambda c: c.chat_id == ALICE)

    assert call.text == "echo[de]: hello there"
    assert isinstance(call.chat_id, int)  # form values arrive JSON-decoded
    assert call.result["chat"] == {"id": ALICE, "type": "private", "first_name": "Alice", "username": "alice"}
    assert call.result["from"]["username"] == fake_bot_api.username
    assert call.result["message_id"] > pushed["message"]["message_id"]
    assert "reply_to_message" not in call.result  # PTB does not quote in private chats
    methods = [c.method for c in fake_bot_api.calls()]
    assert methods[0] == "getMe"
    assert "deleteWebhook" in methods  # PTB's polling bootstrap
    assert fake_bot_api.pending_updates() == []  # the shutdown getUpdates confirmed the update


async def test_long_poll_wakes_on_push_and_shuts_down_fast(fake_bot_api: FakeBotApi) -> None:
    app, _ = build_app(fake_bot_api)
    started = time.monotonic()
    # With a 30 s long poll, an answer within the 3 s wait proves the push woke getUpdates.
    async with started_polling(app, timeout=30):
        await fake_bot_api.wait_for_idle_poll(timeout=3)
        fake_bot_api.push_update(fake_bot_api.make.private_message("wake up"))
        call = await fake_bot_api.wait_for_call("sendMessage", timeout=3)
    assert call.text == "echo[en]: wake up"
    assert time.monotonic() - started < 10, "stopping must not wait for the 30 s long poll"


async def test_edited_message_arrives_as_edited_message(fake_bot_api: FakeBotApi) -> None:
    app, _ = build_app(fake_bot_api)
    async with started_polling(app):
        original = fake_bot_api.push_update(fake_bot_api.make.private_message("first"))
        await fake_bot_api.wait_for_call("sendMessage", lambda c: c.text == "echo[en]: first")
        edit = fake_bot_api.push_update(fake_bot_api.make.edited_message(original, "second"))
        call = await fake_bot_api.wait_for_call("sendMessage", lambda c: c.text.startswith("edited"))

    assert call.text == "edited: second"
    assert edit["edited_message"]["message_id"] == original["message"]["message_id"]
    assert "edit_date" in edit["edited_message"]


async def test_group_command_in_forum_topic_is_quoted_in_thread(fake_bot_api: FakeBotApi) -> None:
    app, _ = build_app(fake_bot_api)
    async with started_polling(app):
        pushed = fake_bot_api.push_update(
            fake_bot_api.make.group_message(f"/fix@{fake_bot_api.username} please", message_thread_id=7)
        )
        call = await fake_bot_api.wait_for_call("sendMessage", lambda c: c.chat_id == GROUP)

    msg = pushed["message"]
    assert msg["is_topic_message"] is True
    assert msg["entities"] == [{"offset": 0, "length": 22, "type": "bot_command"}]
    assert call.text == "fixing"
    assert call["reply_parameters"]["message_id"] == msg["message_id"]
    assert call["message_thread_id"] == 7  # PTB keeps replies in the topic
    assert call.result["reply_to_message"]["message_id"] == msg["message_id"]
    assert call.result["message_thread_id"] == 7
    assert call.result["is_topic_message"] is True


async def test_group_mention_is_answered(fake_bot_api: FakeBotApi) -> None:
    app, _ = build_app(fake_bot_api)
    async with started_polling(app):
        fake_bot_api.push_update(fake_bot_api.make.group_message(f"hey @{fake_bot_api.username} help"))
        call = await fake_bot_api.wait_for_call("sendMessage")
    assert call.text == "you called?"
    assert call.chat_id == GROUP


async def test_group_chatter_gets_no_answer(fake_bot_api: FakeBotApi) -> None:
    app, _ = build_app(fake_bot_api)
    async with started_polling(app):
        mark = fake_bot_api.mark()
        fake_bot_api.push_update(fake_bot_api.make.group_message("just chatting, /fixing nothing"))
        fake_bot_api.push_update(fake_bot_api.make.group_message("/fix@some_other_bot"))
        # Marker pattern: the bot answers the /start marker only after handling both messages.
        await fake_bot_api.assert_no_call("sendMessage", since=mark)

        # The same check is not vacuous: it fails when the bot did answer.
        mark = fake_bot_api.mark()
        fake_bot_api.push_update(fake_bot_api.make.group_message("/fix"))
        with pytest.raises(AssertionError, match="fixing"):
            await fake_bot_api.assert_no_call("sendMessage", since=mark)

    marker_answers = fake_bot_api.sent_texts(fake_bot_api.make.MARKER_USER_ID)
    assert marker_answers == ["hello", "hello"]


async def test_flood_error_surfaces_as_retry_after(fake_bot_api: FakeBotApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")  # RetryAfter.retry_after as timedelta, no warning
    app, errors = build_app(fake_bot_api)
    fake_bot_api.fail_next("sendMessage", flood(retry_after=1))
    async with started_polling(app):
        fake_bot_api.push_update(fake_bot_api.make.private_message("one"))
        error = await next_error(errors)
        fake_bot_api.push_update(fake_bot_api.make.private_message("two"))  # the failure was one-shot
        ok = await fake_bot_api.wait_for_call("sendMessage", lambda c: c.ok)

    assert isinstance(error, RetryAfter)
    assert error.retry_after == dtm.timedelta(seconds=1)
    failed = fake_bot_api.calls("sendMessage")[0]
    assert failed.error is not None and failed.error.error_code == 429
    assert ok.text == "echo[en]: two"


@pytest.mark.parametrize(
    ("error", "exc_type", "message"),
    [
        (BLOCKED_BY_USER, Forbidden, "bot was blocked by the user"),
        (REPLY_NOT_FOUND, BadRequest, "Message to be replied not found"),
    ],
)
async def test_scripted_errors_surface(
    fake_bot_api: FakeBotApi, error: Any, exc_type: type[Exception], message: str
) -> None:
    app, errors = build_app(fake_bot_api)
    fake_bot_api.fail_next("sendMessage", error)
    async with started_polling(app):
        fake_bot_api.push_update(fake_bot_api.make.private_message("hi"))
        raised = await next_error(errors)
    assert isinstance(raised, exc_type)
    assert message in str(raised)


async def test_file_download_via_get_file(fake_bot_api: FakeBotApi) -> None:
    app, _ = build_app(fake_bot_api)
    ref = fake_bot_api.add_file(b"Error: 529 overloaded", file_path="documents/log.txt")
    async with started_polling(app):
        fake_bot_api.push_update(fake_bot_api.make.document_message("log.txt", file=ref))
        call = await fake_bot_api.wait_for_call("sendMessage")

    assert call.text == "got 21 bytes: Error: 529 overloaded"
    get_file = fake_bot_api.calls("getFile")[0]
    assert get_file["file_id"] == ref["file_id"]
    assert get_file.result["file_path"] == "documents/log.txt"


async def test_callback_query_answers_and_edits(fake_bot_api: FakeBotApi) -> None:
    app, _ = build_app(fake_bot_api)
    async with started_polling(app):
        fake_bot_api.push_update(fake_bot_api.make.private_message("/menu"))
        sent = await fake_bot_api.wait_for_call("sendMessage")
        fake_bot_api.push_update(fake_bot_api.make.callback_query("pick:1", sent.result))
        answer = await fake_bot_api.wait_for_call("answerCallbackQuery")
        edit = await fake_bot_api.wait_for_call("editMessageText")

    assert sent.result["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "pick:1"
    assert answer["text"] == "ok"
    assert edit["message_id"] == sent.result["message_id"]
    assert edit.result["text"] == "you chose pick:1"
    assert "reply_markup" not in edit.result  # editing without a markup removes the keyboard


async def test_inline_query_is_answered(fake_bot_api: FakeBotApi) -> None:
    app, _ = build_app(fake_bot_api)
    async with started_polling(app):
        pushed = fake_bot_api.push_update(fake_bot_api.make.inline_query("overloaded"))
        call = await fake_bot_api.wait_for_call("answerInlineQuery")
    assert call["inline_query_id"] == pushed["inline_query"]["id"]
    assert call["results"][0]["input_message_content"]["message_text"] == "about overloaded"


# ---------------------------------------------------------------------------------------------
# Webhook
# ---------------------------------------------------------------------------------------------


async def test_webhook_mode(
    fake_bot_api: FakeBotApi, free_port: int, post_webhook_update: Callable[..., Awaitable[int]]
) -> None:
    app, _ = build_app(fake_bot_api)
    url = f"http://127.0.0.1:{free_port}/telegram"
    async with started_webhook(
        app, listen="127.0.0.1", port=free_port, url_path="telegram", secret_token="s3cret", webhook_url=url
    ):
        set_webhook = fake_bot_api.calls("setWebhook")[0]
        assert set_webhook["url"] == url
        assert set_webhook["secret_token"] == "s3cret"

        # Telegram's side: the fake POSTs the pushed update with the secret header.
        pushed = fake_bot_api.push_update(fake_bot_api.make.private_message("via webhook"))
        delivery = await fake_bot_api.wait_for_delivery(pushed["update_id"])
        reply = await fake_bot_api.wait_for_call("sendMessage")

        update = fake_bot_api.make.private_message("forged")
        update["update_id"] = 1
        wrong = await post_webhook_update(url, update, secret_token="wrong")
        missing = await post_webhook_update(url, update)
        right = await post_webhook_update(url, fake_bot_api.make.private_message("direct") | {"update_id": 2}, "s3cret")
        direct = await fake_bot_api.wait_for_call("sendMessage", lambda c: "direct" in c.text)

    assert delivery.status == 200
    assert reply.text == "echo[en]: via webhook"
    assert (wrong, missing, right) == (403, 403, 200)
    assert direct.text == "echo[en]: direct"
    assert not fake_bot_api.calls("sendMessage", lambda c: "forged" in c.text)
    assert fake_bot_api.calls("getUpdates") == []


async def test_get_updates_conflicts_while_webhook_is_set(fake_bot_api: FakeBotApi) -> None:
    async with Bot(fake_bot_api.token, base_url=fake_bot_api.base_url) as bot:
        await bot.set_webhook("http://127.0.0.1:9/hook")
        info = await bot.get_webhook_info()
        with pytest.raises(Exception, match="webhook is active"):
            await bot.get_updates(timeout=0)
        await bot.delete_webhook()
        assert await bot.get_updates(timeout=0) == ()
    assert info.url == "http://127.0.0.1:9/hook"


# ---------------------------------------------------------------------------------------------
# Direct API checks (a bare Bot, no Application)
# ---------------------------------------------------------------------------------------------


async def test_wrong_token_is_unauthorized(fake_bot_api: FakeBotApi) -> None:
    async with Bot(fake_bot_api.token, base_url=fake_bot_api.base_url):
        pass  # the right token works
    bot = Bot("123:wrong", base_url=fake_bot_api.base_url)
    try:
        with pytest.raises(InvalidToken):
            await bot.initialize()
    finally:
        await bot.shutdown()
    failed = fake_bot_api.calls("getMe")[-1]
    assert failed.error is not None and failed.error.error_code == 401


async def test_commands_members_and_chats(fake_bot_api: FakeBotApi) -> None:
    fake_bot_api.add_chat(fake_bot_api.make.group_chat())
    fake_bot_api.set_chat_member(GROUP, 1, "creator", user=fake_bot_api.make.user(1, "Owner"))
    fake_bot_api.set_chat_member(GROUP, fake_bot_api.bot_id, "administrator", can_delete_messages=False)
    async with Bot(fake_bot_api.token, base_url=fake_bot_api.base_url) as bot:
        await bot.set_my_commands([("fix", "Diagnose a Claude error")], language_code="en")
        commands = await bot.get_my_commands(language_code="en")
        default_commands = await bot.get_my_commands()
        me = await bot.get_chat_member(GROUP, bot.id)
        owner = await bot.get_chat_member(GROUP, 1)
        admins = await bot.get_chat_administrators(GROUP)
        chat = await bot.get_chat(GROUP)
        await bot.set_my_description("Explains Claude errors")
        description = await bot.get_my_description()
        assert await bot.leave_chat(GROUP) is True
        left = await bot.get_chat_member(GROUP, bot.id)

    assert [(c.command, c.description) for c in commands] == [("fix", "Diagnose a Claude error")]
    assert default_commands == ()
    assert isinstance(me, ChatMemberAdministrator) and me.can_delete_messages is False
    assert isinstance(owner, ChatMemberOwner) and owner.user.first_name == "Owner"
    assert {a.user.id for a in admins} == {1, fake_bot_api.bot_id}
    assert isinstance(chat, ChatFullInfo) and chat.title == "Claude Users"
    assert description.description == "Explains Claude errors"
    assert left.status == "left"
    assert bot.can_join_groups and bot.supports_inline_queries


async def test_message_store_rules(fake_bot_api: FakeBotApi) -> None:
    async with Bot(fake_bot_api.token, base_url=fake_bot_api.base_url) as bot:
        with pytest.raises(BadRequest, match="replied not found"):
            await bot.send_message(ALICE, "hi", reply_to_message_id=999_999)
        sent = await bot.send_message(ALICE, "hi", reply_to_message_id=999_999, allow_sending_without_reply=True)
        with pytest.raises(BadRequest, match="not modified"):
            await bot.edit_message_text("hi", ALICE, sent.message_id)
        edited = await bot.edit_message_text("bye", ALICE, sent.message_id)
        assert await bot.delete_message(ALICE, sent.message_id) is True
        with pytest.raises(BadRequest, match="to delete not found"):
            await bot.delete_message(ALICE, sent.message_id)
        big = fake_bot_api.add_file(b"", file_size=25 * 1024 * 1024)
        with pytest.raises(BadRequest, match="too big"):
            await bot.get_file(big["file_id"])
    assert edited.text == "bye" and edited.edit_date is not None


async def test_multipart_upload_is_recorded_and_downloadable(fake_bot_api: FakeBotApi) -> None:
    async with Bot(fake_bot_api.token, base_url=fake_bot_api.base_url, base_file_url=fake_bot_api.base_file_url) as bot:
        sent = await bot.send_document(ALICE, document=b"trace\n", filename="trace.txt", caption="here")
        file = await bot.get_file(sent.document.file_id)
        data = await file.download_as_bytearray()
    call = fake_bot_api.calls("sendDocument")[0]
    assert call.files["document"].filename == "trace.txt"
    assert call.files["document"].body == b"trace\n"
    assert call["caption"] == "here" and sent.caption == "here"
    assert data == b"trace\n"


async def test_raw_requests_json_get_and_unknown_methods(fake_bot_api: FakeBotApi) -> None:
    base = f"{fake_bot_api.base_url}{fake_bot_api.token}"
    async with httpx.AsyncClient() as client:
        as_json = await client.post(f"{base}/sendMessage", json={"chat_id": ALICE, "text": "123"})
        as_form = await client.post(f"{base}/sendMessage", data={"chat_id": "1001", "text": "123"})
        as_get = await client.get(f"{base}/getMe")
        unknown = await client.post(f"{base}/setChatMenuButton", data={"menu_button": '{"type":"commands"}'})
        missing_file = await client.get(f"{fake_bot_api.base_file_url}{fake_bot_api.token}/nope")

    assert as_json.json()["result"]["text"] == "123"
    assert as_form.json()["result"]["text"] == "123"  # a text that looks like JSON stays a string
    assert as_get.json()["result"]["username"] == fake_bot_api.username
    assert unknown.json() == {"ok": True, "result": True}
    assert fake_bot_api.calls("setChatMenuButton")[0]["menu_button"] == {"type": "commands"}
    assert [c.chat_id for c in fake_bot_api.calls("sendMessage")] == [ALICE, ALICE]
    assert missing_file.status_code == 404
    assert [c.http_method for c in fake_bot_api.calls()] == ["POST", "POST", "GET", "POST"]


# ---------------------------------------------------------------------------------------------
# Update builders parse as PTB objects
# ---------------------------------------------------------------------------------------------


def test_entities_count_utf16_units() -> None:
    text = "🙂 /fix@claude_doctor_bot and @claude_doctor_bot"
    assert detect_entities(text) == [
        {"offset": 3, "length": 22, "type": "bot_command"},
        {"offset": 30, "length": 18, "type": "mention"},
    ]


def test_builders_produce_valid_updates(fake_bot_api: FakeBotApi) -> None:
    make = fake_bot_api.make
    bot = Bot(fake_bot_api.token)

    def parse(update: dict[str, Any]) -> Update:
        return Update.de_json(fake_bot_api.push_update(update), bot)

    reply_to = make.group_message("original")
    threaded = parse(make.group_message("/fix", reply_to=reply_to))
    assert threaded.message.reply_to_message.text == "original"
    by_user = parse(make.forwarded_message("x")).message.forward_origin
    assert isinstance(by_user, MessageOriginUser) and by_user.sender_user.first_name == "Bob"
    assert isinstance(
        parse(make.forwarded_message("x", origin="hidden_user")).message.forward_origin, MessageOriginHiddenUser
    )
    assert isinstance(parse(make.forwarded_message("x", origin="channel")).message.forward_origin, MessageOriginChannel)
    photo = parse(make.photo_message("look /fix", chat=make.group_chat())).message
    assert photo.photo[-1].width == 1280 and photo.caption_entities[0].type == "bot_command"
    assert parse(make.sticker_message("🔥")).message.sticker.emoji == "🔥"
    assert parse(make.voice_message(7)).message.voice.mime_type == "audio/ogg"
    assert parse(make.document_message("a.log")).message.document.file_name == "a.log"
    assert parse(make.inline_query("q")).inline_query.query == "q"
    added = parse(make.my_chat_member(old_status="left", new_status="member")).my_chat_member
    assert added.new_chat_member.user.id == fake_bot_api.bot_id
    ids = [u["update_id"] for u in fake_bot_api.pending_updates()]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


# --- fault injection: holds and raw answers -------------------------------------------------------------


async def test_a_held_method_waits_for_release_and_a_client_that_leaves_is_not_recorded(
    fake_bot_api: FakeBotApi,
) -> None:
    url = f"{fake_bot_api.base_url}{fake_bot_api.token}/sendMessage"
    fake_bot_api.hold("sendMessage")
    async with httpx.AsyncClient(timeout=10) as client:
        gone = asyncio.create_task(client.post(url, json={"chat_id": ALICE, "text": "never delivered"}))
        await fake_bot_api.wait_for_held(1)
        gone.cancel()  # the client goes away, as a killed bot does
        with pytest.raises(asyncio.CancelledError):
            await gone
        waiting = asyncio.create_task(client.post(url, json={"chat_id": ALICE, "text": "delivered"}))
        await fake_bot_api.wait_for_held(2)
        assert fake_bot_api.calls("sendMessage") == []
        fake_bot_api.release("sendMessage")
        assert (await waiting).status_code == 200
    assert [c.text for c in fake_bot_api.calls("sendMessage")] == ["delivered"]


async def test_raw_answers_and_resets(fake_bot_api: FakeBotApi) -> None:
    url = f"{fake_bot_api.base_url}{fake_bot_api.token}/getMe"
    fake_bot_api.answer_raw("getMe", 502, b"<html>Bad Gateway</html>")
    fake_bot_api.answer_raw("getMe", 0, b"")
    async with httpx.AsyncClient(timeout=10) as client:
        first = await client.get(url)
        assert (first.status_code, first.content) == (502, b"<html>Bad Gateway</html>")
        with pytest.raises(httpx.TransportError):
            await client.get(url)
        assert (await client.get(url)).json()["ok"] is True
