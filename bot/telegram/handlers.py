"""Telegram handlers: turn an update into text for the responder and its answer into a message, nothing more."""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from telegram import (
    Chat,
    ChatMember,
    ChatMemberUpdated,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQueryResultArticle,
    InputTextMessageContent,
    Message,
    MessageEntity,
    ReplyParameters,
    Update,
)
from telegram.constants import ChatMemberStatus, ChatType
from telegram.error import BadRequest, Forbidden, NetworkError, TelegramError
from telegram.ext import (
    Application,
    CallbackContext,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    InlineQueryHandler,
    MessageHandler,
    filters,
)

from bot.cooldown import Cooldown
from bot.core.knowledge import KnowledgeError, base_lang, knowledge_version, load_knowledge
from bot.core.live import LIVE_WAIT, user_zone, wants_status
from bot.core.matcher import Diagnosis, Matcher
from bot.core.notify import Backoff, Event, diff
from bot.core.peak import resolve_tz
from bot.core.replies import localize, reply_lang_of, resolve_lang, split_message
from bot.core.responder import CAUSE_BUTTON, CAUSES_BUTTON, TRIAGE_BUTTON, Answer, Button, Responder, TriagePick
from bot.services.ledger import UNRECOGNISED, Ledger
from bot.services.metrics import DIAGNOSES, OCR_SECONDS, STATUS_ERRORS
from bot.services.ocr import ImageRejected, OcrService, OcrUnavailable
from bot.services.status import StatusClient, StatusError
from bot.services.storage import Storage, Subscription
from bot.telegram.images import MAX_DOWNLOAD, ImageRef, ImageText, image_of
from bot.telegram.ratelimit import ANSWERED

log = logging.getLogger(__name__)
# Feedback buttons: "fb:<answer id>:up|down", then "fb:<answer id>:is:<cause|none>" for what it was.
FEEDBACK_BUTTON = "fb:"
INLINE_QUERY_LIMIT = 256
POLL_JOB = "status-poll"


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Doctor:
    """What the handlers share: the responder (HTML), the settings store, the auto-reply cooldown, the status
    page client (None when STATUS_PAGE_URL is empty), the wall clock and the status poll's backoff."""

    responder: Responder
    storage: Storage
    cooldown: Cooldown = field(default_factory=Cooldown)
    status: StatusClient | None = None
    now: Callable[[], datetime] = _utcnow
    # The longest a diagnosis waits for the status page before going out without the status line.
    live_wait: float = LIVE_WAIT
    backoff: Backoff = field(default_factory=Backoff)
    # One poll at a time: the job and a test (or a slow poll and the next) must not diff the same state twice.
    poll_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Reads screenshots (None without the OCR extra: images then get a "paste the text" answer).
    ocr: OcrService | None = None
    # Who may use the operators' commands (/reload, /stats).
    operator_ids: frozenset[int] = frozenset()
    # The operator's record (answers, feedback, misses); None keeps nothing.
    ledger: Ledger | None = None
    misses_days: int = 30
    # The content hash of the knowledge base in use, recorded with every answer.
    kb_version: str = ""

    async def reload_knowledge(self) -> list[str]:
        """Load the knowledge base again from its folder and swap it in at once; if it has problems, keep the one
        in use and return them (each with file and line). Loading runs in a thread: answers go on meanwhile."""
        directory = self.responder.kb.directory
        try:
            matcher = await asyncio.to_thread(lambda: Matcher(load_knowledge(directory)))
        except KnowledgeError as exc:
            for problem in exc.problems:
                log.error("knowledge base not reloaded, the old one stays: %s", problem)
            return exc.problems
        self.responder = Responder(matcher, self.responder.markup)
        self.kb_version = knowledge_version(directory)
        log.info("knowledge base reloaded from %s (version %s)", directory, self.kb_version)
        return []


def doctor_of(context: ContextTypes.DEFAULT_TYPE) -> Doctor:
    return context.application.bot_data["doctor"]


# --- language and helpers ---------------------------------------------------------------------------


def user_lang(doctor: Doctor, update: Update) -> str:
    """The language to answer in: the user's /lang choice in private chats, the group's /lang in groups,
    else the sender's Telegram language."""
    chat = update.effective_chat
    user = update.effective_user
    if chat is not None and chat.type != ChatType.PRIVATE:
        chosen = doctor.storage.chat(chat.id).lang
        if chosen:
            return chosen
    elif user is not None:
        chosen = doctor.storage.user_lang(user.id)
        if chosen:
            return chosen
    return resolve_lang(user.language_code if user else None)


def user_tz(doctor: Doctor, update: Update, lang: str) -> ZoneInfo:
    """The sender's time zone: their /tz choice, else the default for the answer's language."""
    user = update.effective_user
    return user_zone(doctor.storage.user_tz(user.id) if user else None, lang)


async def live_answer(
    doctor: Doctor, update: Update, answer: Answer, lang: str, *, max_wait: float | None = None
) -> Answer:
    """The answer with its live lines: the status page's view (waited for at most `max_wait` seconds, default
    doctor.live_wait, else left out) and the peak-hours line, in the sender's time zone."""
    d = answer.diagnosis
    if not answer.undecided and (d is None or d.cause is None):
        return answer
    wait = doctor.live_wait if max_wait is None else max_wait
    wanted = answer.undecided or (d is not None and wants_status(d))
    summary = await doctor.status.peek(wait) if doctor.status is not None and wanted else None
    return doctor.responder.with_live(answer, lang, summary, doctor.now(), user_tz(doctor, update, lang))


async def diagnose(doctor: Doctor, update: Update, text: str, lang: str, *, strict: bool = False) -> Answer:
    """The diagnosis of `text` with its live lines, in the text's own language when it is clear (else `lang`); in
    a group, any triage questions are for the sender only."""
    lang = reply_lang_of(text) or lang
    answer = doctor.responder.diagnosis(text, lang, strict=strict, asker=group_asker(update))
    if answer.asks_status and doctor.status is not None:
        return await status_answer(doctor, update, lang)
    answer = await live_answer(doctor, update, answer, lang)
    user = update.effective_user
    how = "group" if group_asker(update) is not None else "private"
    return await with_feedback(doctor, answer, lang, how, text=text, user_id=user.id if user else None)


async def with_feedback(
    doctor: Doctor, answer: Answer, lang: str, how: str, *, text: str | None = None, user_id: int | None = None
) -> Answer:
    """Record the answer (with the text of a message addressed to the bot, to keep as a miss if it goes wrong) and
    put 👍 / 👎 under a diagnosis."""
    d = answer.diagnosis
    # A triage is the matcher not recognising the text: it is counted and kept as a miss, under its own buttons.
    triage = d is None and any(b.data.startswith(TRIAGE_BUTTON) for row in answer.buttons for b in row)
    if d is None and not triage:
        return answer
    d = d or Diagnosis(cause=None, confidence=0.0, evidence="guided triage")
    DIAGNOSES.labels(d.cause or d.known or UNRECOGNISED, how).inc()
    if doctor.ledger is None:
        return answer
    diagnosis_id = await doctor.storage.write(
        doctor.ledger.record,
        d,
        lang=lang,
        how=how,
        kb_version=doctor.kb_version,
        now=doctor.now(),
        text=text,
        user_id=user_id,
    )
    if diagnosis_id is None or triage:
        return answer
    row = (Button("👍", f"{FEEDBACK_BUTTON}{diagnosis_id}:up"), Button("👎", f"{FEEDBACK_BUTTON}{diagnosis_id}:down"))
    return replace(answer, buttons=(*answer.buttons, row))


def group_asker(update: Update) -> int | None:
    """The sender's user id in a group (whose triage buttons only they may press), None in a private chat."""
    chat, user = update.effective_chat, update.effective_user
    if chat is None or user is None or chat.type == ChatType.PRIVATE:
        return None
    return user.id


async def read_image(context: ContextTypes.DEFAULT_TYPE, doctor: Doctor, image: ImageRef) -> ImageText:
    """Download an image and read its text; every failure becomes the key of a message for the user."""
    if doctor.ocr is None:
        return ImageText(problem="image_not_enabled")
    if image.size is not None and image.size > MAX_DOWNLOAD:
        return ImageText(problem="image_too_large")
    try:
        file = await context.bot.get_file(image.file_id)
        data = bytes(await file.download_as_bytearray())
        with OCR_SECONDS.time():
            text = await doctor.ocr.read(data)
    except ImageRejected as exc:
        log.info("image %s refused: %s", image.file_id, exc)
        return ImageText(problem=f"image_{exc.reason}")
    except OcrUnavailable as exc:
        log.warning("OCR unavailable: %s", exc)
        return ImageText(problem="image_not_enabled")
    except BadRequest as exc:
        # "file is too big" and friends: Telegram refuses to serve the file.
        log.info("image %s not downloaded: %s", image.file_id, exc.message)
        return ImageText(problem="image_too_large")
    if not text.strip():
        return ImageText(problem="image_no_text")
    return ImageText(text=text)


async def image_answer(
    context: ContextTypes.DEFAULT_TYPE,
    doctor: Doctor,
    update: Update,
    image: ImageRef,
    caption: str,
    lang: str,
    *,
    strict: bool = False,
) -> Answer | None:
    """The diagnosis of an image (with its caption), noting that it was read from the image; a refusal when it
    can't be read, or None when nobody asked (strict) and there is nothing sure to say."""
    read = await read_image(context, doctor, image)
    if read.problem is not None:
        if strict:
            return None
        if caption.strip():
            # The caption may be enough on its own.
            return await diagnose(doctor, update, caption, lang)
        return doctor.responder.say(read.problem, lang, limit=MAX_DOWNLOAD // 2**20)
    text = f"{caption}\n{read.text}".strip()
    answer = doctor.responder.diagnosis(text, lang, strict=strict, image=True)
    if strict and (answer.diagnosis is None or not answer.diagnosis.matched):
        return None
    answer = await live_answer(doctor, update, answer, lang)
    note = doctor.responder.say("image_read_note", lang).text
    return Answer(f"{note}\n{answer.text}", answer.buttons, answer.diagnosis)


def keyboard(buttons: tuple[tuple[Button, ...], ...]) -> InlineKeyboardMarkup | None:
    rows = [[InlineKeyboardButton(b.label, callback_data=b.data) for b in row] for row in buttons if row]
    return InlineKeyboardMarkup(rows) if rows else None


def message_text(message: Message | None) -> str:
    """The text a message carries: its text or its caption."""
    if message is None:
        return ""
    return message.text or message.caption or ""


def thread_of(message: Message) -> int | None:
    """The forum topic to answer in (None outside topics)."""
    return message.message_thread_id if message.is_topic_message else None


async def send_answer(
    context: ContextTypes.DEFAULT_TYPE, chat_id: int, answer: Answer, reply_to: Message | None
) -> Message | None:
    """Send an answer (split under Telegram's limit) replying to `reply_to`; None if the chat is closed to us."""
    parts = split_message(answer.text)
    first: Message | None = None
    for n, part in enumerate(parts):
        last = n == len(parts) - 1
        try:
            sent = await context.bot.send_message(
                chat_id,
                part,
                message_thread_id=thread_of(reply_to) if reply_to else None,
                # A deleted error message must not stop the answer: it then goes out without the quote.
                reply_parameters=ReplyParameters(reply_to.message_id, allow_sending_without_reply=True)
                if reply_to is not None and n == 0
                else None,
                reply_markup=keyboard(answer.buttons) if last else None,
            )
        except Forbidden as exc:
            log.info("chat %s is closed to the bot (%s); answer dropped", chat_id, exc.message)
            return None
        first = first or sent
    return first


def mentions_bot(message: Message, username: str, bot_id: int) -> bool:
    """Whether the message @-mentions this bot (by username or as a text mention)."""
    for entity, value in message.parse_entities([MessageEntity.MENTION, MessageEntity.TEXT_MENTION]).items():
        if entity.type == MessageEntity.TEXT_MENTION and entity.user and entity.user.id == bot_id:
            return True
        if entity.type == MessageEntity.MENTION and value.lstrip("@").lower() == username.lower():
            return True
    for value in message.parse_caption_entities([MessageEntity.MENTION]).values():
        if value.lstrip("@").lower() == username.lower():
            return True
    return False


def without_mention(text: str, username: str) -> str:
    return text.replace(f"@{username}", " ").replace(f"@{username.lower()}", " ").strip()


async def is_admin(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    """Whether the sender may change a group's settings (anonymous admins post as the group itself)."""
    chat = update.effective_chat
    message = update.effective_message
    if chat is None or message is None:
        return False
    if message.sender_chat is not None and message.sender_chat.id == chat.id:
        return True
    user = update.effective_user
    if user is None:
        return False
    try:
        member = await context.bot.get_chat_member(chat.id, user.id)
    except TelegramError as exc:
        log.warning("could not check admin rights in chat %s: %s", chat.id, exc)
        return False
    return member.status in (ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.OWNER)


def is_group(chat: Chat | None) -> bool:
    return chat is not None and chat.type in (ChatType.GROUP, ChatType.SUPERGROUP)


# --- commands ---------------------------------------------------------------------------------------


def _asked(
    update: Update, context: ContextTypes.DEFAULT_TYPE
) -> tuple[Doctor, Message, Chat, str, Message | None] | None:
    """What a command handler starts from: the shared state, the message and chat, the reply language, and the
    message to reply to (the command itself in groups, nothing in private chats); None for updates without them."""
    doctor = doctor_of(context)
    message = update.effective_message
    chat = update.effective_chat
    if message is None or chat is None:
        return None
    return doctor, message, chat, user_lang(doctor, update), message if is_group(chat) else None


async def cmd_start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    doctor = doctor_of(context)
    message = update.effective_message
    if message is not None:
        await send_answer(context, message.chat_id, doctor.responder.start(user_lang(doctor, update)), None)


async def _page(update: Update, context: ContextTypes.DEFAULT_TYPE, page: Callable[[Responder, str], Answer]) -> None:
    """Send a fixed page (help, causes): in groups as a reply to the command."""
    doctor = doctor_of(context)
    message = update.effective_message
    if message is not None:
        reply_to = message if is_group(update.effective_chat) else None
        await send_answer(context, message.chat_id, page(doctor.responder, user_lang(doctor, update)), reply_to)


async def cmd_help(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await _page(update, context, Responder.help)


async def cmd_causes(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await _page(update, context, Responder.causes)


async def cmd_fix(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/fix as a reply diagnoses the replied-to message; /fix N|name shows a fix; /fix TEXT diagnoses TEXT."""
    doctor = doctor_of(context)
    message = update.effective_message
    if message is None:
        return
    lang = user_lang(doctor, update)
    args = " ".join(context.args or [])
    target = message.reply_to_message
    if target is not None and not args and not (target.from_user and target.from_user.id == context.bot.id):
        text = message_text(target)
        image = image_of(target)
        if image is not None:
            answer = await image_answer(context, doctor, update, image, text, lang) or doctor.responder.media(lang)
        else:
            answer = await diagnose(doctor, update, text, lang) if text else doctor.responder.media(lang)
        sent = await send_answer(context, message.chat_id, answer, target)
        if sent is not None:
            await doctor.storage.write(
                doctor.storage.remember_answer, message.chat_id, target.message_id, sent.message_id
            )
        return
    # The command's own text, not context.args: that keeps the user's line breaks.
    full = message_text(message)
    rest = full.split(maxsplit=1)[1] if len(full.split(maxsplit=1)) > 1 else ""
    answer = await live_answer(doctor, update, doctor.responder.fix(rest, lang), lang)
    reply_to = message if is_group(update.effective_chat) else None
    sent = await send_answer(context, message.chat_id, answer, reply_to)
    if sent is not None and rest:
        await doctor.storage.write(doctor.storage.remember_answer, message.chat_id, message.message_id, sent.message_id)


async def cmd_lang(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/lang zh|en: the user's language in private chats, the group's (admins only) in groups."""
    doctor = doctor_of(context)
    message = update.effective_message
    chat = update.effective_chat
    if message is None or chat is None:
        return
    choice = (context.args or [""])[0].lower()
    lang = user_lang(doctor, update)
    reply_to = message if is_group(chat) else None
    if choice not in ("zh", "en", "zh-hant"):
        await send_answer(context, chat.id, doctor.responder.say("lang_usage", lang), reply_to)
        return
    if is_group(chat):
        if not await is_admin(update, context):
            await send_answer(context, chat.id, doctor.responder.say("admins_only", lang), reply_to)
            return
        await doctor.storage.write(doctor.storage.set_chat_lang, chat.id, choice)
        await send_answer(context, chat.id, doctor.responder.say("group_lang_set", choice), reply_to)
        return
    if update.effective_user is not None:
        await doctor.storage.write(doctor.storage.set_user_lang, update.effective_user.id, choice)
    await send_answer(context, chat.id, doctor.responder.say("lang_set", choice), None)


async def cmd_autoreply(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/autoreply on|off, for group admins."""
    doctor = doctor_of(context)
    message = update.effective_message
    chat = update.effective_chat
    if message is None or chat is None:
        return
    lang = user_lang(doctor, update)
    if not is_group(chat):
        await send_answer(context, chat.id, doctor.responder.say("private_only", lang), None)
        return
    choice = (context.args or [""])[0].lower()
    if choice not in ("on", "off"):
        state = doctor.responder.say("state_on" if doctor.storage.chat(chat.id).autoreply else "state_off", lang).text
        await send_answer(context, chat.id, doctor.responder.say("autoreply_usage", lang, state=state), message)
        return
    if not await is_admin(update, context):
        await send_answer(context, chat.id, doctor.responder.say("admins_only", lang), message)
        return
    await doctor.storage.write(doctor.storage.set_autoreply, chat.id, choice == "on")
    await send_answer(context, chat.id, doctor.responder.say(f"autoreply_{choice}", lang), message)


async def cmd_status(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/status: Claude's status page as it is now, times in the sender's zone."""
    asked = _asked(update, context)
    if asked is None:
        return
    doctor, _message, chat, lang, reply_to = asked
    if doctor.status is None:
        await send_answer(context, chat.id, doctor.responder.say("status_off", lang), reply_to)
        return
    await send_answer(context, chat.id, await status_answer(doctor, update, lang), reply_to)


async def status_answer(doctor: Doctor, update: Update, lang: str) -> Answer:
    """Claude's status page as it is now, times in the sender's zone (the status client must be on)."""
    assert doctor.status is not None
    live = doctor.responder.live
    try:
        summary = await doctor.status.get()
    except StatusError as exc:
        STATUS_ERRORS.inc()
        return Answer(live.status_unavailable(str(exc), doctor.status.base_url, lang))
    return Answer(live.status_page(summary, doctor.status.base_url, doctor.now(), user_tz(doctor, update, lang), lang))


def is_operator(doctor: Doctor, update: Update) -> bool:
    """Whether the sender is one of OPERATOR_IDS."""
    user = update.effective_user
    return user is not None and user.id in doctor.operator_ids


async def cmd_reload(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/reload (operators only): load the knowledge base again without a restart, as SIGHUP does."""
    asked = _asked(update, context)
    if asked is None:
        return
    doctor, _message, chat, lang, reply_to = asked
    if not is_operator(doctor, update):
        await send_answer(context, chat.id, doctor.responder.say("operators_only", lang), reply_to)
        return
    problems = await doctor.reload_knowledge()
    if problems:
        text = "\n".join([doctor.responder.say("reload_failed", lang).text, *(html.escape(p) for p in problems)])
        await send_answer(context, chat.id, Answer(text), reply_to)
        return
    version = knowledge_version(doctor.responder.kb.directory)
    await send_answer(context, chat.id, doctor.responder.say("reload_done", lang, version=version), reply_to)


async def cmd_tz(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/tz [IANA name]: show or set the sender's time zone (per user, in private chats and groups alike)."""
    doctor = doctor_of(context)
    message = update.effective_message
    chat = update.effective_chat
    user = update.effective_user
    if message is None or chat is None:
        return
    lang = user_lang(doctor, update)
    reply_to = message if is_group(chat) else None
    live = doctor.responder.live
    name = " ".join(context.args or []).strip()
    if not name or user is None:
        text = live.tz_answer("tz_show", doctor.now(), user_tz(doctor, update, lang), lang)
    else:
        try:
            zone = resolve_tz(name)
        except ValueError:
            text = live.tz_unknown(name, lang)
        else:
            await doctor.storage.write(doctor.storage.set_user_tz, user.id, zone.key)
            text = live.tz_answer("tz_set", doctor.now(), zone, lang)
    await send_answer(context, chat.id, Answer(text), reply_to)


async def cmd_subscribe(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/subscribe: incident messages in this chat (anyone in a private chat, admins in groups)."""
    asked = _asked(update, context)
    if asked is None:
        return
    doctor, _message, chat, lang, reply_to = asked
    if doctor.status is None:
        await send_answer(context, chat.id, doctor.responder.say("status_off", lang), reply_to)
        return
    if is_group(chat) and not await is_admin(update, context):
        await send_answer(context, chat.id, doctor.responder.say("admins_only", lang), reply_to)
        return
    user = update.effective_user
    # A group's messages use the zone of the admin who subscribed it; a private chat's follow the user's /tz.
    tz_name = doctor.storage.user_tz(user.id) if user is not None else None
    if await doctor.storage.write(doctor.storage.subscribe, chat.id, lang, tz_name) is False:
        await send_answer(context, chat.id, doctor.responder.say("sub_already", lang), reply_to)
        return
    ensure_polling(context.application)
    answer = doctor.responder.say("sub_done", lang)
    summary = await doctor.status.peek(doctor.live_wait)
    if summary is not None:
        async with doctor.poll_lock:
            # The first subscriber's view is the baseline: what is open now is not news to announce later.
            if doctor.storage.seen_incidents() is None:
                await doctor.storage.write(doctor.storage.save_seen, diff(None, summary)[1])
        line = doctor.responder.live.status_line(summary, doctor.now(), user_tz(doctor, update, lang), lang)
        answer = Answer(f"{answer.text}\n\n{line}")
    await send_answer(context, chat.id, answer, reply_to)


async def cmd_unsubscribe(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/unsubscribe: no more incident messages here (admins only in groups)."""
    asked = _asked(update, context)
    if asked is None:
        return
    doctor, _message, chat, lang, reply_to = asked
    if is_group(chat) and not await is_admin(update, context):
        await send_answer(context, chat.id, doctor.responder.say("admins_only", lang), reply_to)
        return
    removed = await doctor.storage.write(doctor.storage.unsubscribe, chat.id)
    await stop_polling_if_unwatched(context.application)
    key = "unsub_done" if removed else "unsub_not_subscribed"
    await send_answer(context, chat.id, doctor.responder.say(key, lang), reply_to)


# --- status notifications ---------------------------------------------------------------------------


def ensure_polling(application: Application) -> None:  # type: ignore[type-arg]
    """Schedule the status poll unless it is scheduled already (or there is no status page or job queue)."""
    doctor: Doctor = application.bot_data["doctor"]
    jobs = application.job_queue
    if doctor.status is None or jobs is None:
        return
    if not jobs.get_jobs_by_name(POLL_JOB):
        jobs.run_once(poll_job, when=doctor.backoff.delay, name=POLL_JOB)


async def stop_polling_if_unwatched(application: Application) -> None:  # type: ignore[type-arg]
    """With nobody subscribed: stop polling and forget the incidents seen, so a later first subscriber starts
    from a fresh baseline instead of hearing about incidents that ended while nobody listened."""
    doctor: Doctor = application.bot_data["doctor"]
    if doctor.storage.subscription_count():
        return
    if application.job_queue is not None:
        for job in application.job_queue.get_jobs_by_name(POLL_JOB):
            job.schedule_removal()
    doctor.backoff.succeeded()
    await doctor.storage.write(doctor.storage.reset_seen)


async def poll_job(context: CallbackContext) -> None:  # type: ignore[type-arg]
    """The job: one poll, then the next one, later after a failure, while anybody is subscribed."""
    application = context.application
    doctor: Doctor = application.bot_data["doctor"]
    ok = await poll_once(application)
    delay = doctor.backoff.succeeded() if ok else doctor.backoff.failed()
    if not ok:
        log.info("status poll failed; next try in %.0f s", delay)
    if doctor.storage.subscription_count():
        # A /subscribe during this poll may have scheduled one already (this job was no longer listed).
        if application.job_queue is not None and not application.job_queue.get_jobs_by_name(POLL_JOB):
            application.job_queue.run_once(poll_job, when=delay, name=POLL_JOB)
    else:
        await stop_polling_if_unwatched(application)


async def poll_once(application: Application) -> bool:  # type: ignore[type-arg]
    """Read the status page once and send each subscribed chat one message per change; False if the page
    could not be read."""
    doctor: Doctor = application.bot_data["doctor"]
    if doctor.status is None:
        return False
    async with doctor.poll_lock:
        try:
            summary = await doctor.status.get()
        except StatusError as exc:
            STATUS_ERRORS.inc()
            log.info("status poll: %s", exc)
            return False
        events, seen = diff(doctor.storage.seen_incidents(), summary)
        # Remembered before sending: a crash halfway may drop a message but a restart never repeats one.
        await doctor.storage.write(doctor.storage.save_seen, seen)
        for event in events:
            for subscription in doctor.storage.subscriptions():
                await notify(application, doctor, subscription, event)
    return True


async def notify(application: Application, doctor: Doctor, subscription: Subscription, event: Event) -> None:  # type: ignore[type-arg]
    """Send one chat the message about one event; a chat that blocked or removed the bot is unsubscribed."""
    chat_id = subscription.chat_id
    if chat_id > 0:  # a private chat: the user's current /lang and /tz win over those saved at /subscribe
        lang = doctor.storage.user_lang(chat_id) or subscription.lang
        tz = user_zone(doctor.storage.user_tz(chat_id) or subscription.tz, lang)
    else:
        lang = doctor.storage.chat(chat_id).lang or subscription.lang
        tz = user_zone(subscription.tz, lang)
    text = doctor.responder.live.event(event, doctor.now(), tz, lang)
    for part in split_message(text):
        try:
            await application.bot.send_message(chat_id, part)
        except Forbidden as exc:
            log.info("chat %s is closed to the bot (%s); unsubscribed", chat_id, exc.message)
            await doctor.storage.write(doctor.storage.unsubscribe, chat_id)
            return
        except TelegramError as exc:
            log.warning("incident message to chat %s failed: %s", chat_id, exc)
            return


# --- messages ---------------------------------------------------------------------------------------


async def on_private_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Any text, caption or forward in a private chat gets a diagnosis; media without text gets a note."""
    doctor = doctor_of(context)
    message = update.effective_message
    if message is None:
        return
    lang = user_lang(doctor, update)
    text = message_text(message)
    answer = await diagnose(doctor, update, text, lang) if text else doctor.responder.media(lang)
    sent = await send_answer(context, message.chat_id, answer, None)
    if sent is not None and text:
        await doctor.storage.write(doctor.storage.remember_answer, message.chat_id, message.message_id, sent.message_id)


async def on_group_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """In groups: answer mentions and replies to the bot; auto-answer only sure errors, with a cooldown."""
    doctor = doctor_of(context)
    message = update.effective_message
    chat = update.effective_chat
    if message is None or chat is None:
        return
    lang = user_lang(doctor, update)
    me = context.bot
    text = message_text(message)
    replied = message.reply_to_message
    if mentions_bot(message, me.username, me.id):
        text = without_mention(text, me.username)
        target = message
        if not any(ch.isalnum() for ch in text) and replied is not None:
            text, target = message_text(replied), replied
        if text.strip():
            answer = await diagnose(doctor, update, text, lang)
        else:
            answer = doctor.responder.say("ask_for_error", lang)
        sent = await send_answer(context, chat.id, answer, target)
        if sent is not None:
            await doctor.storage.write(doctor.storage.remember_answer, chat.id, target.message_id, sent.message_id)
        return
    if replied is not None and replied.from_user is not None and replied.from_user.id == me.id:
        if text:
            sent = await send_answer(context, chat.id, await diagnose(doctor, update, text, lang), message)
            if sent is not None:
                await doctor.storage.write(doctor.storage.remember_answer, chat.id, message.message_id, sent.message_id)
        return
    await auto_answer(update, context, doctor, message, text, lang)


def may_auto_answer(doctor: Doctor, message: Message) -> bool:
    """Whether an answer nobody asked for may go to this group message at all: never to bots or messages sent
    via one, never to a channel's automatic forward, and only where the group's auto-answers are on."""
    if (message.from_user is not None and message.from_user.is_bot) or message.via_bot is not None:
        return False
    return not message.is_automatic_forward and doctor.storage.chat(message.chat_id).autoreply


async def claim_cooldown(doctor: Doctor, chat_id: int, answer: Answer | None) -> bool:
    """Whether this sure answer may go out now: at most once per cause per chat per cooldown (claimed if so, and
    kept in the store so a restart does not repeat it)."""
    d = answer.diagnosis if answer is not None else None
    if d is None or not d.matched:
        return False
    key = d.cause or d.known or ""
    if not doctor.cooldown.ready(chat_id, key):
        log.debug("auto-answer about %s in chat %s held back by the cooldown", key, chat_id)
        return False
    at = doctor.cooldown.mark(chat_id, key)
    await doctor.storage.write(doctor.storage.save_cooldown, chat_id, key, at)
    return True


async def auto_answer(
    update: Update, context: ContextTypes.DEFAULT_TYPE, doctor: Doctor, message: Message, text: str, lang: str
) -> None:
    """The unasked answer: strict confidence, never to bots, at most once per cause per chat per cooldown."""
    if not text or not may_auto_answer(doctor, message):
        return
    lang = reply_lang_of(text) or lang
    answer = doctor.responder.diagnosis(text, lang, strict=True)
    if not await claim_cooldown(doctor, message.chat_id, answer):
        return
    answer = await live_answer(doctor, update, answer, lang)
    # Nobody asked: the answer is counted, nothing of the message is kept.
    answer = await with_feedback(doctor, answer, lang, "auto")
    sent = await send_answer(context, message.chat_id, answer, message)
    if sent is not None:
        await doctor.storage.write(doctor.storage.remember_answer, message.chat_id, message.message_id, sent.message_id)


async def on_edited_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """When a message the bot answered is edited, the bot edits its answer instead of sending a new one."""
    doctor = doctor_of(context)
    message = update.edited_message
    if message is None:
        return
    answer_id = doctor.storage.answer_for(message.chat_id, message.message_id)
    if answer_id is None:
        return
    text = message_text(message)
    if text.startswith("/"):
        text = text.split(maxsplit=1)[1] if len(text.split(maxsplit=1)) > 1 else ""
    if not text.strip():
        return
    lang = user_lang(doctor, update)
    answer = await diagnose(doctor, update, without_mention(text, context.bot.username), lang)
    try:
        await context.bot.edit_message_text(
            split_message(answer.text)[0],
            chat_id=message.chat_id,
            message_id=answer_id,
            reply_markup=keyboard(answer.buttons),
        )
    except BadRequest as exc:
        # "message is not modified" (same answer) and "message to edit not found" (deleted) need nothing more.
        log.debug("answer %s in chat %s not edited: %s", answer_id, message.chat_id, exc.message)


async def on_private_image(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A screenshot (photo or image file) in a private chat: read it and diagnose what it says, caption included."""
    doctor = doctor_of(context)
    message = update.effective_message
    image = image_of(message)
    if message is None or image is None:
        return
    lang = user_lang(doctor, update)
    answer = await image_answer(context, doctor, update, image, message_text(message), lang)
    if answer is not None:
        await send_answer(context, message.chat_id, answer, None)


async def on_group_image(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A screenshot in a group: read it when the bot is mentioned in its caption, else only for a sure
    auto-answer (auto-answers on, strict confidence, the per-cause cooldown)."""
    doctor = doctor_of(context)
    message = update.effective_message
    image = image_of(message)
    if message is None or image is None:
        return
    lang = user_lang(doctor, update)
    me = context.bot
    caption = message_text(message)
    if mentions_bot(message, me.username, me.id):
        answer = await image_answer(context, doctor, update, image, without_mention(caption, me.username), lang)
        if answer is not None:
            await send_answer(context, message.chat_id, answer, message)
        return
    if not may_auto_answer(doctor, message):
        return
    answer = await image_answer(context, doctor, update, image, caption, lang, strict=True)
    if answer is not None and await claim_cooldown(doctor, message.chat_id, answer):
        await send_answer(context, message.chat_id, answer, message)


async def on_media(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Photos, stickers, voice notes and files without a caption, in private chats."""
    doctor = doctor_of(context)
    message = update.effective_message
    if message is not None:
        await send_answer(context, message.chat_id, doctor.responder.media(user_lang(doctor, update)), None)


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A cause button: show that cause's fix (in place in private chats, as a new reply in groups)."""
    doctor = doctor_of(context)
    query = update.callback_query
    if query is None:
        return
    lang = user_lang(doctor, update)
    data = query.data or ""
    pick = TriagePick.parse(data)
    if pick is not None:
        await on_triage(update, context, pick, lang)
        return
    await query.answer()
    if data == CAUSES_BUTTON:
        answer = doctor.responder.causes(lang)
    elif data.startswith(CAUSE_BUTTON) and data[len(CAUSE_BUTTON) :] in {c.id for c in doctor.responder.kb.causes}:
        answer = doctor.responder.cause_page(data[len(CAUSE_BUTTON) :], lang)
    else:
        log.debug("unknown button data %r", data)  # user-controlled: only at DEBUG
        return
    message = query.message
    if not isinstance(message, Message):
        return
    if message.chat.type == ChatType.PRIVATE:
        try:
            await query.edit_message_text(split_message(answer.text)[0], reply_markup=keyboard(answer.buttons))
        except BadRequest as exc:
            log.debug("button answer not edited in: %s", exc.message)
        return
    await send_answer(context, message.chat_id, answer, message)


async def on_triage(update: Update, context: ContextTypes.DEFAULT_TYPE, pick: TriagePick, lang: str) -> None:
    """A triage answer: the next question or where it lands, edited into the question's own message. Only the
    person who asked may answer a group's triage, and only for the knowledge base's timeout."""
    doctor = doctor_of(context)
    query = update.callback_query
    triage = doctor.responder.kb.triage
    if query is None or triage is None:
        return
    if pick.asker is not None and query.from_user.id != pick.asker:
        await query.answer(doctor.responder.say("triage_not_yours", lang).text)
        return
    message = query.message
    if isinstance(message, Message) and doctor.now() - message.date > timedelta(minutes=triage.timeout_minutes):
        await query.answer(doctor.responder.say("triage_expired", lang).text)
        return
    await query.answer()
    lang = pick.lang or lang  # the language the triage was asked in
    step = doctor.responder.triage_pick(pick, lang)
    if step is None:
        log.debug("unknown triage step %r", query.data)  # user-controlled: only at DEBUG
        return
    answer = await live_answer(doctor, update, step, lang)
    try:
        await query.edit_message_text(split_message(answer.text)[0], reply_markup=keyboard(answer.buttons))
    except BadRequest as exc:
        log.debug("triage step not edited in: %s", exc.message)


async def on_inline_query(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """@bot <error>: the diagnosis (and the runner-up) as results to send; an empty query offers the four causes."""
    doctor = doctor_of(context)
    query = update.inline_query
    if query is None:
        return
    responder = doctor.responder
    lang = user_lang(doctor, update)
    base = base_lang(lang)
    text = query.query[:INLINE_QUERY_LIMIT].strip()
    results: list[InlineQueryResultArticle] = []
    if text:
        # Inline queries come at every keystroke: only a status already cached is used (asking warms the cache).
        lang = reply_lang_of(text) or lang
        base = base_lang(lang)
        answer = await live_answer(doctor, update, responder.diagnosis(text, lang), lang, max_wait=0.0)
        d = answer.diagnosis
        if d is not None and d.matched:
            entry = responder.kb.entry(d.cause or d.known or "")
            results.append(_article(f"d-{entry.id}", localize(entry.title[base], lang), answer.text, d.evidence))
            if d.runner_up:
                page = responder.cause_page(d.runner_up, lang)
                title = localize(responder.kb.entry(d.runner_up).title[base], lang)
                results.append(_article(f"r-{d.runner_up}", title, page.text, ""))
        else:
            # A problem told in words: the triage questions, for the sender only (the results are personal then).
            answer = responder.diagnosis(text, lang, asker=query.from_user.id)
            hint = responder.say("inline_no_match", lang).text
            results.append(_article("none", html.unescape(hint), answer.text, "", answer.buttons))
    description = responder.say("inline_cause_description", lang).text
    for cause in responder.kb.causes:
        if any(r.id.endswith(f"-{cause.id}") for r in results):
            continue
        page = responder.cause_page(cause.id, lang)
        title = localize(f"{cause.number}. {cause.title[base]}", lang)
        results.append(_article(f"c-{cause.id}", title, page.text, html.unescape(description)))
    personal = any(r.reply_markup is not None for r in results)
    await query.answer(results[:50], cache_time=60, is_personal=personal)


def _article(
    result_id: str, title: str, text: str, description: str, buttons: tuple[tuple[Button, ...], ...] = ()
) -> InlineQueryResultArticle:
    return InlineQueryResultArticle(
        id=result_id[:64],
        title=title[:256],
        description=description[:256] or None,
        input_message_content=InputTextMessageContent(split_message(text)[0]),
        reply_markup=keyboard(buttons) if buttons else None,
    )


async def on_membership(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Forget what the bot kept about a group once it is removed from it."""
    doctor = doctor_of(context)
    change: ChatMemberUpdated | None = update.my_chat_member
    if change is None:
        return
    status = change.new_chat_member.status
    if status in (ChatMember.LEFT, ChatMember.BANNED):
        log.info("removed from chat %s (%s)", change.chat.id, status)
        await doctor.storage.write(doctor.storage.forget_chat, change.chat.id)
        await stop_polling_if_unwatched(context.application)
    else:
        log.info("membership in chat %s is now %s", change.chat.id, status)


async def on_migration(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A group upgraded to a supergroup gets a new id: settings and the subscription follow it. Telegram says so
    in both chats; the second notice finds nothing left to move."""
    message = update.effective_message
    if message is None:
        return
    if message.migrate_to_chat_id:
        old_id, new_id = message.chat_id, message.migrate_to_chat_id
    elif message.migrate_from_chat_id:
        old_id, new_id = message.migrate_from_chat_id, message.chat_id
    else:
        return
    log.info("chat %s moved to %s", old_id, new_id)
    storage = doctor_of(context).storage
    await storage.write(storage.move_chat, old_id, new_id)


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
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
        doctor = doctor_of(context)
        try:
            await context.bot.send_message(
                update.effective_chat.id, doctor.responder.say("internal_error", user_lang(doctor, update)).text
            )
        except TelegramError:
            log.warning("could not tell chat %s about the failure", update.effective_chat.id)


# --- wiring -----------------------------------------------------------------------------------------

PRIVATE = filters.ChatType.PRIVATE
GROUPS = filters.ChatType.GROUPS
NEW = filters.UpdateType.MESSAGE
EDITED = filters.UpdateType.EDITED_MESSAGE
TEXTUAL = filters.TEXT | filters.CAPTION
IMAGES = (
    filters.PHOTO
    | filters.Document.MimeType("image/png")
    | filters.Document.MimeType("image/jpeg")
    | (filters.Document.MimeType("image/webp"))
)
MEDIA = filters.PHOTO | filters.Sticker.ALL | filters.VOICE | filters.AUDIO | filters.VIDEO | filters.Document.ALL


def register(application: Application) -> None:  # type: ignore[type-arg]
    """Add every handler to the application, most specific first."""
    commands = {
        "start": cmd_start,
        "help": cmd_help,
        "causes": cmd_causes,
        "fix": cmd_fix,
        "lang": cmd_lang,
        "autoreply": cmd_autoreply,
        "status": cmd_status,
        "tz": cmd_tz,
        "subscribe": cmd_subscribe,
        "unsubscribe": cmd_unsubscribe,
        "reload": cmd_reload,
    }
    for name, callback in commands.items():
        application.add_handler(CommandHandler(name, callback, filters=NEW))
    application.add_handler(MessageHandler(EDITED & TEXTUAL, on_edited_message))
    # Reading a screenshot takes about a second; it holds up only its own chat (the update processor runs chats
    # side by side), and the OCR service's queue limit bounds how many wait.
    application.add_handler(MessageHandler(NEW & PRIVATE & IMAGES, on_private_image))
    application.add_handler(MessageHandler(NEW & GROUPS & IMAGES, on_group_image))
    application.add_handler(MessageHandler(NEW & PRIVATE & TEXTUAL & ~filters.COMMAND, on_private_message))
    application.add_handler(MessageHandler(NEW & PRIVATE & MEDIA, on_media))
    application.add_handler(MessageHandler(NEW & GROUPS & TEXTUAL & ~filters.COMMAND, on_group_message))
    application.add_handler(CallbackQueryHandler(on_button))
    application.add_handler(InlineQueryHandler(on_inline_query))
    application.add_handler(ChatMemberHandler(on_membership, ChatMemberHandler.MY_CHAT_MEMBER))
    application.add_handler(MessageHandler(filters.StatusUpdate.MIGRATE, on_migration))
    application.add_error_handler(on_error)
