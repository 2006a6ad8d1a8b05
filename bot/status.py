"""Claude's status page (an Atlassian Statuspage): fetch, validate and cache its summary. No Telegram here."""

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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

DEFAULT_BASE_URL = "https://status.claude.com"
SUMMARY_PATH = "/api/v2/summary.json"
INDICATORS = ("none", "minor", "major", "critical", "maintenance")
# Maintenance states in which the work is happening now; "scheduled" and "completed" are not news.
_ACTIVE_MAINTENANCE = ("in_progress", "verifying")
# The real summary is a few kB; anything this big is not a status page.
MAX_BODY_BYTES = 2_000_000
# A dead page is retried after this long rather than on every diagnosis.
FAILURE_TTL = 10.0
# `claude-doctor status` must finish within 10 s, including start-up and closing the connection.
_CLI_MAX_TIMEOUT = 8.0

log = logging.getLogger(__name__)


class StatusError(Exception):
    """The status page could not be read or understood; str() is a short one-line reason."""


@dataclass(frozen=True)
class Incident:
    """An unresolved incident, or a scheduled maintenance in progress (impact 'maintenance').

    `id` is the page's incident id; `latest_update_id` names the newest update, so a change of it is news."""

    id: str
    name: str
    status: str
    impact: str
    updated_at: datetime
    url: str
    latest_update: str | None
    started_at: datetime
    latest_update_id: str | None = None


@dataclass(frozen=True)
class Component:
    """One component of the page, e.g. 'claude.ai' with status 'degraded_performance'."""

    name: str
    status: str

    @property
    def operational(self) -> bool:
        return self.status == "operational"


@dataclass(frozen=True)
class StatusSummary:
    """The page's overall indicator, open incidents and components at `fetched_at` (UTC)."""

    indicator: str
    description: str
    incidents: list[Incident]
    components: list[Component]
    fetched_at: datetime

    def not_operational(self) -> list[Component]:
        """Components whose status is anything but 'operational', in page order."""
        return [c for c in self.components if not c.operational]

    def to_json(self) -> dict[str, Any]:
        """The stable JSON shape of `claude-doctor status --json`."""
        return {
            "indicator": self.indicator,
            "description": self.description,
            "incidents": [
                {
                    "name": i.name,
                    "status": i.status,
                    "impact": i.impact,
                    "updated_at": i.updated_at.isoformat(),
                    "url": i.url,
                }
                for i in self.incidents
            ],
            "components": [{"name": c.name, "status": c.status} for c in self.components],
        }


def parse_summary(data: Any, *, fetched_at: datetime | None = None) -> StatusSummary:
    """Validate a decoded /api/v2/summary.json body; raise StatusError naming the first malformed field."""
    if not isinstance(data, dict):
        raise StatusError(f"unexpected summary: expected a JSON object, got {_kind(data)}")
    status = _field(data, "status", dict, "status")
    indicator = _field(status, "indicator", str, "status.indicator")
    if indicator not in INDICATORS:
        raise StatusError(f"unexpected summary: status.indicator is {_short(indicator)}")
    description = _field(status, "description", str, "status.description")

    page = data.get("page")
    page_url = page.get("url") if isinstance(page, dict) else None
    page_url = page_url.rstrip("/") if isinstance(page_url, str) and page_url.startswith("http") else ""

    components = []
    for where, item in _items(data, "components", required=True):
        # Group containers only mirror their children's worst status; the children are listed themselves.
        if item.get("group") is True:
            continue
        name = _text(item, "name", where)
        components.append(Component(name, _field(item, "status", str, f"{where}.status")))

    incidents = [_incident(item, where, page_url) for where, item in _items(data, "incidents", required=True)]
    for where, item in _items(data, "scheduled_maintenances", required=False):
        if _field(item, "status", str, f"{where}.status") in _ACTIVE_MAINTENANCE:
            incidents.append(_incident(item, where, page_url, maintenance=True))

    return StatusSummary(
        indicator=indicator,
        description=description,
        incidents=incidents,
        components=components,
        fetched_at=fetched_at or datetime.now(UTC),
    )


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


def format_summary(summary: StatusSummary) -> str:
    """A short plain-English summary for the terminal: overall status, open incidents, affected components."""
    lines = [f"Claude status: {summary.description}"]
    for incident in summary.incidents:
        lines.append(
            f"- {incident.name}: {incident.status.replace('_', ' ')}, impact {incident.impact}, "
            f"updated {incident.updated_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
        )
        if incident.latest_update:
            lines.append(f"  {_one_line(incident.latest_update, 200)}")
        if incident.url:
            lines.append(f"  {incident.url}")
    if not summary.incidents:
        lines.append("No open incidents.")
    degraded = summary.not_operational()
    if degraded:
        listed = ", ".join(f"{c.name} ({c.status.replace('_', ' ')})" for c in degraded)
        lines.append(f"Not operational: {listed}")
    elif summary.components:
        lines.append(f"All {len(summary.components)} components operational.")
    return "\n".join(lines)


def format_json(summary: StatusSummary) -> str:
    """The summary as one indented JSON object (`to_json()`), for `claude-doctor status --json`."""
    # ASCII escapes keep it valid JSON whatever the terminal's encoding.
    return json.dumps(summary.to_json(), indent=2)


def status_command(base_url: str, as_json: bool, timeout: float = 5.0) -> int:
    """`claude-doctor status [--json]`: print the summary and return 0, or one line on stderr and return 1."""
    if not (base_url or "").strip():
        return _status_failed("status checks are turned off (STATUS_PAGE_URL is empty)", as_json, "off")
    timeout = max(0.1, min(timeout, _CLI_MAX_TIMEOUT))
    try:
        summary = asyncio.run(_fetch_once(base_url, timeout))
        output = format_json(summary) if as_json else format_summary(summary)
    except KeyboardInterrupt:
        print("claude-doctor: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        # StatusError and a bad STATUS_PAGE_URL carry a readable reason; anything else is at least named.
        reason = str(exc) if isinstance(exc, StatusError | ValueError) else f"{type(exc).__name__}: {exc}"
        return _status_failed(f"status page unavailable: {_one_line(reason, 300)}", as_json, "unavailable")
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


def _incident(item: dict[str, Any], where: str, page_url: str, *, maintenance: bool = False) -> Incident:
    created = _optional_time(item, "created_at", where)
    updated = _optional_time(item, "updated_at", where) or created
    if updated is None:
        raise StatusError(f"unexpected summary: {where} has no updated_at")
    started = (
        _optional_time(item, "scheduled_for" if maintenance else "started_at", where)
        or _optional_time(item, "started_at", where)
        or created
        or updated
    )
    latest = _latest_update(item, where)
    return Incident(
        id=_incident_id(item, started),
        name=_text(item, "name", where),
        status=_field(item, "status", str, f"{where}.status"),
        impact="maintenance" if maintenance else _field(item, "impact", str, f"{where}.impact"),
        updated_at=updated,
        url=_incident_url(item, page_url),
        latest_update=latest[1] if latest else None,
        started_at=started,
        latest_update_id=latest[0] if latest else None,
    )


def _incident_id(item: dict[str, Any], started: datetime) -> str:
    incident_id = item.get("id")
    if isinstance(incident_id, str) and incident_id.strip():
        return incident_id.strip()
    # Statuspage always sends one; without it the name and start time are what stays the same across updates.
    return f"{str(item.get('name', '')).strip()}@{started.isoformat()}"


def _incident_url(item: dict[str, Any], page_url: str) -> str:
    # Prefer a link on the page's own domain over the stspg.io shortlink: users recognise where it leads.
    incident_id = item.get("id")
    if page_url and isinstance(incident_id, str) and incident_id.isalnum():
        return f"{page_url}/incidents/{incident_id}"
    shortlink = item.get("shortlink")
    if isinstance(shortlink, str) and shortlink.startswith("http"):
        return shortlink
    return page_url


def _latest_update(item: dict[str, Any], where: str) -> tuple[str | None, str | None] | None:
    """The newest update's (id, text), each None when missing or empty; None when there are no updates."""
    updates = item.get("incident_updates")
    if updates is None:
        return None
    if not isinstance(updates, list):
        raise StatusError(f"unexpected summary: {where}.incident_updates is {_kind(updates)}, not a list")
    newest: tuple[datetime, str | None, str] | None = None
    for n, update in enumerate(updates):
        if not isinstance(update, dict) or not isinstance(update.get("body"), str):
            raise StatusError(f"unexpected summary: {where}.incident_updates[{n}] has no text body")
        at = f"{where}.incident_updates[{n}]"
        when = _optional_time(update, "display_at", at) or _optional_time(update, "created_at", at)
        raw_id = update.get("id")
        update_id = raw_id if isinstance(raw_id, str) and raw_id else None
        # Statuspage lists the newest first; the timestamps settle it if it ever doesn't.
        if newest is None or (when is not None and when > newest[0]):
            newest = (when or datetime.min.replace(tzinfo=UTC), update_id, update["body"])
    if newest is None:
        return None
    return newest[1], newest[2].strip() or None


def _items(data: dict[str, Any], key: str, *, required: bool) -> Iterator[tuple[str, dict[str, Any]]]:
    value = data.get(key)
    if value is None and not required:
        return
    if not isinstance(value, list):
        raise StatusError(f"unexpected summary: {key} is {_kind(value)}, not a list")
    for n, item in enumerate(value):
        if not isinstance(item, dict):
            raise StatusError(f"unexpected summary: {key}[{n}] is {_kind(item)}, not an object")
        yield f"{key}[{n}]", item


def _field(obj: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind):
        raise StatusError(f"unexpected summary: {where} is {_kind(value)}, not {_KIND_NAMES[kind]}")
    return value


def _text(obj: dict[str, Any], key: str, where: str) -> str:
    value = _field(obj, key, str, f"{where}.{key}").strip()
    if not value:
        raise StatusError(f"unexpected summary: {where}.{key} is empty")
    return value


def _optional_time(obj: dict[str, Any], key: str, where: str) -> datetime | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            # Statuspage always sends an offset; a bare time is taken as UTC rather than as the server's zone.
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    raise StatusError(f"unexpected summary: {where}.{key} is not an ISO 8601 time: {_short(value)}")


_KIND_NAMES: dict[type, str] = {dict: "an object", list: "a list", str: "a string"}


def _kind(value: object) -> str:
    if value is None:
        return "missing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return _KIND_NAMES.get(type(value), type(value).__name__)


def _short(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _one_line(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
