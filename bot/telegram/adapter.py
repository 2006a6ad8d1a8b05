"""Between Telegram and the conversation: who sent an update and what text it carries, checking admin rights,
downloading a screenshot, and sending what the conversation said (split under Telegram's limit, with buttons)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, MessageEntity, ReplyParameters, Update
from telegram.constants import ChatMemberStatus, ChatType
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import Application, ContextTypes

from bot.conversation import Conversation, ImageText, IsAdmin, Sender
from bot.core.replies import split_message
from bot.core.responder import Answer, Button
from bot.notifier import StatusNotifier
from bot.telegram.images import MAX_DOWNLOAD, ImageRef

log = logging.getLogger(__name__)
Context = ContextTypes.DEFAULT_TYPE


def conversation_of(context: Context) -> Conversation:
    return context.application.bot_data["conversation"]


def notifier_of(application: Application) -> StatusNotifier | None:  # type: ignore[type-arg]
    return application.bot_data.get("notifier")


def sender_of(update: Update) -> Sender:
    """Who wrote and where, as the conversation needs it (an inline query has no chat: it is the user's own)."""
    chat, user, message = update.effective_chat, update.effective_user, update.effective_message
    automated = message is not None and (
        (message.from_user is not None and message.from_user.is_bot)
        or message.via_bot is not None
        or bool(message.is_automatic_forward)
    )
    return Sender(
        chat_id=chat.id if chat is not None else (user.id if user is not None else 0),
        user_id=user.id if user is not None else None,
        private=chat is None or chat.type == ChatType.PRIVATE,
        client_lang=user.language_code if user is not None else None,
        automated=automated,
    )


def admin_check(update: Update, context: Context) -> IsAdmin:
    """Whether the sender may change a group's settings, asked only when needed (anonymous admins post as the
    group itself)."""

    async def check() -> bool:
        chat, message, user = update.effective_chat, update.effective_message, update.effective_user
        if chat is None or message is None:
            return False
        if message.sender_chat is not None and message.sender_chat.id == chat.id:
            return True
        if user is None:
            return False
        try:
            member = await context.bot.get_chat_member(chat.id, user.id)
        except TelegramError as exc:
            log.warning("could not check admin rights in chat %s: %s", chat.id, exc)
            return False
        return member.status in (ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.OWNER)

    return check


def keyboard(buttons: tuple[tuple[Button, ...], ...]) -> InlineKeyboardMarkup | None:
    rows = [[InlineKeyboardButton(b.label, callback_data=b.data) for b in row] for row in buttons if row]
    return InlineKeyboardMarkup(rows) if rows else None


def message_text(message: Message | None) -> str:
    """The text a message carries: its text or its caption."""
    return (message.text or message.caption or "") if message is not None else ""


async def send_answer(context: Context, chat_id: int, answer: Answer, reply_to: Message | None) -> Message | None:
    """Send an answer (split under Telegram's limit) replying to `reply_to`; None if the chat is closed to us."""
    first: Message | None = None
    parts = split_message(answer.text)
    for n, part in enumerate(parts):
        try:
            sent = await context.bot.send_message(
                chat_id,
                part,
                message_thread_id=reply_to.message_thread_id if reply_to and reply_to.is_topic_message else None,
                # A deleted error message must not stop the answer: it then goes out without the quote.
                reply_parameters=ReplyParameters(reply_to.message_id, allow_sending_without_reply=True)
                if reply_to is not None and n == 0
                else None,
                reply_markup=keyboard(answer.buttons) if n == len(parts) - 1 else None,
            )
        except Forbidden as exc:
            log.info("chat %s is closed to the bot (%s); answer dropped", chat_id, exc.message)
            return None
        first = first or sent
    return first


async def reply(context: Context, answer: Answer | None, chat_id: int, to: Message | None, about: int | None) -> None:
    """Send the answer; when it answers message `about`, remember that so an edit of it edits the answer."""
    if answer is None:
        return
    sent = await send_answer(context, chat_id, answer, to)
    if sent is not None and about is not None:
        await conversation_of(context).remember(chat_id, about, sent.message_id)


async def edit_in_place(edit: Callable[..., Awaitable[object]], answer: Answer) -> None:
    try:
        await edit(split_message(answer.text)[0], reply_markup=keyboard(answer.buttons))
    except BadRequest as exc:
        # "message is not modified" (same answer) and "message to edit not found" (deleted) need nothing more.
        log.debug("answer not edited in: %s", exc.message)


async def read_image(context: Context, image: ImageRef) -> ImageText:
    """Download an image and have the conversation read it; Telegram refusing the file is 'too large'."""
    conversation = conversation_of(context)
    if conversation.ocr is None:
        return ImageText(problem="image_not_enabled")
    if image.size is not None and image.size > MAX_DOWNLOAD:
        return ImageText(problem="image_too_large")
    try:
        data = bytes(await (await context.bot.get_file(image.file_id)).download_as_bytearray())
    except BadRequest as exc:
        log.info("image %s not downloaded: %s", image.file_id, exc.message)
        return ImageText(problem="image_too_large")
    return await conversation.read_image(data)


def mentions_bot(message: Message, username: str, bot_id: int) -> bool:
    """Whether the message @-mentions this bot (by username or as a text mention)."""
    for entity, value in message.parse_entities([MessageEntity.MENTION, MessageEntity.TEXT_MENTION]).items():
        if entity.type == MessageEntity.TEXT_MENTION and entity.user and entity.user.id == bot_id:
            return True
        if entity.type == MessageEntity.MENTION and value.lstrip("@").lower() == username.lower():
            return True
    return any(v.lstrip("@").lower() == username.lower() for v in message.parse_caption_entities(["mention"]).values())


def without_mention(text: str, username: str) -> str:
    return text.replace(f"@{username}", " ").replace(f"@{username.lower()}", " ").strip()
