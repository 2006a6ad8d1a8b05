"""Settings from the environment, the token redaction and the SQLite store."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.cooldown import Cooldown
from bot.services.sqlite_store import SqliteStore
from bot.services.store import StorageError
from bot.settings import ConfigError, RedactToken, Settings, file_url_for, load_settings

TOKEN = "123456:ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef"


def test_defaults_with_only_a_token() -> None:
    s = load_settings(env={"TELEGRAM_BOT_TOKEN": TOKEN})
    assert s.base_url == "https://api.telegram.org/bot" and s.base_file_url == "https://api.telegram.org/file/bot"
    assert s.data_dir == Path("data") and s.port == 8080


def test_self_hosted_base_url_gets_a_matching_file_url() -> None:
    s = load_settings(env={"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_BASE_URL": "http://127.0.0.1:8081/bot"})
    assert s.base_file_url == "http://127.0.0.1:8081/file/bot"
    assert file_url_for("http://h/x") == "http://h/x/file/bot"


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({}, "TELEGRAM_BOT_TOKEN is not set"),
        ({"TELEGRAM_BOT_TOKEN": "nope"}, "does not look like a bot token"),
        ({"TELEGRAM_BOT_TOKEN": TOKEN, "PORT": "http"}, "PORT must be a port number"),
        ({"TELEGRAM_BOT_TOKEN": TOKEN, "LOG_LEVEL": "LOUD"}, "LOG_LEVEL must be one of"),
        ({"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_BASE_URL": "ftp://x"}, "TELEGRAM_BASE_URL must start"),
        ({"TELEGRAM_BOT_TOKEN": TOKEN, "WEBHOOK_SECRET": "has space"}, "WEBHOOK_SECRET may only contain"),
    ],
)
def test_bad_settings_are_one_clear_line(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle) as info:
        load_settings(env=env)
    assert "\n" not in str(info.value)


def timings(s: Settings) -> tuple[float, float, float, float]:
    return s.status_poll_seconds, s.status_lease_seconds, s.inbox_stale_seconds, s.inbox_sweep_seconds


def test_the_replicas_timings_are_settings_in_seconds() -> None:
    assert timings(load_settings(env={"TELEGRAM_BOT_TOKEN": TOKEN})) == (60, 40, 60, 15)
    short = {
        "STATUS_POLL_SECONDS": "1",
        "STATUS_LEASE_SECONDS": " 4 ",
        "INBOX_STALE_SECONDS": "10",
        "INBOX_SWEEP_SECONDS": "2.5",
    }
    assert timings(load_settings(env={"TELEGRAM_BOT_TOKEN": TOKEN, **short})) == (1, 4, 10, 2.5)
    # Set but empty (as a copied .env.example may leave it): the default.
    empty = load_settings(env={"TELEGRAM_BOT_TOKEN": TOKEN, **dict.fromkeys(short, "")})
    assert empty.inbox_stale_seconds == 60 and empty.status_lease_seconds == 40


@pytest.mark.parametrize(
    ("name", "value", "needle"),
    [
        ("STATUS_POLL_SECONDS", "soon", "STATUS_POLL_SECONDS must be a number of seconds (1-900), got 'soon'"),
        ("STATUS_POLL_SECONDS", "0", "STATUS_POLL_SECONDS must be a number of seconds"),
        ("STATUS_POLL_SECONDS", "901", "STATUS_POLL_SECONDS must be a number of seconds"),
        ("STATUS_LEASE_SECONDS", "-40", "STATUS_LEASE_SECONDS must be a number of seconds (2-600), got '-40'"),
        ("STATUS_LEASE_SECONDS", "nan", "STATUS_LEASE_SECONDS must be a number of seconds"),
        ("INBOX_STALE_SECONDS", "inf", "INBOX_STALE_SECONDS must be a number of seconds (2-3600), got 'inf'"),
        ("INBOX_STALE_SECONDS", "5m", "INBOX_STALE_SECONDS must be a number of seconds"),
        ("INBOX_SWEEP_SECONDS", "0.5", "INBOX_SWEEP_SECONDS must be a number of seconds (1-1800), got '0.5'"),
        # Renewed only once a sweep, a live replica's claims would look stale to the others between renewals.
        ("INBOX_STALE_SECONDS", "20", "INBOX_STALE_SECONDS must be at least twice INBOX_SWEEP_SECONDS"),
    ],
)
def test_a_bad_timing_is_one_line_naming_it(name: str, value: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env={"TELEGRAM_BOT_TOKEN": TOKEN, name: value})
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_webhook_mode_needs_url_and_secret() -> None:
    with pytest.raises(ConfigError, match="WEBHOOK_URL"):
        load_settings(webhook=True, env={"TELEGRAM_BOT_TOKEN": TOKEN})
    with pytest.raises(ConfigError, match="WEBHOOK_SECRET"):
        load_settings(webhook=True, env={"TELEGRAM_BOT_TOKEN": TOKEN, "WEBHOOK_URL": "https://x.example/hook"})


def test_token_is_redacted_from_log_lines_and_tracebacks() -> None:
    try:
        raise RuntimeError(f"The token `{TOKEN}` was rejected")
    except RuntimeError:
        import sys

        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "httpx", logging.INFO, __file__, 1, "POST %s", (f"https://api/bot{TOKEN}/getMe",), exc_info
    )
    text = RedactToken(TOKEN).format(record)
    assert TOKEN not in text and text.count("<token>") == 2


async def test_settings_survive_reopening(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path)
    await store.set_autoreply(-100, False)
    await store.set_chat_lang(-100, "zh")
    await store.set_user_lang(7, "en")
    await store.remember_answer(-100, 5, 6)
    await store.close()
    again = SqliteStore(tmp_path)
    assert (await again.chat(-100)).autoreply is False and (await again.chat(-100)).lang == "zh"
    assert (await again.chat(-1)).autoreply is True
    assert (await again.user(7)).lang == "en" and await again.answer_for(-100, 5) == 6
    await again.close()


def test_unwritable_data_dir_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageError, match=r"DATA_DIR .* is not usable"):
        SqliteStore(blocker / "data")


def test_cooldown_allows_one_answer_per_key_per_period() -> None:
    now = [0.0]
    cd = Cooldown(600, clock=lambda: now[0])
    assert cd.ready(1, "capacity")
    cd.mark(1, "capacity")
    assert not cd.ready(1, "capacity") and cd.ready(1, "network") and cd.ready(2, "capacity")
    now[0] = 600.0
    assert cd.ready(1, "capacity")
