"""Claude's status page over HTTP: fetch and cache its summary for every chat, and `claude-doctor status`."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import socket
import ssl
import sys
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import httpx

from bot.core.statuspage import Component, Incident, StatusError, StatusSummary, one_line, parse_summary

__all__ = ["Component", "Incident", "StatusClient", "StatusError", "StatusSummary", "parse_summary", "status_command"]

DEFAULT_BASE_URL = "https://status.claude.com"
SUMMARY_PATH = "/api/v2/summary.json"
# The real summary is a few kB; anything this big is not a status page.
MAX_BODY_BYTES = 2_000_000
# A dead page is retried after this long rather than on every diagnosis.
FAILURE_TTL = 10.0
# `claude-doctor status` must finish within 10 s, including start-up and closing the connection.
_CLI_MAX_TIMEOUT = 8.0

log = logging.getLogger(__name__)


class StatusClient:
    """Reads the status page with one shared, cached fetch: concurrent callers share a single request."""

    def __init__(
        self,
        base_url: str,
        timeout: float = 4.0,
        ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        failure_ttl: float = FAILURE_TTL,
    ) -> None:
        base = (base_url or "").strip().rstrip("/")
        if not base:
            raise ValueError("status checks are turned off (STATUS_PAGE_URL is empty)")
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"STATUS_PAGE_URL must be an http(s) URL, got {base_url!r}")
        self.base_url = base
        self._url = base + SUMMARY_PATH
        self._host = parts.hostname
        self._timeout = timeout
        self._ttl = ttl
        self._failure_ttl = min(failure_ttl, ttl)
        self._clock = clock
        self._http: httpx.AsyncClient | None = None
        self._cache: tuple[float, StatusSummary | StatusError] | None = None
        self._inflight: asyncio.Task[StatusSummary | StatusError] | None = None

    async def get(self) -> StatusSummary:
        """The current summary, from cache if fresh; raise StatusError with a short reason if unavailable."""
        result = self._cached()
        if result is None:
            result = await self._join(self._start())
        if isinstance(result, StatusError):
            # A fresh instance per raise: a shared one would collect every caller's traceback.
            raise StatusError(str(result))
        return result

    async def peek(self, max_wait: float) -> StatusSummary | None:
        """The summary if it is cached or arrives within `max_wait` seconds, else None; never raises.

        A fetch that takes longer keeps running in the background and fills the cache for later calls."""
        try:
            result = self._cached()
            if result is None:
                task = self._start()
                # asyncio.wait, unlike wait_for, leaves the task running when the time is up.
                done, _ = await asyncio.wait({task}, timeout=max(0.0, max_wait))
                if not done or task.cancelled():
                    return None
                result = task.result()
            return result if isinstance(result, StatusSummary) else None
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("status peek failed")
            return None

    async def aclose(self) -> None:
        """Cancel a fetch in flight and close the HTTP connections; the client may be used again after."""
        task, self._inflight = self._inflight, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    def _cached(self) -> StatusSummary | StatusError | None:
        if self._cache is not None and self._clock() < self._cache[0]:
            return self._cache[1]
        return None

    def _start(self) -> asyncio.Task[StatusSummary | StatusError]:
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.create_task(self._fetch_and_store(), name="status-page-fetch")
        return self._inflight

    async def _join(self, task: asyncio.Task[StatusSummary | StatusError]) -> StatusSummary | StatusError:
        try:
            # shield: one caller giving up must not cancel the fetch the others are waiting for.
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and (current is None or current.cancelling() == 0):
                return StatusError("the status check was cancelled")
            raise

    async def _fetch_and_store(self) -> StatusSummary | StatusError:
        # Returns the error instead of raising, so no task ever ends with an exception nobody retrieves.
        result: StatusSummary | StatusError
        try:
            result = await self._fetch()
        except StatusError as exc:
            result = exc
        except Exception as exc:
            log.exception("unexpected error reading the status page")
            result = StatusError(f"unexpected error ({type(exc).__name__})")
        if isinstance(result, StatusError):
            log.info("status page unavailable: %s", result)
            ttl = self._failure_ttl
        else:
            ttl = self._ttl
        self._cache = (self._clock() + ttl, result)
        return result

    async def _fetch(self) -> StatusSummary:
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(self._timeout),
                follow_redirects=True,  # status.anthropic.com redirects to status.claude.com
                headers={"Accept": "application/json", "User-Agent": "claude-doctor"},
            )
        try:
            # httpx's timeout is per operation; this bounds the whole exchange against a trickling server.
            async with asyncio.timeout(self._timeout):
                async with self._http.stream("GET", self._url) as response:
                    if not response.is_success:
                        raise StatusError(f"status page answered HTTP {response.status_code}")
                    body = await _read_limited(response)
                    content_type = response.headers.get("content-type", "").split(";", 1)[0].strip()
        except (TimeoutError, httpx.TimeoutException):
            raise StatusError(f"no answer from {self._host} within {self._timeout:g} s") from None
        except httpx.ConnectError as exc:
            raise StatusError(_connect_reason(exc, self._host)) from None
        except httpx.TooManyRedirects:
            raise StatusError(f"{self._host} redirected too many times") from None
        except httpx.HTTPError as exc:
            raise StatusError(f"connection to {self._host} failed ({type(exc).__name__})") from None
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            # An HTML answer is usually a captive portal, a proxy's error page or a bot challenge.
            if content_type and "json" not in content_type:
                raise StatusError(f"status page sent {content_type[:40]} instead of JSON") from None
            raise StatusError("status page sent malformed JSON") from None
        return parse_summary(data)


def format_json(summary: StatusSummary) -> str:
    """The summary as one indented JSON object (`to_json()`), for `claude-doctor status --json`."""
    # ASCII escapes keep it valid JSON whatever the terminal's encoding.
    return json.dumps(summary.to_json(), indent=2)


def status_command(
    base_url: str, as_json: bool, timeout: float = 5.0, render: Callable[[StatusSummary], str] | None = None
) -> int:
    """`claude-doctor status [--json]`: print the summary (as JSON, or as `render` words it: the bot's own /status
    page) and return 0, or one line on stderr and return 1."""
    if not (base_url or "").strip():
        return _status_failed("status checks are turned off (STATUS_PAGE_URL is empty)", as_json, "off")
    timeout = max(0.1, min(timeout, _CLI_MAX_TIMEOUT))
    try:
        summary = asyncio.run(_fetch_once(base_url, timeout))
        output = format_json(summary) if as_json or render is None else render(summary)
    except KeyboardInterrupt:
        print("claude-doctor: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        # StatusError and a bad STATUS_PAGE_URL carry a readable reason; anything else is at least named.
        reason = str(exc) if isinstance(exc, StatusError | ValueError) else f"{type(exc).__name__}: {exc}"
        return _status_failed(f"status page unavailable: {one_line(reason, 300)}", as_json, "unavailable")
    _emit(output)
    return 0


def _status_failed(message: str, as_json: bool, state: str) -> int:
    """The failure as one line on stderr and, with --json, as JSON on stdout too (a script reading stdout gets
    an object either way); exit 1."""
    print(f"claude-doctor: {message}", file=sys.stderr)
    if as_json:
        print(json.dumps({"error": message, "state": state}))
    return 1


def _emit(text: str) -> None:
    try:
        print(text)
    except UnicodeEncodeError:
        # A terminal that can't show an incident name's dash or quotes still gets the rest.
        encoding = sys.stdout.encoding or "ascii"
        print(text.encode(encoding, "replace").decode(encoding))


async def _fetch_once(base_url: str, seconds: float) -> StatusSummary:
    client = StatusClient(base_url, timeout=seconds, ttl=0)
    try:
        # The fetch bounds itself; this also bounds closing the connection.
        async with asyncio.timeout(seconds + 1.0):
            try:
                return await client.get()
            finally:
                await client.aclose()
    except TimeoutError:
        raise StatusError(f"no answer within {seconds:g} s") from None


async def _read_limited(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise StatusError(f"status page sent more than {MAX_BODY_BYTES // 1_000_000} MB")
        chunks.append(chunk)
    return b"".join(chunks)


def _connect_reason(exc: BaseException, host: str) -> str:
    for cause in _causes(exc):
        if isinstance(cause, ConnectionRefusedError):
            return f"connection to {host} refused"
        if isinstance(cause, socket.gaierror):
            return f"cannot resolve {host} (DNS lookup failed)"
        if isinstance(cause, ssl.SSLError):
            return f"TLS handshake with {host} failed"
        if isinstance(cause, OSError) and cause.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return f"{host} is unreachable"
    return f"cannot connect to {host}"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    # httpx wraps httpcore wraps the socket error; anyio may bundle several attempts into an ExceptionGroup.
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            stack.extend(current.exceptions)
        stack.extend(e for e in (current.__cause__, current.__context__) if e is not None)
