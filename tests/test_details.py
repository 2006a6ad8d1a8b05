"""Reading the details inside an error message, on strings people pasted in public threads."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.core.details import extract, until

# 2026-12-03 09:30 in Shanghai.
NOW = datetime(2026, 12, 3, 1, 30, tzinfo=UTC)
SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Claude usage limit reached. Your limit will reset at 5pm (Asia/Shanghai)", "2026-12-03T17:00:00+08:00"),
        ("You've hit your limit · resets 3am (Asia/Shanghai)", "2026-12-04T03:00:00+08:00"),
        ("You've hit your session limit · resets 12:50pm (Europe/Paris)", "2026-12-03T12:50:00+01:00"),
        ("You've hit your limit · resets Apr 23 at 4pm (America/Recife)", "2027-04-23T16:00:00-03:00"),
        ("Claude AI usage limit reached|1733000000", "2024-11-30T20:53:20+00:00"),
        ("Usage limit reached. Please try again in 4 hours", "2026-12-03T05:30:00+00:00"),
        ("5-hour limit reached - resets in 2 h 13 min", "2026-12-03T03:43:00+00:00"),
    ],
)
def test_the_reset_time_is_read_in_the_zone_the_error_names(text: str, expected: str) -> None:
    reset = extract(text, now=NOW).reset_at
    assert reset is not None and reset.isoformat() == expected


def test_a_reset_time_without_a_zone_is_in_the_readers_zone() -> None:
    reset = extract("Your limit will reset at 5pm", now=NOW, tz=SHANGHAI).reset_at
    assert reset == datetime(2026, 12, 3, 17, 0, tzinfo=SHANGHAI)


def test_a_reset_time_in_no_known_zone_is_not_guessed() -> None:
    assert extract("Your limit will reset at 5pm", now=NOW).reset_at is None


@pytest.mark.parametrize(
    "text", ["resets soon", "Weekly limits reset every Monday", "limit reached|17330", "resets 25pm (Asia/Shanghai)"]
)
def test_a_reset_time_that_cannot_be_read_is_left_out(text: str) -> None:
    assert extract(text, now=NOW).reset_at is None


@pytest.mark.parametrize(
    ("text", "tokens", "limit"),
    [
        ("prompt is too long: 215000 tokens > 200000 maximum", 215000, 200000),
        ("input length and max_tokens exceed context limit: 187023 + 21333 > 200000", 208356, 200000),
        ("The input (233864 tokens) is longer than the model's context length (202752 tokens)", 233864, 202752),
    ],
)
def test_token_counts_and_the_limit_are_read(text: str, tokens: int, limit: int) -> None:
    d = extract(text, now=NOW)
    assert (d.tokens, d.limit, d.over_by) == (tokens, limit, tokens - limit)


@pytest.mark.parametrize(
    ("text", "model"),
    [
        ("No capacity available for model claude-sonnet-4-6 on the server", "claude-sonnet-4-6"),
        ("Opus 4.5 is overloaded, please use /model to switch", "Opus 4.5"),
        ("claude-code: Opus is experiencing high load", "Opus"),
        ("claude-code keeps failing", None),
    ],
)
def test_the_model_is_read_by_id_or_name(text: str, model: str | None) -> None:
    assert extract(text, now=NOW).model == model


def test_a_529_with_a_request_id_gives_status_type_and_id() -> None:
    text = (
        'API Error: 529 {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},'
        '"request_id":"req_011CZTEFvft13DajMTp9pp64"}'
    )
    d = extract(text, now=NOW)
    assert (d.status_code, d.error_type, d.request_id) == (529, "overloaded_error", "req_011CZTEFvft13DajMTp9pp64")


def test_the_last_retry_attempt_of_a_log_is_read() -> None:
    log = (
        "API Error (529 {...}) · Retrying in 1 seconds… (attempt 1/10)\n"
        "API Error (529 {...}) · Retrying in 4 seconds… (attempt 4/10)"
    )
    d = extract(log, now=NOW)
    assert (d.status_code, d.retry_attempt, d.retry_max) == (529, 4, 10)


def test_chat_has_no_details() -> None:
    assert not extract("how was your weekend? I slept till 5pm", now=NOW)


def test_time_until_a_reset_is_hours_and_minutes_rounded_up() -> None:
    assert until(datetime(2026, 12, 3, 3, 43, 30, tzinfo=UTC), NOW) == (2, 14)
    assert until(NOW, NOW) is None
