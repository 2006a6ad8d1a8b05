"""The webhook server (Tornado, as python-telegram-bot's own): the secret is checked from the header before any of
the body is read, bodies over the limit are refused without being buffered; /healthz answers for monitors and
/metrics for Prometheus."""

from __future__ import annotations

import hmac
import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web

from bot.services.metrics import exposition

log = logging.getLogger(__name__)
# Telegram's updates are a few kilobytes; a megabyte leaves room for the longest message with its entities.
MAX_BODY = 1_000_000
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"

# Called with each well-formed update; returns once it is kept (Telegram hears 200 only then).
Accept = Callable[[dict[str, Any]], Awaitable[None]]
# Whether the bot is healthy, for /healthz; a coroutine function may ask the store.
Healthy = Callable[[], bool] | Callable[[], Awaitable[bool]]


@tornado.web.stream_request_body
class _UpdateHandler(tornado.web.RequestHandler):
    """POSTs of updates. Streaming mode: prepare() runs on the headers alone, so a refusal costs no body."""

    def initialize(self, secret: str, accept: Accept, limit: int) -> None:
        self.secret = secret.encode()
        self.accept = accept
        self.limit = limit
        self.body = bytearray()

    def _refuse(self, status: int) -> None:
        # Finishing before the body is read makes Tornado close the connection instead of reading the rest.
        self.set_status(status)
        self.set_header("Connection", "close")
        self.finish()

    def prepare(self) -> None:
        if self.request.method != "POST":
            self._refuse(405)
            return
        given = self.request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, self.secret):
            log.info("webhook post without the right secret from %s refused", self.request.remote_ip)
            self._refuse(403)
            return
        length = self.request.headers.get("Content-Length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            self._refuse(413)

    def data_received(self, chunk: bytes) -> None:
        if self._finished:
            return
        self.body += chunk
        if len(self.body) > self.limit:
            self.body = bytearray()
            self._refuse(413)

    async def post(self) -> None:
        if self._finished:
            return
        try:
            update = json.loads(bytes(self.body))
        except ValueError:
            update = None
        if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
            log.warning("webhook post that is not an update refused")
            self.set_status(400)
            self.finish()
            return
        await self.accept(update)
        self.set_status(200)
        self.finish()


class _HealthHandler(tornado.web.RequestHandler):
    def initialize(self, healthy: Healthy) -> None:
        self.healthy = healthy

    async def get(self) -> None:
        answer = self.healthy()
        ok = await answer if inspect.isawaitable(answer) else answer
        self.set_status(200 if ok else 503)
        self.set_header("Content-Type", "text/plain")
        self.finish("ok\n" if ok else "unhealthy\n")


class _MetricsHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        body, content_type = exposition()
        self.set_header("Content-Type", content_type)
        self.finish(body)


class WebhookServer:
    """Serves `path` (updates) and /healthz on listen:port until stopped."""

    def __init__(
        self,
        listen: str,
        port: int,
        path: str,
        secret: str,
        accept: Accept,
        healthy: Healthy,
        *,
        limit: int = MAX_BODY,
    ) -> None:
        app = tornado.web.Application(
            [
                (r"/healthz", _HealthHandler, {"healthy": healthy}),
                (r"/metrics", _MetricsHandler),
                (rf"/{path.strip('/')}/?", _UpdateHandler, {"secret": secret, "accept": accept, "limit": limit}),
            ],
            log_function=lambda _handler: None,  # refusals are logged once above, not per request line
        )
        # The handler refuses big bodies itself, with 413, as they stream in (nothing is kept past its limit);
        # Tornado's own cap is set far above it so that its "400" never races the handler's answer.
        self.server = tornado.httpserver.HTTPServer(app, max_body_size=2**30, idle_connection_timeout=60)
        self.listen = listen
        self.port = port

    def start(self) -> None:
        """Bind and serve (OSError when the address is taken or not ours)."""
        self.server.add_sockets(tornado.netutil.bind_sockets(self.port, address=self.listen))

    async def stop(self) -> None:
        """Stop accepting and close the connections."""
        self.server.stop()
        await self.server.close_all_connections()
