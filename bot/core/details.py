"""The details inside an error message: when a limit resets, how many tokens against what limit, the model, the
HTTP status, the error type, the request id and the retry attempt. Each is read by a small function; a detail that
cannot be read is left out, never guessed."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# Long pastes keep their error at the end: both ends are read, up to this many characters each.
_SPAN = 8000

ERROR_TYPES = (
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "not_found_error",
    "request_too_large",
    "rate_limit_error",
    "api_error",
    "overloaded_error",
    "billing_error",
    "timeout_error",
)
_ERROR_TYPE = re.compile(r"\b(" + "|".join(ERROR_TYPES) + r")\b")
_REQUEST_ID = re.compile(r"\b(req_[A-Za-z0-9]{12,})\b")
_ATTEMPT = re.compile(r"\battempt\s+(\d{1,3})\s*(?:/|of)\s*(\d{1,3})\b", re.I)
# Status codes the way Anthropic's clients print them: "API Error: 529", "API Error (529 {", "Error code: 429",
# "HTTP 503", "status code 500", "529 Overloaded".
_STATUS = re.compile(
    r"(?:\bapi error:?\s*\(?|\berror code:?\s*|\bhttp(?:/[0-9.]+)?\s+|\bstatus(?: code)?:?\s*)([1-5]\d\d)\b"
    r"|\b(529|500|502|503|504|429|413|403|401|400)\s+(?:overloaded|internal server error|too many requests"
    r"|service unavailable|bad gateway|gateway timeout|forbidden|unauthorized|request too large|bad request)",
    re.I,
)
_TOKENS = (
    # "prompt is too long: 215000 tokens > 200000 maximum"
    re.compile(r"(\d[\d,]*)\s*tokens?\s*>\s*(\d[\d,]*)\s*maximum", re.I),
    # "input length and max_tokens exceed context limit: 187023 + 21333 > 200000"
    re.compile(r"(\d[\d,]*)\s*\+\s*(\d[\d,]*)\s*>\s*(\d[\d,]*)"),
    # "The input (233864 tokens) is longer than the model's context length (202752 tokens)"
    re.compile(r"\((\d[\d,]*)\s*tokens?\)\s*is longer than[^()]*\((\d[\d,]*)\s*tokens?\)", re.I),
)
_MODEL_ID = re.compile(r"\bclaude-(?:[a-z0-9]+[-.])*[a-z0-9]+\b", re.I)
_MODEL_NAME = re.compile(r"\b(Opus|Sonnet|Haiku)(?:\s+(\d(?:\.\d)?))?\b")
# "Claude AI usage limit reached|1733000000": Claude Code prints the reset time as a Unix epoch after a bar.
_EPOCH = re.compile(r"limit reached\|(\d{10})\b", re.I)
# "resets 3am (Asia/Shanghai)", "reset at 5pm", "resets Apr 23 at 4pm (America/Recife)", "resets 12:50pm (Europe/Paris)"
_RESET_AT = re.compile(
    r"\bresets?\s+(?:at\s+)?(?:(?P<month>[A-Z][a-z]{2})\s+(?P<day>\d{1,2})\s+at\s+)?"
    r"(?P<hour>\d{1,2})(?::(?P<minute>\d{2}))?\s*(?P<ampm>am|pm)?(?:\s*\((?P<zone>[A-Za-z_]+/[A-Za-z_/+-]+)\))?",
    re.I,
)
# "try again in 4 hours", "resets in 2 h 13 min", "in 45 minutes"
_RESET_IN = re.compile(
    r"\b(?:resets?|try again|again|available)\s+in\s+(?:(?P<h>\d{1,3})\s*(?:h|hr|hrs|hours?)\b)?\s*"
    r"(?:(?P<m>\d{1,3})\s*(?:m|min|mins|minutes?)\b)?",
    re.I,
)
_MONTHS = {
    m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)
}


@dataclass(frozen=True)
class Details:
    """What an error message says beyond its cause; None where it does not say."""

    reset_at: datetime | None = None
    tokens: int | None = None
    limit: int | None = None
    model: str | None = None
    status_code: int | None = None
    error_type: str | None = None
    request_id: str | None = None
    retry_attempt: int | None = None
    retry_max: int | None = None

    @property
    def over_by(self) -> int | None:
        """How many tokens over the limit, when both are known and the text is over."""
        if self.tokens is None or self.limit is None or self.tokens <= self.limit:
            return None
        return self.tokens - self.limit

    def to_json(self) -> dict[str, Any]:
        """The fields that were read, for `diagnose --json`; the reset time in ISO 8601 with its offset."""
        out: dict[str, Any] = {}
        for name in ("tokens", "limit", "model", "status_code", "error_type", "request_id", "retry_attempt"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.retry_max is not None:
            out["retry_max"] = self.retry_max
        if self.over_by is not None:
            out["over_by"] = self.over_by
        if self.reset_at is not None:
            out["reset_at"] = self.reset_at.isoformat()
        return out

    def __bool__(self) -> bool:
        return bool(self.to_json())


def extract(text: str, *, now: datetime | None = None, tz: ZoneInfo | None = None) -> Details:
    """Read the details of an error message. `now` (aware; default: the clock) and `tz` (the reader's zone, for a
    reset time that names none) resolve "resets 5pm" to the next 5 pm."""
    if len(text) > 2 * _SPAN:
        text = text[:_SPAN] + "\n" + text[-_SPAN:]
    now = now or datetime.now(UTC)
    tokens, limit = token_counts(text)
    attempt, attempts = retry(text)
    return Details(
        reset_at=reset_time(text, now=now, tz=tz),
        tokens=tokens,
        limit=limit,
        model=model(text),
        status_code=status_code(text),
        error_type=error_type(text),
        request_id=request_id(text),
        retry_attempt=attempt,
        retry_max=attempts,
    )


def _number(digits: str) -> int:
    return int(digits.replace(",", ""))


def token_counts(text: str) -> tuple[int | None, int | None]:
    """(tokens sent, the limit) from a too-long error, or (None, None)."""
    for n, pattern in enumerate(_TOKENS):
        m = pattern.search(text)
        if m is None:
            continue
        if n == 1:  # input + max_tokens > limit
            return _number(m.group(1)) + _number(m.group(2)), _number(m.group(3))
        return _number(m.group(1)), _number(m.group(2))
    return None, None


def model(text: str) -> str | None:
    """The model the error names: an API id ("claude-sonnet-4-5-20250929") or a name ("Opus 4.5")."""
    # Every model id has a version number in it; "claude-code" and "claude-in-slack" are not models.
    for m in _MODEL_ID.finditer(text):
        if any(ch.isdigit() for ch in m.group()):
            return m.group()
    m2 = _MODEL_NAME.search(text)
    if m2 is not None:
        return f"{m2.group(1)} {m2.group(2)}" if m2.group(2) else m2.group(1)
    return None


def status_code(text: str) -> int | None:
    """The HTTP status the error gives, as Anthropic's clients print it."""
    m = _STATUS.search(text)
    if m is None:
        return None
    return int(m.group(1) or m.group(2))


def error_type(text: str) -> str | None:
    """Anthropic's error type ("overloaded_error"), if the text carries one."""
    m = _ERROR_TYPE.search(text.lower())
    return m.group(1) if m else None


def request_id(text: str) -> str | None:
    """The request id (req_...) to quote to Anthropic's support."""
    m = _REQUEST_ID.search(text)
    return m.group(1) if m else None


def retry(text: str) -> tuple[int | None, int | None]:
    """The last retry attempt a log shows ("attempt 4/10") and how many it allows."""
    found = _ATTEMPT.findall(text)
    if not found:
        return None, None
    attempt, attempts = found[-1]
    return int(attempt), int(attempts)


def _zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def reset_time(text: str, *, now: datetime, tz: ZoneInfo | None = None) -> datetime | None:
    """When a limit resets: a Unix epoch, a clock time (in the zone the text names, else `tz`; the next such time
    after `now`; with neither zone, not read), or a span from now ("in 2 h 13 min")."""
    m = _EPOCH.search(text)
    if m is not None:
        return datetime.fromtimestamp(int(m.group(1)), tz=tz or UTC)
    m = _RESET_AT.search(text)
    if m is not None and (m.group("ampm") or m.group("minute") or m.group("zone")):
        zone = _zone(m.group("zone")) or tz
        if zone is None:
            return None  # "resets 5pm" in a zone nobody named: not guessed
        hour, minute = int(m.group("hour")), int(m.group("minute") or 0)
        ampm = (m.group("ampm") or "").lower()
        if (ampm and not 1 <= hour <= 12) or hour > 23 or minute > 59:
            return None
        if ampm == "pm" and hour != 12:
            hour += 12
        elif ampm == "am" and hour == 12:
            hour = 0
        local_now = now.astimezone(zone)
        if m.group("month"):
            month = _MONTHS.get(m.group("month").lower())
            if month is None:
                return None
            year = local_now.year + (1 if month < local_now.month else 0)
            try:
                return datetime(year, month, int(m.group("day")), hour, minute, tzinfo=zone)
            except ValueError:
                return None
        at = local_now.replace(hour=hour, minute=minute, second=0, microsecond=0)
        return at if at > local_now else at + timedelta(days=1)
    m = _RESET_IN.search(text)
    if m is not None and (m.group("h") or m.group("m")):
        span = timedelta(hours=int(m.group("h") or 0), minutes=int(m.group("m") or 0))
        return (now + span).astimezone(tz or UTC)
    return None


def until(moment: datetime, now: datetime) -> tuple[int, int] | None:
    """Hours and minutes from `now` to `moment`, or None if it has passed."""
    seconds = int((moment - now).total_seconds())
    if seconds <= 0:
        return None
    minutes = (seconds + 59) // 60
    return minutes // 60, minutes % 60
