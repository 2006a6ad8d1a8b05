"""The live lines as pure logic: status and peak lines under diagnoses, /status, incident messages, /tz answers."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.core.live import UPDATE_LIMIT, Live
from bot.core.matcher import Diagnosis, get_matcher
from bot.core.notify import EventKind, diff
from bot.core.replies import Markup
from bot.core.responder import Responder
from bot.services.status import Component, StatusSummary, parse_summary
from tests.fake_statuspage import MAJOR_INCIDENT_ID, MINOR_INCIDENT_ID, summary

SH = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
UTC_ZONE = ZoneInfo("UTC")
PAGE = "https://status.claude.com"
# Tuesday 2026-03-10 15:00 UTC: 08:00 in Los Angeles (PDT since 03-08), inside the 05:00-11:00 peak.
IN_PEAK = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
CAPACITY = "Due to unexpected capacity constraints, Claude is unable to respond to your message. Please try again soon."


def look(state: str) -> StatusSummary:
    return parse_summary(summary(state))


def cause(name: str) -> Diagnosis:
    return Diagnosis(cause=name, confidence=0.9)


@pytest.fixture(scope="module")
def html() -> Live:
    return Live(get_matcher().kb, Markup.HTML)


@pytest.fixture(scope="module")
def plain() -> Live:
    return Live(get_matcher().kb, Markup.PLAIN)


# --- the status line --------------------------------------------------------------------------------


def test_status_line_names_the_open_incident_and_since_when_in_the_users_zone(plain: Live) -> None:
    line = plain.status_line(look("major"), IN_PEAK, SH, "en")
    # Started 09:12 UTC = 17:12 in Shanghai.
    name = "claude.ai and Claude Code unavailable for many users"
    assert line == f"Status page: “{name}” is open (since 17:12, Asia/Shanghai)."


def test_status_line_without_incidents_points_at_the_users_side(plain: Live) -> None:
    line = plain.status_line(look("ok"), IN_PEAK, UTC_ZONE, "en")
    assert line == "Status page: no incident reported: the problem is more likely on your side (network)."


def test_status_line_picks_the_worst_incident_and_counts_the_rest(plain: Live) -> None:
    page = look("major")
    both = replace(page, incidents=[*look("minor").incidents, *page.incidents])
    line = plain.status_line(both, IN_PEAK, UTC_ZONE, "en")
    assert "claude.ai and Claude Code unavailable" in line and line.endswith("1 more open: send /status.")


def test_status_line_in_chinese(plain: Live) -> None:
    assert plain.status_line(look("ok"), IN_PEAK, SH, "zh").startswith("状态页：没有报告故障")


def test_status_line_escapes_the_incident_name_in_html(html: Live) -> None:
    page = look("minor")
    evil = replace(page, incidents=[replace(page.incidents[0], name="<b>Opus</b> & co")])
    assert "&lt;b&gt;Opus&lt;/b&gt; &amp; co" in html.status_line(evil, IN_PEAK, UTC_ZONE, "en")


# --- which lines a diagnosis gets -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [("service", ["Status page"]), ("capacity", ["Status page", "peak hours"]), ("context", ["peak hours"])],
)
def test_each_cause_gets_its_live_lines(plain: Live, name: str, expected: list[str]) -> None:
    lines = plain.diagnosis_lines(cause(name), look("ok"), IN_PEAK, UTC_ZONE, "en")
    assert [next(k for k in ("Status page", "peak hours") if k in line) for line in lines] == expected


def test_network_and_unmatched_diagnoses_get_no_live_lines(plain: Live) -> None:
    assert plain.diagnosis_lines(cause("network"), look("major"), IN_PEAK, UTC_ZONE, "en") == ()
    assert plain.diagnosis_lines(Diagnosis(None, 0.0), look("major"), IN_PEAK, UTC_ZONE, "en") == ()


def test_unreachable_page_leaves_out_only_the_status_line(plain: Live) -> None:
    lines = plain.diagnosis_lines(cause("capacity"), None, IN_PEAK, UTC_ZONE, "en")
    assert len(lines) == 1 and "peak hours" in lines[0]


def test_live_lines_come_after_the_main_fix_and_before_the_runner_up() -> None:
    responder = Responder(get_matcher(), Markup.PLAIN)
    answer = responder.diagnosis(CAPACITY, "en")
    assert answer.diagnosis is not None
    mixed = replace(answer, diagnosis=replace(answer.diagnosis, runner_up="network"))
    text = responder.with_live(mixed, "en", look("ok"), IN_PEAK, UTC_ZONE).text
    fix_step = text.index("4. On the API")
    assert fix_step < text.index("Status page: no incident") < text.index("peak hours now") < text.index("also be")


# --- the peak line ----------------------------------------------------------------------------------


def test_peak_line_in_peak_says_when_it_ends_in_the_users_zone(plain: Live) -> None:
    # 11:00 PDT = 02:00 the next day in Shanghai.
    line = plain.peak_line(IN_PEAK, SH, "en")
    assert line is not None and line.startswith("It's peak hours now (until tomorrow 02:00, Asia/Shanghai)")


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # A Friday evening in winter (PST): Monday's peak is 13:00-19:00 UTC.
        (datetime(2026, 2, 27, 20, 0, tzinfo=UTC), "Next peak: Mon 13:00–19:00 (UTC)."),
        # The Friday before the US switch to summer time (Sunday 03-08): Monday's peak is PDT, an hour earlier.
        (datetime(2026, 3, 6, 20, 0, tzinfo=UTC), "Next peak: Mon 12:00–18:00 (UTC)."),
        # The Friday before the switch back (Sunday 11-01): Monday's peak is PST again.
        (datetime(2026, 10, 30, 20, 0, tzinfo=UTC), "Next peak: Mon 13:00–19:00 (UTC)."),
    ],
)
def test_peak_line_off_peak_says_when_the_next_starts_across_dst(plain: Live, now: datetime, expected: str) -> None:
    line = plain.peak_line(now, UTC_ZONE, "en")
    assert line == f"It's not peak hours now. {expected}"


def test_peak_line_in_traditional_chinese(plain: Live) -> None:
    line = plain.peak_line(IN_PEAK, SH, "zh-hant")
    assert line is not None and line.startswith("現在是高峰時段")


def test_no_peak_window_no_peak_line() -> None:
    kb = get_matcher().kb
    live = Live(replace(kb, peak=None), Markup.PLAIN)
    assert live.window is None
    assert live.peak_line(IN_PEAK, UTC_ZONE, "en") is None


# --- times ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2026, 3, 10, 1, 0, tzinfo=UTC), "01:00"),
        (datetime(2026, 3, 11, 1, 0, tzinfo=UTC), "tomorrow 01:00"),
        (datetime(2026, 3, 9, 23, 0, tzinfo=UTC), "yesterday 23:00"),
        (datetime(2026, 3, 13, 9, 30, tzinfo=UTC), "Fri 09:30"),
        (datetime(2026, 2, 1, 9, 30, tzinfo=UTC), "2026-02-01 09:30"),
    ],
)
def test_when_says_today_tomorrow_yesterday_weekday_or_date(plain: Live, moment: datetime, expected: str) -> None:
    assert plain.when(moment, IN_PEAK, UTC_ZONE, "en") == expected


def test_when_uses_the_users_date_not_utcs(plain: Live) -> None:
    # 23:30 UTC on the 10th is already the 11th in Shanghai, where it is also "now" the 11th.
    late = datetime(2026, 3, 10, 23, 30, tzinfo=UTC)
    assert plain.when(late, datetime(2026, 3, 10, 17, 0, tzinfo=UTC), SH, "zh") == "07:30"
    assert plain.when(late, datetime(2026, 3, 10, 12, 0, tzinfo=UTC), SH, "zh") == "明天 07:30"


# --- /status ----------------------------------------------------------------------------------------


def test_status_page_shows_state_components_incident_update_and_link(html: Live) -> None:
    text = html.status_page(look("major"), PAGE, IN_PEAK, BERLIN, "en")
    assert text.startswith("<b>Claude status: Partial system outage</b>")
    assert "• claude.ai: major outage\n• Claude Code: partial outage" in text
    assert "identified, impact major; since 10:12, last update 10:41" in text  # CET
    assert "The issue has been identified and a fix is being implemented.\nclaude.ai may not load." in text
    assert f'<a href="{PAGE}/incidents/{MAJOR_INCIDENT_ID}">Details</a>' in text
    assert text.endswith("Times in Europe/Berlin (change with /tz). Source: status.claude.com")


def test_status_page_all_clear(plain: Live) -> None:
    text = plain.status_page(look("ok"), PAGE, IN_PEAK, UTC_ZONE, "en")
    assert "All systems operational" in text
    assert "All 5 components operational.\nNo open incidents." in text


def test_status_page_escapes_everything_from_the_page(html: Live) -> None:
    page = look("minor")
    incident = replace(page.incidents[0], name="A <i>", latest_update="x < y & z", url=f'{PAGE}/"><script>')
    evil = replace(page, incidents=[incident], components=[Component("<api>", "major_outage")])
    text = html.status_page(evil, PAGE, IN_PEAK, UTC_ZONE, "en")
    assert "<i>" not in text and "<script>" not in text and "<api>" not in text
    assert "<b>A &lt;i&gt;</b>" in text and "x &lt; y &amp; z" in text
    assert 'href="https://status.claude.com/&quot;&gt;&lt;script&gt;"' in text


def test_status_page_plain_text_has_the_bare_link(plain: Live) -> None:
    text = plain.status_page(look("minor"), PAGE, IN_PEAK, UTC_ZONE, "en")
    assert f"Details: {PAGE}/incidents/{MINOR_INCIDENT_ID}" in text and "<" not in text


def test_a_runaway_update_is_clipped(plain: Live) -> None:
    page = look("minor")
    long = replace(page, incidents=[replace(page.incidents[0], latest_update="word " * 2000)])
    text = plain.status_page(long, PAGE, IN_PEAK, UTC_ZONE, "en")
    update_line = next(line for line in text.splitlines() if line.startswith("word"))
    assert len(update_line) <= UPDATE_LIMIT and update_line.endswith("…")


def test_a_huge_incident_name_is_cut_before_markup_never_inside_a_tag(html: Live) -> None:
    import re

    from bot.core.replies import split_message

    page = look("major")
    huge = replace(page, incidents=[replace(i, name="Outage <x> & " * 400) for i in page.incidents])
    text = html.status_page(huge, PAGE, IN_PEAK, UTC_ZONE, "en")
    for part in split_message(text):
        assert len(part) <= 4096
        assert part.count("<b>") == part.count("</b>")
        assert "<x>" not in part and not re.search(r"<(?!/?(b|a|i|code)\b)", part)
    status_line = html.status_line(huge, IN_PEAK, UTC_ZONE, "en")
    assert len(status_line) < 600


def test_status_page_in_chinese_translates_the_page_vocabulary(plain: Live) -> None:
    text = plain.status_page(look("major"), PAGE, IN_PEAK, SH, "zh")
    assert "Claude 状态：部分服务严重故障" in text and "claude.ai：严重中断" in text and "已找到原因" in text


def test_status_unavailable_gives_the_reason_escaped(html: Live) -> None:
    text = html.status_unavailable("status page sent <html>", PAGE, "en")
    assert "(status page sent &lt;html&gt;)" in text and PAGE in text


# --- incident messages ------------------------------------------------------------------------------


def test_opened_message_has_name_state_update_and_link(plain: Live) -> None:
    [event] = diff(diff(None, look("ok"))[1], look("minor"))[0]
    text = plain.event(event, IN_PEAK, UTC_ZONE, "en")
    title, meta = text.splitlines()[:2]
    assert title == "🔴 Claude incident: Elevated errors on Claude Opus"
    assert meta.startswith("investigating, impact minor; since 14:03")
    assert "We are continuing to investigate this issue." in text
    assert f"{PAGE}/incidents/{MINOR_INCIDENT_ID}" in text and "/unsubscribe" in text


def test_updated_message_has_the_new_update(plain: Live) -> None:
    [event] = diff(diff(None, look("minor"))[1], look("minor_update"))[0]
    text = plain.event(event, IN_PEAK, UTC_ZONE, "en")
    assert text.startswith("🟡 Incident update: Elevated errors on Claude Opus\nfixed, monitoring")
    assert "A fix has been implemented and we are monitoring the results." in text


def test_resolved_message_uses_what_was_remembered(plain: Live) -> None:
    [event] = diff(diff(None, look("minor"))[1], look("ok"))[0]
    assert event.kind is EventKind.RESOLVED
    text = plain.event(event, IN_PEAK, SH, "zh")
    assert text.startswith("✅ 故障已恢复：Elevated errors on Claude Opus\n从 22:03 开始")
    assert "Asia/Shanghai" in text


def test_maintenance_messages_say_maintenance(plain: Live) -> None:
    [event] = diff(diff(None, look("ok"))[1], look("maintenance"))[0]
    assert plain.event(event, IN_PEAK, UTC_ZONE, "en").startswith("🔧 Claude maintenance started:")


# --- /tz --------------------------------------------------------------------------------------------


def test_tz_answer_shows_the_zone_and_its_time(plain: Live) -> None:
    text = plain.tz_answer("tz_set", IN_PEAK, BERLIN, "en")
    assert text == "OK, your time zone is now Europe/Berlin (it's 16:00 there)."


def test_unknown_tz_answer_is_clear_clipped_and_escaped(html: Live) -> None:
    text = html.tz_unknown("<b>" + "x" * 200, "en")
    assert text.startswith("I don't know the time zone “&lt;b&gt;x") and "Asia/Shanghai" in text
    assert len(text) < 260
