"""Run the Application until SIGTERM/SIGINT or a fatal error: the inbox's unfinished updates first, then long
polling or the webhook; on the way out, in-flight updates get a few seconds and the rest wait in the inbox."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from prometheus_client import start_http_server
from telegram import Update
from telegram.error import TelegramError

from bot.services.metrics import refresh_inbox_depth
from bot.services.store import StorageError
from bot.telegram.inbox import InboxRequest, parseable
from bot.telegram.processor import ChatOrderedProcessor
from bot.telegram.webhook import WebhookServer

if TYPE_CHECKING:
    from telegram.ext import Application

    from bot.services.store import Store
    from bot.settings import Settings

log = logging.getLogger(__name__)
# Docker's stop grace is 10 s: in-flight updates get this long, the rest of shutting down fits in the remainder.
GRACE = 4.0
# Polling that has not succeeded for this long makes the bot unhealthy (the long poll itself lasts 10 s).
POLL_STALE = 90.0
HEARTBEAT_EVERY = 15.0
HEARTBEAT_FILE = "heartbeat"
# `claude-doctor health` calls a heartbeat older than this stale (four missed beats).
HEARTBEAT_STALE = 4 * HEARTBEAT_EVERY


@dataclass
class Runtime:
    """The parts the runner drives: the update processor, the getUpdates connection and the store.

    `replay_stale_seconds`: at start, take over only the inbox's updates claimed longer ago than this; 0 (one
    process) takes all of them, replicas sharing a database set it (INBOX_STALE_SECONDS) so as not to take each
    other's work. They then sweep every `sweep_seconds` (INBOX_SWEEP_SECONDS): renew the claims on their own
    unfinished updates, and take over the ones whose claim went stale."""

    processor: ChatOrderedProcessor
    updates_request: InboxRequest
    store: Store
    fatal: str | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    webhook_mode: bool = False
    replay_stale_seconds: float = 0.0
    sweep_seconds: float = 0.0

    @property
    def holder(self) -> str:
        """This process's name on the inbox rows it claims."""
        return self.updates_request.holder

    def fail(self, reason: str) -> None:
        """Stop the bot with `reason` as its last line and a non-zero exit."""
        if self.fatal is None:
            self.fatal = reason
        self.stop.set()

    def healthy(self) -> bool:
        """Webhook mode: the loop answers. Polling: a getUpdates succeeded lately."""
        if self.fatal is not None:
            return False
        if self.webhook_mode:
            return True
        last = self.updates_request.last_ok
        return last is not None and time.monotonic() - last < POLL_STALE

    async def healthy_now(self) -> bool:
        """For /healthz: healthy as above, and the store answers (with several replicas, the shared database)."""
        return self.healthy() and await self.store.healthy()


def runtime_of(application: Application) -> Runtime:  # type: ignore[type-arg]
    return application.bot_data["runtime"]


async def replay_inbox(application: Application, why: str = "left unfinished by the last run") -> int:  # type: ignore[type-arg]
    """Queue the updates a previous run took but did not finish, ahead of anything new."""
    runtime = runtime_of(application)
    pending = await runtime.store.inbox_pending(runtime.holder, runtime.replay_stale_seconds)
    for data in pending:
        data = parseable(data) or {"update_id": data.get("update_id", 0)}
        await application.update_queue.put(Update.de_json(data, application.bot))
    if pending:
        log.info("handling %d updates %s first", len(pending), why)
    return len(pending)


async def _sweep(application: Application) -> None:  # type: ignore[type-arg]
    """Replicas: now and then, renew the claims on this one's unfinished updates (however long they wait in its
    queue, they are not abandoned) and take over the updates whose taker stopped renewing, having died."""
    runtime = runtime_of(application)
    while True:
        await asyncio.sleep(runtime.sweep_seconds)
        try:
            await runtime.store.inbox_renew(runtime.holder)
            await replay_inbox(application, "a stopped replica left unfinished")
        except Exception:
            # A sweep that stopped would let this replica's claims go stale: other replicas would redo its work.
            log.exception("the inbox sweep failed; trying again in %.0f s", runtime.sweep_seconds)


async def accept_update(application: Application, data: dict[str, Any]) -> bool:  # type: ignore[type-arg]
    """A webhook update: kept in the inbox before Telegram hears 200 (an update it stops resending is never lost),
    then queued unless the inbox had it already (Telegram sent it again after a slow answer). Whether it was
    queued; a store that fails lets it through unkept."""
    runtime = runtime_of(application)
    data = parseable(data) or {"update_id": data["update_id"]}
    try:
        new = await runtime.store.inbox_add([data], runtime.holder)
    except StorageError as exc:
        log.warning("update %s could not be kept in the inbox (%s); handling it anyway", data["update_id"], exc)
        new = [data["update_id"]]
    if not new:
        log.info("update %s was in the inbox already; not handled twice", data["update_id"])
        return False
    await application.update_queue.put(Update.de_json(data, application.bot))
    return True


async def _heartbeat(application: Application, path: Path) -> None:  # type: ignore[type-arg]
    """Touch DATA_DIR/heartbeat while healthy, for `claude-doctor health` (Docker's HEALTHCHECK), and refresh the
    inbox depth that /metrics shows (a scrape can't wait for the store)."""
    runtime = runtime_of(application)
    while True:
        await refresh_inbox_depth()
        if runtime.healthy():
            try:
                await asyncio.to_thread(path.touch)
            except OSError as exc:
                log.warning("cannot write the heartbeat file %s: %s", path, exc)
        await asyncio.sleep(HEARTBEAT_EVERY)


async def serve(application: Application, settings: Settings, *, webhook: bool) -> str | None:  # type: ignore[type-arg]
    """Run until a signal or a fatal error; returns the fatal reason (None after a signal)."""
    runtime = runtime_of(application)
    runtime.webhook_mode = webhook
    runtime.updates_request.on_fatal = runtime.fail
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, runtime.stop.set)
    # SIGHUP: the operator edited the knowledge base; load it again without a restart (a broken one is refused).
    reloads: set[asyncio.Task[list[str]]] = set()

    def reload() -> None:
        owner = application.bot_data.get("conversation") or application.bot_data["doctor"]
        task = asyncio.ensure_future(owner.reload_knowledge())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, reload)
    server: WebhookServer | None = None
    metrics: Any = None
    beat: asyncio.Task[None] | None = None
    sweep: asyncio.Task[None] | None = None
    await application.initialize()
    try:
        if application.post_init is not None:
            await application.post_init(application)
        await replay_inbox(application)
        await application.start()
        if webhook:
            server = await _start_webhook(application, settings)
        else:
            assert application.updater is not None
            await application.updater.start_polling(
                allowed_updates=Update.ALL_TYPES, error_callback=_polling_error, drop_pending_updates=False
            )
            api = urlparse(settings.base_url)
            log.info("polling the Bot API at %s://%s", api.scheme, api.netloc)
            if settings.metrics_port is not None:
                metrics, _thread = start_http_server(settings.metrics_port, addr=settings.listen)
                log.info("serving /metrics on %s:%s", settings.listen, settings.metrics_port)
        beat = asyncio.create_task(_heartbeat(application, settings.data_dir / HEARTBEAT_FILE))
        if runtime.replay_stale_seconds > 0 and runtime.sweep_seconds > 0:
            sweep = asyncio.create_task(_sweep(application))
        await runtime.stop.wait()
        log.info("stopping: finishing the updates in flight (at most %.0f s); the rest wait in the inbox", GRACE)
    finally:
        if beat is not None:
            beat.cancel()
        if sweep is not None:
            sweep.cancel()
        if metrics is not None:
            metrics.shutdown()
        await _stop(application, server)
    return runtime.fatal


def _polling_error(exc: TelegramError) -> None:
    # The library retries with backoff; one line per failure, not a traceback.
    log.warning("getUpdates failed: %s", exc)


async def _start_webhook(application: Application, settings: Settings) -> WebhookServer:  # type: ignore[type-arg]
    runtime = runtime_of(application)
    assert settings.webhook_url is not None and settings.webhook_secret is not None
    path = urlparse(settings.webhook_url).path.strip("/") or "telegram"

    async def accept(data: dict[str, Any]) -> None:
        await accept_update(application, data)

    server = WebhookServer(settings.listen, settings.port, path, settings.webhook_secret, accept, runtime.healthy_now)
    server.start()
    log.info("serving the webhook on %s:%s/%s (and /healthz)", settings.listen, settings.port, path)
    await application.bot.set_webhook(
        settings.webhook_url,
        secret_token=settings.webhook_secret,
        allowed_updates=Update.ALL_TYPES,
        drop_pending_updates=False,
    )
    return server


async def _stop(application: Application, server: WebhookServer | None) -> None:  # type: ignore[type-arg]
    runtime = runtime_of(application)
    if application.running:
        cancelled = await runtime.processor.drain(GRACE)
        if cancelled:
            log.warning("%d updates were still in flight; they wait in the inbox for the next start", cancelled)
    if server is not None:
        await server.stop()
    if application.updater is not None and application.updater.running:
        await application.updater.stop()
    if application.running:
        await application.stop()
        if application.post_stop is not None:
            await application.post_stop(application)
    await application.shutdown()
    if application.post_shutdown is not None:
        await application.post_shutdown(application)
