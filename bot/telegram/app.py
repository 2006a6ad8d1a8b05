"""Build the python-telegram-bot Application and run it (long polling or webhook), with clear start-up errors."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from urllib.parse import urlparse

from telegram import Bot, BotCommand, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import InvalidToken, NetworkError, TelegramError
from telegram.ext import Application, ApplicationBuilder, Defaults

from bot.conversation import Conversation
from bot.core.knowledge import KnowledgeError
from bot.core.matcher import Matcher, get_matcher
from bot.core.replies import Markup
from bot.core.responder import Responder
from bot.notifier import StatusNotifier
from bot.services.metrics import watch_inbox
from bot.services.ocr import OcrService, ocr_available
from bot.services.status import StatusClient
from bot.services.store import StorageError, Store, open_store
from bot.settings import ConfigError, Settings, load_settings, redact, setup_logging
from bot.telegram.flood import FloodGate
from bot.telegram.handlers import register
from bot.telegram.inbox import InboxRequest
from bot.telegram.jobs import ensure_polling, telegram_sender
from bot.telegram.processor import ChatOrderedProcessor
from bot.telegram.ratelimit import ChatRateLimiter
from bot.telegram.runner import Runtime, serve

log = logging.getLogger(__name__)
COMMANDS = (
    "start",
    "help",
    "causes",
    "fix",
    "status",
    "subscribe",
    "unsubscribe",
    "tz",
    "lang",
    "autoreply",
    "privacy",
    "forget",
)
# One cached read of the status page serves every chat for this long, or half a poll if that is shorter: the poller
# reads through the same cache, and a read cached just before a poll must not be what the poll sees.
STATUS_TTL = 60.0


def build_application(
    settings: Settings,
    matcher: Matcher,
    store: Store,
    *,
    status: StatusClient | None = None,
    ocr: OcrService | None = None,
) -> Application:  # type: ignore[type-arg]
    """The Application with HTML defaults, link previews off, the per-chat rate limiter, the per-chat ordered
    update processor, the inbox on the getUpdates connection and every handler.

    The status page client comes from settings.status_page_url (empty: the live features are off); `status`
    replaces it with a ready-made client, e.g. one with a test clock. ValueError for a malformed URL."""
    if not settings.status_page_url.strip():
        status = None
    elif status is None:
        status = StatusClient(settings.status_page_url, ttl=min(STATUS_TTL, settings.status_poll_seconds / 2))
    processor = ChatOrderedProcessor(workers=settings.workers, flood=FloodGate())
    updates_request = InboxRequest(store)
    application = (
        ApplicationBuilder()
        .token(settings.token)
        .base_url(settings.base_url)
        .base_file_url(settings.base_file_url)
        .defaults(Defaults(parse_mode=ParseMode.HTML, link_preview_options=LinkPreviewOptions(is_disabled=True)))
        # Sends under Telegram's limits; a flood wait holds up only its own chat; transient failures are retried.
        .rate_limiter(ChatRateLimiter())
        .concurrent_updates(processor)
        .get_updates_request(updates_request)
        .post_init(_post_init)
        .post_shutdown(_post_shutdown)
        .build()
    )
    conversation = Conversation(
        Responder(matcher, Markup.HTML),
        store,
        status=status,
        ocr=ocr,
        operator_ids=settings.operator_ids,
        misses_days=settings.misses_days,
    )
    application.bot_data["conversation"] = conversation
    if status is not None:
        _add_notifier(application, conversation, settings)
    watch_inbox(store.inbox_count)
    processor.attach(application, store)
    application.bot_data["runtime"] = Runtime(
        processor,
        updates_request,
        store,
        # Replicas sharing a database: another's claims are its work in progress, only stale ones are taken over.
        replay_stale_seconds=settings.inbox_stale_seconds if settings.database_url else 0.0,
        sweep_seconds=settings.inbox_sweep_seconds,
    )
    register(application)
    return application


def _add_notifier(application: Application, conversation: Conversation, settings: Settings) -> None:  # type: ignore[type-arg]
    """The status poller and incident notifier, on the settings' poll interval and lease."""
    application.bot_data["notifier"] = StatusNotifier(
        conversation,
        telegram_sender(application),
        poll_seconds=settings.status_poll_seconds,
        lease_seconds=settings.status_lease_seconds,
    )
    if application.job_queue is None:
        log.warning("python-telegram-bot's job-queue extra is missing: /subscribe will send no incident messages")


async def _post_init(application: Application) -> None:  # type: ignore[type-arg]
    """Register the command menus in each of the knowledge base's languages (a failure is logged and the bot runs
    on), and resume polling the status page if chats are subscribed."""
    conversation = conversation_of_app(application)
    if await conversation.store.subscription_count():
        ensure_polling(application)
    kb = conversation.responder.kb
    default = conversation.default_lang()
    for lang in conversation.base_languages():
        commands = [BotCommand(name, kb.text(f"cmd_{name}", lang)) for name in COMMANDS]
        try:
            await application.bot.set_my_commands(commands, language_code=None if lang == default else lang)
        except TelegramError as exc:
            log.warning("could not register the %s command menu: %s", lang, exc)
    log.info("running as @%s", application.bot.username)


def conversation_of_app(application: Application) -> Conversation:  # type: ignore[type-arg]
    return application.bot_data["conversation"]


async def _post_shutdown(application: Application) -> None:  # type: ignore[type-arg]
    """Close the status page client's connections (and a fetch still in flight) and the OCR workers."""
    conversation = conversation_of_app(application)
    if conversation.status is not None:
        await conversation.status.aclose()
    if conversation.ocr is not None:
        conversation.ocr.close()


async def _preflight(settings: Settings) -> None:
    """Ask the Bot API who we are with a throwaway client, so a bad token or address fails here in one line
    rather than inside the Application's start-up, which logs a traceback first."""
    # The library logs an unreadable answer (an HTML page) with a traceback; here the one line below says it all.
    request_log = logging.getLogger("telegram.request")
    level = request_log.level
    request_log.setLevel(logging.CRITICAL)
    try:
        async with Bot(settings.token, base_url=settings.base_url, base_file_url=settings.base_file_url) as bot:
            await bot.get_me()
    finally:
        request_log.setLevel(level)


def _fail(message: str, code: int = 1, secrets: tuple[str | None, ...] = ()) -> int:
    print(f"claude-doctor: {redact(message, secrets)}", file=sys.stderr)
    return code


def run_bot(*, webhook: bool = False, settings: Settings | None = None) -> int:
    """Start the bot until SIGTERM/SIGINT; every start-up failure and every fatal error (a revoked token, a second
    instance, an unreachable database) is one line on stderr and a non-zero exit."""
    try:
        settings = settings or load_settings(webhook=webhook)
        if webhook and not (settings.webhook_url and settings.webhook_secret):
            settings = load_settings(webhook=True)  # says which of the two is missing
    except ConfigError as exc:
        return _fail(str(exc), 2)
    secrets = (settings.token, settings.webhook_secret)
    setup_logging(settings.log_level, settings.token, (settings.webhook_secret,), settings.log_format)
    try:
        matcher = get_matcher(directory=settings.knowledge_dir)
    except KnowledgeError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return _fail("the knowledge base is broken; fix it or point KNOWLEDGE_DIR elsewhere")
    if settings.status_page_url:
        try:
            StatusClient(settings.status_page_url)
        except ValueError as exc:
            return _fail(f"{exc} (or set it empty to turn status checks off)", 2)
    # The knowledge base and its index live as long as the process: frozen out of the collector's reach, they no
    # longer make each full collection a millisecond-scale stall in the middle of some diagnosis.
    gc.collect()
    gc.freeze()
    if ocr_available():
        ocr: OcrService | None = OcrService()
    else:
        ocr = None
        log.info("screenshots are off: install the ocr extra (pip install 'claude-doctor[ocr]') to read them")
    api = urlparse(settings.base_url)
    try:
        fatal = asyncio.run(_main(settings, matcher, ocr, webhook=webhook))
    except StorageError as exc:
        return _fail(str(exc), secrets=secrets)
    except InvalidToken:
        return _fail("Telegram rejected TELEGRAM_BOT_TOKEN: check it with @BotFather", secrets=secrets)
    except NetworkError as exc:
        return _fail(f"cannot reach the Bot API at {api.scheme}://{api.netloc}: {exc.message}", secrets=secrets)
    except OSError as exc:
        where = f"{settings.listen}:{settings.port}"
        return _fail(f"cannot serve the webhook on {where}: {exc.strerror or exc}", secrets=secrets)
    except (TimeoutError, TelegramError) as exc:
        if "Invalid server response" in str(exc):
            where = f"{api.scheme}://{api.netloc}"
            return _fail(f"the Bot API at {where} did not answer with JSON (a proxy's page?)", secrets=secrets)
        return _fail(f"the Bot API refused to start the bot: {exc}", secrets=secrets)
    if fatal is not None:
        return _fail(fatal, secrets=secrets)
    return 0


async def _main(settings: Settings, matcher: Matcher, ocr: OcrService | None, *, webhook: bool) -> str | None:
    """Open the store, check the token, then serve; the store is opened on the loop that uses it (a PostgreSQL
    pool belongs to its event loop) and closed on the way out."""
    store = await open_store(settings)
    try:
        await _preflight(settings)
        return await serve(build_application(settings, matcher, store, ocr=ocr), settings, webhook=webhook)
    finally:
        await store.close()
