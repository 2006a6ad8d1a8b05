"""Settings from the environment (and a .env file), validated up front with one clear line per problem. The only
module that reads the environment: everything else is given a `Settings`."""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

OFFICIAL_BASE_URL = "https://api.telegram.org/bot"
DEFAULT_STATUS_PAGE = "https://status.claude.com"
_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ConfigError(Exception):
    """A setting is missing or wrong; the message is one line for the operator."""


@dataclass(frozen=True)
class Settings:
    """Everything the bot needs from its environment."""

    token: str = ""
    base_url: str = OFFICIAL_BASE_URL
    base_file_url: str = "https://api.telegram.org/file/bot"
    webhook_url: str | None = None
    webhook_secret: str | None = None
    # Loopback unless LISTEN says otherwise: a webhook open to the world is a choice, not a default.
    listen: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("data")
    log_level: str = "INFO"
    status_page_url: str = DEFAULT_STATUS_PAGE
    # Updates worked on at once (each chat's in order); tests that prove silence with a marker use 1.
    workers: int = 64
    # Telegram user ids allowed the operators' commands (/reload, /stats).
    operator_ids: frozenset[int] = frozenset()
    # Days a miss (a text the bot did not recognise or got wrong) is kept before it is deleted.
    misses_days: int = 30
    # Where polling mode serves /metrics (None: not at all; the webhook server always does).
    metrics_port: int | None = None
    # "text" or "json" (one event a line).
    log_format: str = "text"
    # postgresql://... for a store shared by several replicas; None: SQLite in data_dir.
    database_url: str | None = None
    # A knowledge base folder to use instead of the one shipped with the package.
    knowledge_dir: Path | None = None
    # The console's locale (LANG / LC_ALL), its reader's language when nothing else says.
    locale: str | None = None
    # How often the status poller reads the status page while it answers (failures back off from there to 15 min).
    status_poll_seconds: float = 60.0
    # Replicas: the poller holds its lease this long after each renewal, renewed (and looked at by the others) every
    # half of it, so a dead poller is replaced within 1.5 leases: a minute.
    status_lease_seconds: float = 40.0
    # Replicas (DATABASE_URL): an update another replica took becomes this one's to finish once that replica has not
    # renewed its claim for this long. A live replica renews the claims on all its unfinished updates every sweep,
    # however long they wait in its queue (a chat held by a flood wait, the OCR queue), so this only has to outlast
    # a few missed renewals, not the slowest update; a dead one's updates are taken over 60-75 s after it died.
    inbox_stale_seconds: float = 60.0
    # Replicas: how often each renews its own claims and looks for stale ones to take over.
    inbox_sweep_seconds: float = 15.0


def read_environment() -> dict[str, str]:
    """The process environment with ./.env under it (a variable already set wins over the file)."""
    from dotenv import dotenv_values

    env = {k: v for k, v in dotenv_values(Path.cwd() / ".env").items() if v is not None}
    env.update(os.environ)
    return env


def file_url_for(base_url: str) -> str:
    """The file-download base matching a Bot API base URL ('.../bot' -> '.../file/bot')."""
    head, sep, tail = base_url.rstrip("/").rpartition("/bot")
    return f"{head}/file/bot{tail}" if sep else base_url.rstrip("/") + "/file/bot"


def load_settings(*, webhook: bool = False, env: dict[str, str] | None = None, need_token: bool = True) -> Settings:
    """Settings from `env` (default: the process environment and ./.env), or ConfigError naming the first bad
    variable. Without `need_token` (the console, the CLI) a missing token is no error."""
    env = read_environment() if env is None else env

    def get(name: str, default: str = "") -> str:
        return env.get(name, default).strip()

    token = _token(get("TELEGRAM_BOT_TOKEN"), need_token)
    base_url = _base_url(get("TELEGRAM_BASE_URL") or OFFICIAL_BASE_URL)
    webhook_url, secret = _webhook(get("WEBHOOK_URL") or None, get("WEBHOOK_SECRET") or None, webhook)
    level = get("LOG_LEVEL", "INFO").upper()
    if level not in _LEVELS:
        raise ConfigError(f"LOG_LEVEL must be one of {', '.join(_LEVELS)}, got {level!r}")
    log_format = get("LOG_FORMAT", "text").lower()
    if log_format not in ("text", "json"):
        raise ConfigError(f"LOG_FORMAT must be text or json, got {log_format!r}")
    operators = get("OPERATOR_IDS").replace(",", " ").split()
    if not all(o.lstrip("-").isdigit() for o in operators):
        raise ConfigError("OPERATOR_IDS must be Telegram user ids (numbers) separated by commas")
    database_url = get("DATABASE_URL") or None
    if database_url is not None and not database_url.startswith(("postgresql://", "postgres://")):
        raise ConfigError("DATABASE_URL must be a postgresql:// URL (leave it unset for SQLite in DATA_DIR)")
    metrics_port = get("METRICS_PORT")
    stale, sweep = _inbox_timings(get("INBOX_STALE_SECONDS"), get("INBOX_SWEEP_SECONDS"))
    return Settings(
        token=token,
        base_url=base_url,
        base_file_url=get("TELEGRAM_BASE_FILE_URL") or file_url_for(base_url),
        webhook_url=webhook_url,
        webhook_secret=secret,
        listen=get("LISTEN") or "127.0.0.1",
        port=_number("PORT", get("PORT", "8080"), 1, 65535, "a port number"),
        data_dir=Path(get("DATA_DIR") or "data"),
        log_level=level,
        status_page_url=env.get("STATUS_PAGE_URL", DEFAULT_STATUS_PAGE).strip(),
        operator_ids=frozenset(int(o) for o in operators),
        misses_days=_number("MISSES_DAYS", get("MISSES_DAYS", "30"), 1, 3650, "a number of days"),
        metrics_port=_number("METRICS_PORT", metrics_port, 1, 65535, "a port number") if metrics_port else None,
        log_format=log_format,
        database_url=database_url,
        knowledge_dir=Path(get("KNOWLEDGE_DIR")) if get("KNOWLEDGE_DIR") else None,
        locale=(get("LC_ALL") or get("LANG") or None),
        status_poll_seconds=_seconds("STATUS_POLL_SECONDS", get("STATUS_POLL_SECONDS"), 1, 900),
        status_lease_seconds=_seconds("STATUS_LEASE_SECONDS", get("STATUS_LEASE_SECONDS"), 2, 600),
        inbox_stale_seconds=stale,
        inbox_sweep_seconds=sweep,
    )


def _token(token: str, needed: bool) -> str:
    if not token and needed:
        raise ConfigError("TELEGRAM_BOT_TOKEN is not set: get a token from @BotFather and put it in the environment")
    if token and not re.fullmatch(r"\d+:[A-Za-z0-9_-]{20,}", token):
        raise ConfigError("TELEGRAM_BOT_TOKEN does not look like a bot token (expected '123456:ABC...')")
    return token


def _base_url(base_url: str) -> str:
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"TELEGRAM_BASE_URL must start with http:// or https://, got {base_url!r}")
    if not urlparse(base_url).path.rstrip("/").endswith("/bot"):
        # The token is appended to this URL: without /bot it would land in the host or port (and in error lines).
        raise ConfigError(
            "TELEGRAM_BASE_URL must end in /bot (e.g. http://127.0.0.1:8081/bot): the token is appended to it"
        )
    return base_url


def _webhook(url: str | None, secret: str | None, webhook: bool) -> tuple[str | None, str | None]:
    if webhook:
        if not url or not url.startswith(("https://", "http://")):
            raise ConfigError("webhook mode needs WEBHOOK_URL, the public https:// address Telegram should post to")
        if not secret:
            raise ConfigError(
                "webhook mode needs WEBHOOK_SECRET (letters, digits, _ and -), to verify Telegram's posts"
            )
    if secret is not None and not _SECRET.match(secret):
        raise ConfigError("WEBHOOK_SECRET may only contain letters, digits, _ and - (1-256 characters)")
    return url, secret


def _number(name: str, text: str, low: int, high: int, what: str) -> int:
    if not text.isdigit() or not low <= int(text) <= high:
        raise ConfigError(f"{name} must be {what} ({low}-{high}), got {text!r}")
    return int(text)


def _inbox_timings(stale_text: str, sweep_text: str) -> tuple[float, float]:
    stale = _seconds("INBOX_STALE_SECONDS", stale_text, 2, 3600)
    sweep = _seconds("INBOX_SWEEP_SECONDS", sweep_text, 1, 1800)
    if stale < 2 * sweep:
        # A live replica's claims are up to a sweep old: any closer and its work would look abandoned.
        raise ConfigError(
            f"INBOX_STALE_SECONDS must be at least twice INBOX_SWEEP_SECONDS (a replica renews its claims once a "
            f"sweep), got {stale:g} and {sweep:g}"
        )
    return stale, sweep


def _seconds(name: str, text: str, low: float, high: float) -> float:
    """A duration in seconds, decimals allowed ('2.5'), or the Settings default when empty; ConfigError outside
    low-high (nan and inf included)."""
    if not text:
        return float(getattr(Settings, name.lower()))
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not low <= value <= high:
        raise ConfigError(f"{name} must be a number of seconds ({low:g}-{high:g}), got {text!r}")
    return value


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with each secret (the token, the webhook secret) replaced by a placeholder."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<redacted>")
    return text


class RedactToken(logging.Formatter):
    """A formatter that replaces the bot token and the webhook secret in the whole formatted record, tracebacks
    included, at every level."""

    def __init__(self, token: str, fmt: str | None = None, secrets: Iterable[str | None] = ()) -> None:
        super().__init__(fmt)
        self.token = token
        self.secrets = tuple(s for s in secrets if s)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if self.token:
            text = text.replace(self.token, "<token>")
        for secret in self.secrets:
            text = text.replace(secret, "<secret>")
        return text


class RedactJson(RedactToken):
    """One JSON object a line (time, level, logger, message, and the traceback if any), secrets redacted."""

    def format(self, record: logging.LogRecord) -> str:
        event = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            event["error"] = self.formatException(record.exc_info)
        text = json.dumps(event, ensure_ascii=False)
        if self.token:
            text = text.replace(self.token, "<token>")
        for secret in self.secrets:
            text = text.replace(secret, "<secret>")
        return text


def setup_logging(level: str, token: str = "", secrets: Iterable[str | None] = (), log_format: str = "text") -> None:
    """Log to stderr at `level` (as text, or one JSON object a line), with httpx's per-request lines off and the
    token and secrets redacted everywhere."""
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(RedactJson(token, None, secrets))
    else:
        handler.setFormatter(RedactToken(token, "%(asctime)s %(levelname)s %(name)s: %(message)s", secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs each request URL at INFO, and Bot API URLs contain the token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
