"""The bot's jobs on python-telegram-bot's job queue: the status notifier's ticks while anybody is subscribed, and the
hourly purge of kept texts past their time."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from telegram.error import Forbidden, TelegramError
from telegram.ext import Application, CallbackContext

from bot.notifier import Delivery
from bot.telegram.adapter import Context, conversation_of, notifier_of

log = logging.getLogger(__name__)
POLL_JOB = "status-poll"
PURGE_JOB = "purge misses"
PURGE_EVERY = 3600.0


def telegram_sender(application: Application) -> Callable[[int, str], Awaitable[Delivery]]:  # type: ignore[type-arg]
    """How the notifier sends: a chat that blocked or removed the bot is 'closed'."""

    async def send(chat_id: int, text: str) -> Delivery:
        try:
            await application.bot.send_message(chat_id, text)
        except Forbidden as exc:
            log.info("chat %s is closed to the bot (%s)", chat_id, exc.message)
            return Delivery.CLOSED
        except TelegramError as exc:
            log.warning("incident message to chat %s failed: %s", chat_id, exc)
            return Delivery.FAILED
        return Delivery.SENT

    return send


def ensure_polling(application: Application) -> None:  # type: ignore[type-arg]
    """Schedule the status poll unless it is scheduled already (or there is no status page or job queue)."""
    notifier, jobs = notifier_of(application), application.job_queue
    if notifier is not None and jobs is not None and not jobs.get_jobs_by_name(POLL_JOB):
        jobs.run_once(poll_job, when=notifier.first_delay, name=POLL_JOB)


async def stop_polling_if_unwatched(application: Application) -> None:  # type: ignore[type-arg]
    """With nobody subscribed: stop polling (the notifier forgets the incidents seen)."""
    notifier = notifier_of(application)
    if notifier is None or await notifier.conversation.store.subscription_count():
        return
    if application.job_queue is not None:
        for job in application.job_queue.get_jobs_by_name(POLL_JOB):
            job.schedule_removal()
    await notifier.tick()


async def poll_job(context: CallbackContext) -> None:  # type: ignore[type-arg]
    """One tick of the notifier, then the next while anybody is subscribed."""
    application, notifier = context.application, notifier_of(context.application)
    delay = await notifier.tick() if notifier is not None else None
    jobs = application.job_queue
    # A /subscribe during this tick may have scheduled one already (this job was no longer listed).
    if delay is not None and jobs is not None and not jobs.get_jobs_by_name(POLL_JOB):
        jobs.run_once(poll_job, when=delay, name=POLL_JOB)


async def purge_job(context: Context) -> None:
    """Delete misses older than MISSES_DAYS and kept texts older than two days."""
    gone = await conversation_of(context).purge()
    if gone:
        log.info("deleted %d kept text(s) past their time", gone)


def schedule_purge(application: Application) -> None:  # type: ignore[type-arg]
    """Run the purge every hour (without the job-queue extra, not at all)."""
    if application.job_queue is not None:
        application.job_queue.run_repeating(purge_job, interval=PURGE_EVERY, first=1.0, name=PURGE_JOB)
