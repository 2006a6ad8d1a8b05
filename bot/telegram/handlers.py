"""Telegram handlers: turn an update into a call of the conversation (bot/conversation.py) and what it says into
messages, edits and button notices. Every decision is the conversation's; here is only Telegram."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from telegram import ChatMember, InlineQueryResultArticle, InputTextMessageContent, Message, Update
from telegram.constants import ChatType
from telegram.error import BadRequest, NetworkError, TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    InlineQueryHandler,
    MessageHandler,
    filters,
)

from bot.conversation import Conversation, IsAdmin, Sender
from bot.core.replies import split_message
from bot.core.responder import Answer
from bot.telegram.adapter import (
    Context,
    admin_check,
    conversation_of,
    edit_in_place,
    keyboard,
    mentions_bot,
    message_text,
    read_image,
    reply,
    send_answer,
    sender_of,
    without_mention,
)
from bot.telegram.images import image_of
from bot.telegram.jobs import ensure_polling, notifier_of, schedule_purge, stop_polling_if_unwatched
from bot.telegram.ratelimit import ANSWERED

log = logging.getLogger(__name__)


# --- messages ---------------------------------------------------------------------------------------


async def on_private_message(update: Update, context: Context) -> None:
    """Any text, caption or forward in a private chat gets a diagnosis; media without text gets a note."""
    message = update.effective_message
    if message is not None:
        text = message_text(message)
        answer = await conversation_of(context).diagnose(text, sender_of(update))
        await reply(context, answer, message.chat_id, None, message.message_id if text else None)


async def on_group_message(update: Update, context: Context) -> None:
    """In groups: mentions and replies to the bot are asked; anything else may get a sure auto-answer."""
    message, conversation, me = update.effective_message, conversation_of(context), context.bot
    if message is None:
        return
    sender, text, replied = sender_of(update), message_text(message), message.reply_to_message
    if mentions_bot(message, me.username, me.id):
        text, target = without_mention(text, me.username), message
        if not any(ch.isalnum() for ch in text) and replied is not None:
            text, target = message_text(replied), replied  # "@bot" under an error: that error
        answer = await conversation.diagnose(text, sender) if text.strip() else await conversation.fix("", sender)
        await reply(context, answer, message.chat_id, target, target.message_id)
    elif replied is not None and replied.from_user is not None and replied.from_user.id == me.id:
        if text:
            await reply(
                context, await conversation.diagnose(text, sender), message.chat_id, message, message.message_id
            )
    else:
        answer = await conversation.unasked(text, sender)
        await reply(context, answer, message.chat_id, message, message.message_id)


async def on_image(update: Update, context: Context) -> None:
    """A screenshot: read in a private chat or when the caption mentions the bot, else only for a sure
    auto-answer in a group."""
    message, me = update.effective_message, context.bot
    image = image_of(message)
    if message is None or image is None:
        return
    sender, caption = sender_of(update), message_text(message)
    asked = sender.private or mentions_bot(message, me.username, me.id)
    conversation = conversation_of(context)
    if not asked and not await conversation.may_auto_answer(sender):
        return
    read = await read_image(context, image)
    answer = await conversation.image(read, without_mention(caption, me.username), sender, asked=asked)
    await reply(context, answer, message.chat_id, None if sender.private else message, None)


async def on_media(update: Update, context: Context) -> None:
    """Photos, stickers, voice notes and files without a caption, in private chats."""
    message = update.effective_message
    if message is not None:
        await reply(
            context, await conversation_of(context).diagnose("", sender_of(update)), message.chat_id, None, None
        )


async def on_edited_message(update: Update, context: Context) -> None:
    """When a message the bot answered is edited, the bot edits its answer instead of sending a new one."""
    message = update.edited_message
    if message is None:
        return
    text = message_text(message)
    if text.startswith("/"):
        text = text.split(maxsplit=1)[1] if len(text.split(maxsplit=1)) > 1 else ""
    text = without_mention(text, context.bot.username)
    edited = await conversation_of(context).edited(message.chat_id, message.message_id, text, sender_of(update))
    if edited is not None:
        answer_id, answer = edited
        edit = context.bot.edit_message_text
        await edit_in_place(lambda t, **kw: edit(t, chat_id=message.chat_id, message_id=answer_id, **kw), answer)


# --- commands ---------------------------------------------------------------------------------------

Command = Callable[[Conversation, Sender, str, IsAdmin], Awaitable[Answer]]
COMMANDS: dict[str, Command] = {
    "start": lambda c, s, a, admin: c.start(s),
    "help": lambda c, s, a, admin: c.help(s),
    "causes": lambda c, s, a, admin: c.causes(s),
    "lang": lambda c, s, a, admin: c.set_lang(a, s, admin),
    "autoreply": lambda c, s, a, admin: c.autoreply(a, s, admin),
    "status": lambda c, s, a, admin: c.status_page(s),
    "tz": lambda c, s, a, admin: c.tz(a, s),
    "reload": lambda c, s, a, admin: c.reload(s),
    "privacy": lambda c, s, a, admin: c.privacy(s),
    "forget": lambda c, s, a, admin: c.forget(s),
    "stats": lambda c, s, a, admin: c.stats(s),
}


def command_args(message: Message) -> str:
    """What follows the command, from the message's own text (context.args would lose the line breaks)."""
    parts = message_text(message).split(maxsplit=1)
    return parts[1] if len(parts) > 1 else ""


async def on_command(update: Update, context: Context) -> None:
    """A command from COMMANDS: the conversation's answer, in groups as a reply to the command."""
    message = update.effective_message
    if message is None or not message.text:
        return
    name = message.text.split(maxsplit=1)[0][1:].split("@", 1)[0].lower()
    sender = sender_of(update)
    answer = await COMMANDS[name](conversation_of(context), sender, command_args(message), admin_check(update, context))
    await reply(context, answer, message.chat_id, None if sender.private else message, None)


async def cmd_fix(update: Update, context: Context) -> None:
    """/fix as a reply diagnoses the replied-to message (or screenshot); /fix N|name|TEXT as the conversation says."""
    message, conversation = update.effective_message, conversation_of(context)
    if message is None:
        return
    sender, args, target = sender_of(update), command_args(message), message.reply_to_message
    if target is not None and not args and not (target.from_user and target.from_user.id == context.bot.id):
        image = image_of(target)
        if image is not None:
            read = await read_image(context, image)
            answer = await conversation.image(read, message_text(target), sender) or await conversation.diagnose(
                "", sender
            )
        else:
            answer = await conversation.diagnose(message_text(target), sender)
        await reply(context, answer, message.chat_id, target, target.message_id)
        return
    answer = await conversation.fix(args, sender)
    await reply(
        context, answer, message.chat_id, None if sender.private else message, message.message_id if args else None
    )


async def cmd_subscribe(update: Update, context: Context) -> None:
    """/subscribe: incident messages here; the status poll starts if it was not running."""
    message = update.effective_message
    if message is None:
        return
    sender, notifier = sender_of(update), notifier_of(context.application)
    answer = await conversation_of(context).subscribe(sender, admin_check(update, context), notifier)
    ensure_polling(context.application)
    await reply(context, answer, message.chat_id, None if sender.private else message, None)


async def cmd_unsubscribe(update: Update, context: Context) -> None:
    """/unsubscribe: no more incident messages here; the poll stops when nobody is left."""
    message = update.effective_message
    if message is None:
        return
    sender = sender_of(update)
    answer = await conversation_of(context).unsubscribe(sender, admin_check(update, context))
    await stop_polling_if_unwatched(context.application)
    await reply(context, answer, message.chat_id, None if sender.private else message, None)


# --- buttons, inline mode, chat changes ---------------------------------------------------------------


async def on_button(update: Update, context: Context) -> None:
    """A button: the conversation says whether to show an answer (in place or as a reply), a notice, or new buttons."""
    query = update.callback_query
    if query is None:
        return
    message = query.message if isinstance(query.message, Message) else None
    sent_at = message.date if message is not None else None
    pressed = await conversation_of(context).press(query.data or "", sender_of(update), query.from_user.id, sent_at)
    await query.answer(pressed.toast)
    if pressed.buttons is not None:
        try:
            await query.edit_message_reply_markup(reply_markup=keyboard(pressed.buttons))
        except BadRequest as exc:
            log.debug("buttons not changed: %s", exc.message)
    if pressed.answer is not None and (pressed.edit or message is None):
        await edit_in_place(query.edit_message_text, pressed.answer)
    elif pressed.answer is not None and message is not None:
        await send_answer(context, message.chat_id, pressed.answer, message)


async def on_inline_query(update: Update, context: Context) -> None:
    """@bot <error>: the conversation's results as articles to send."""
    query = update.inline_query
    if query is None:
        return
    results = await conversation_of(context).inline(query.query, sender_of(update))
    articles = [
        InlineQueryResultArticle(
            id=r.id[:64],
            title=r.title[:256],
            description=r.description[:256] or None,
            input_message_content=InputTextMessageContent(split_message(r.answer.text)[0]),
            reply_markup=keyboard(r.answer.buttons) if r.id == "none" else None,
        )
        for r in results
    ]
    personal = any(a.reply_markup is not None for a in articles)
    await query.answer(articles[:50], cache_time=60, is_personal=personal)


async def on_membership(update: Update, context: Context) -> None:
    """Forget what the bot kept about a group once it is removed from it."""
    change = update.my_chat_member
    if change is None:
        return
    status = change.new_chat_member.status
    log.info("membership in chat %s is now %s", change.chat.id, status)
    if status in (ChatMember.LEFT, ChatMember.BANNED):
        await conversation_of(context).chat_removed(change.chat.id)
        await stop_polling_if_unwatched(context.application)


async def on_migration(update: Update, context: Context) -> None:
    """A group upgraded to a supergroup gets a new id; Telegram says so in both chats (the second finds nothing)."""
    message = update.effective_message
    if message is not None and message.migrate_to_chat_id:
        await conversation_of(context).chat_moved(message.chat_id, message.migrate_to_chat_id)
    elif message is not None and message.migrate_from_chat_id:
        await conversation_of(context).chat_moved(message.migrate_from_chat_id, message.chat_id)


async def on_error(update: object, context: Context) -> None:
    """Log the failing update's id and the error; a private chat that got nothing gets a short apology, never a
    traceback (after the answer went out, a failure in what follows is the bot's business only)."""
    update_id = update.update_id if isinstance(update, Update) else None
    if ANSWERED.get():
        log.warning("update %s failed after its answer went out: %r", update_id, context.error)
        return
    # A network failure that outlasted the retries needs no traceback; anything else is a bug and gets one.
    trace = None if isinstance(context.error, NetworkError) else context.error
    log.error("update %s failed, its answer is lost: %r", update_id, context.error, exc_info=trace)
    if isinstance(update, Update) and update.effective_chat and update.effective_chat.type == ChatType.PRIVATE:
        try:
            answer = await conversation_of(context).internal_error(sender_of(update))
            await context.bot.send_message(update.effective_chat.id, answer.text)
        except TelegramError:
            log.warning("could not tell chat %s about the failure", update.effective_chat.id)


# --- wiring -----------------------------------------------------------------------------------------

NEW = filters.UpdateType.MESSAGE
TEXTUAL = filters.TEXT | filters.CAPTION
IMAGES = filters.PHOTO | filters.Document.MimeType("image/png") | filters.Document.MimeType("image/jpeg")
IMAGES = IMAGES | filters.Document.MimeType("image/webp")
MEDIA = filters.PHOTO | filters.Sticker.ALL | filters.VOICE | filters.AUDIO | filters.VIDEO | filters.Document.ALL


def register(application: Application) -> None:  # type: ignore[type-arg]
    """Add every handler to the application, most specific first, and the hourly purge."""
    private, groups = filters.ChatType.PRIVATE, filters.ChatType.GROUPS
    for name in COMMANDS:
        application.add_handler(CommandHandler(name, on_command, filters=NEW))
    for name, callback in (("fix", cmd_fix), ("subscribe", cmd_subscribe), ("unsubscribe", cmd_unsubscribe)):
        application.add_handler(CommandHandler(name, callback, filters=NEW))
    application.add_handler(MessageHandler(filters.UpdateType.EDITED_MESSAGE & TEXTUAL, on_edited_message))
    # Reading a screenshot takes about a second; it holds up only its own chat (the update processor runs chats
    # side by side), and the OCR service's queue limit bounds how many wait.
    application.add_handler(MessageHandler(NEW & IMAGES, on_image))
    application.add_handler(MessageHandler(NEW & private & TEXTUAL & ~filters.COMMAND, on_private_message))
    application.add_handler(MessageHandler(NEW & private & MEDIA, on_media))
    application.add_handler(MessageHandler(NEW & groups & TEXTUAL & ~filters.COMMAND, on_group_message))
    application.add_handler(CallbackQueryHandler(on_button))
    application.add_handler(InlineQueryHandler(on_inline_query))
    application.add_handler(ChatMemberHandler(on_membership, ChatMemberHandler.MY_CHAT_MEMBER))
    application.add_handler(MessageHandler(filters.StatusUpdate.MIGRATE, on_migration))
    application.add_error_handler(on_error)
    schedule_purge(application)
