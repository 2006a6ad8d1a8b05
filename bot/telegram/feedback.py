"""The operator's loop in the bot: 👍 / 👎 under answers and "which was it?", /privacy, /forget, /stats (operators),
and the hourly deletion of misses past MISSES_DAYS. The record itself is bot/ledger.py."""

from __future__ import annotations

import html
import logging

from telegram import Message, Update
from telegram.error import BadRequest
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    filters,
)

from bot.core.knowledge import base_lang
from bot.core.replies import localize
from bot.core.responder import Answer, Button
from bot.services.metrics import FEEDBACK
from bot.telegram.handlers import (
    FEEDBACK_BUTTON,
    Doctor,
    _asked,
    doctor_of,
    is_operator,
    keyboard,
    send_answer,
    user_lang,
)

log = logging.getLogger(__name__)
# "None of these": the answer was wrong and the text is not one of the four causes.
NONE_OF_THESE = "none"
PURGE_EVERY = 3600.0


def register_feedback(application: Application) -> None:  # type: ignore[type-arg]
    """Add the feedback buttons' handler, the /privacy, /forget and /stats commands and the hourly purge."""
    application.add_handler(CallbackQueryHandler(on_feedback, pattern=f"^{FEEDBACK_BUTTON}"), group=-1)
    new = filters.UpdateType.MESSAGE
    for name, callback in (("privacy", cmd_privacy), ("forget", cmd_forget), ("stats", cmd_stats)):
        application.add_handler(CommandHandler(name, callback, filters=new))
    if application.job_queue is not None:
        application.job_queue.run_repeating(purge_job, interval=PURGE_EVERY, first=1.0, name="purge misses")


async def purge_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Delete misses older than MISSES_DAYS and kept texts older than two days."""
    doctor = doctor_of(context)
    if doctor.ledger is not None:
        gone = await doctor.storage.write(doctor.ledger.purge, doctor.now(), doctor.misses_days)
        if gone:
            log.info("deleted %d kept text(s) past their time", gone)


def correction_buttons(doctor: Doctor, diagnosis_id: int, lang: str) -> tuple[tuple[Button, ...], ...]:
    """ "Which was it?": the four causes and "none of these", one per row."""
    base = base_lang(lang)
    rows = [
        (Button(localize(f"{c.number}. {c.name[base]}", lang), f"{FEEDBACK_BUTTON}{diagnosis_id}:is:{c.id}"),)  # type: ignore[index]
        for c in doctor.responder.kb.causes
    ]
    none = localize(doctor.responder.kb.text("feedback_none_of_these", base), lang)
    rows.append((Button(none, f"{FEEDBACK_BUTTON}{diagnosis_id}:is:{NONE_OF_THESE}"),))
    return tuple(rows)


async def on_feedback(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """👍, 👎 (then "which was it?") or the correction: one vote per user per answer, a new one replaces it. The
    update goes no further: the other button handler would answer the same callback twice."""
    try:
        await _feedback(update, context)
    finally:
        raise ApplicationHandlerStop


async def _feedback(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    doctor = doctor_of(context)
    query = update.callback_query
    if query is None or doctor.ledger is None:
        return
    lang = user_lang(doctor, update)
    parts = (query.data or "")[len(FEEDBACK_BUTTON) :].split(":")
    labels = {c.id for c in doctor.responder.kb.causes} | {NONE_OF_THESE}
    well_formed = parts[0].isdigit() and (
        parts[1:] in (["up"], ["down"]) or (len(parts) == 3 and parts[1] == "is" and parts[2] in labels)
    )
    if not well_formed:
        log.debug("unknown feedback data %r", query.data)  # user-controlled: only at DEBUG
        await query.answer()
        return
    diagnosis_id, vote = int(parts[0]), "up" if parts[1:] == ["up"] else "down"
    correction = parts[2] if len(parts) == 3 else None
    ledger = doctor.ledger
    recorded = await doctor.storage.write(
        ledger.vote, diagnosis_id, query.from_user.id, vote, doctor.now(), correction=correction
    )
    if recorded:
        FEEDBACK.labels(vote).inc()
    key = "feedback_which" if parts[1:] == ["down"] else "feedback_thanks"
    await query.answer(doctor.responder.say(key, lang).text if recorded else None)
    message = query.message
    if not recorded or not isinstance(message, Message):
        return
    # Only the person asked about it sees "which was it?" in a private chat; in a group the buttons stay as they are.
    if message.chat.type == "private":
        buttons = correction_buttons(doctor, diagnosis_id, lang) if key == "feedback_which" else ()
        try:
            await query.edit_message_reply_markup(reply_markup=keyboard(buttons))
        except BadRequest as exc:
            log.debug("feedback buttons not changed: %s", exc.message)


async def cmd_privacy(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/privacy: what is kept, for how long, and how to delete it."""
    asked = _asked(update, context)
    if asked is None:
        return
    doctor, _message, chat, lang, reply_to = asked
    answer = doctor.responder.say("privacy", lang, days=doctor.misses_days)
    await send_answer(context, chat.id, answer, reply_to)


async def cmd_forget(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/forget: delete every text kept from the sender."""
    asked = _asked(update, context)
    if asked is None:
        return
    doctor, _message, chat, lang, reply_to = asked
    user = update.effective_user
    gone = 0
    if doctor.ledger is not None and user is not None:
        gone = await doctor.storage.write(doctor.ledger.forget, user.id) or 0
    await send_answer(context, chat.id, doctor.responder.say("forget_done", lang, count=gone), reply_to)


async def cmd_stats(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/stats (operators only): what the bot answered in the last 7 days, and the knowledge base version."""
    asked = _asked(update, context)
    if asked is None:
        return
    doctor, _message, chat, lang, reply_to = asked
    if not is_operator(doctor, update) or doctor.ledger is None:
        await send_answer(context, chat.id, doctor.responder.say("operators_only", lang), reply_to)
        return
    stats = doctor.ledger.stats(doctor.now(), 7)
    text = f"<pre>{html.escape(stats.format(doctor.kb_version))}</pre>"
    await send_answer(context, chat.id, Answer(text), reply_to)
