"""The console chat shows the same live lines as the bot: peak hours, and the status page when one is given."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

from bot.console import chat
from tests.fake_statuspage import FakeStatuspage

CAPACITY = "Due to unexpected capacity constraints, Claude is unable to respond to your message.\n"
SERVICE = "Claude is currently experiencing a temporary service disruption.\n"
# Tuesday 2026-03-10 15:00 UTC: inside the peak window, which ends at 18:00 UTC.
NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)


def run(lines: str, *, status_url: str | None = None, lang: str = "en") -> str:
    out = io.StringIO()
    assert chat(io.StringIO(lines), out, lang=lang, status_url=status_url, now=lambda: NOW) == 0
    return out.getvalue()


def test_capacity_answer_has_the_peak_line_and_no_status_line_without_a_page() -> None:
    out = run(CAPACITY)
    assert "It's peak hours now (until 18:00, UTC)" in out
    assert "Status page" not in out


def test_service_answer_names_the_open_incident_like_the_bot(page: FakeStatuspage) -> None:
    page.state = "major"
    out = run(SERVICE, status_url=page.base_url)
    assert "Status page: “claude.ai and Claude Code unavailable for many users” is open (since 09:12, UTC)." in out


def test_status_and_tz_commands_work_in_the_console(page: FakeStatuspage) -> None:
    page.state = "minor"
    out = run("/tz Europe/Berlin\n/status\n", status_url=page.base_url)
    assert "your time zone is now Europe/Berlin" in out
    assert "Elevated errors on Claude Opus" in out and "Times in Europe/Berlin" in out


def test_status_in_the_console_without_a_page_says_it_is_off() -> None:
    assert "turned off" in run("/status\n")


def test_piped_console_input_never_reads_the_environments_status_page(monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing listens at this address; a scripted run must not even try it.
    monkeypatch.setenv("STATUS_PAGE_URL", "http://127.0.0.1:9")
    assert "turned off" in run("/status\n")


def test_asking_whether_claude_is_down_shows_the_status_page(page: FakeStatuspage) -> None:
    page.state = "major"
    out = run("is claude down right now?\n", status_url=page.base_url)
    assert "Claude status: Partial system outage" in out
