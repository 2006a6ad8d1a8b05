"""The status client against a fake Statuspage on loopback: parsing, failures, cache, single flight, CLI."""

from __future__ import annotations

import asyncio
import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.services.status import (
    Component,
    Incident,
    StatusClient,
    StatusError,
    StatusSummary,
    parse_summary,
    status_command,
)
from tests.fake_statuspage import (
    MAINTENANCE_ID,
    MAJOR_INCIDENT_ID,
    MAJOR_UPDATE_BODY,
    MINOR_INCIDENT_ID,
    MINOR_NEXT_UPDATE_BODY,
    MINOR_NEXT_UPDATE_ID,
    MINOR_UPDATE_ID,
    FakeStatuspage,
    summary,
    unused_port_url,
)

PAGE_URL = "https://status.claude.com"
Capture = pytest.CaptureFixture[str]
NAMES = [
    "claude.ai",
    "platform.claude.com",
    "Claude API (api.anthropic.com)",
    "Claude Code",
    "Claude for Government",
]


def ts(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def components(**changed: str) -> list[Component]:
    return [Component(name, changed.get(name, "operational")) for name in NAMES]


MINOR = Incident(
    id=MINOR_INCIDENT_ID,
    name="Elevated errors on Claude Opus",
    status="investigating",
    impact="minor",
    updated_at=ts(2026, 3, 10, 14, 20, 5, 101000),
    url=f"{PAGE_URL}/incidents/{MINOR_INCIDENT_ID}",
    latest_update="We are continuing to investigate this issue.",
    started_at=ts(2026, 3, 10, 14, 3, 21, 512000),
    latest_update_id=MINOR_UPDATE_ID,
)
MAJOR = Incident(
    id=MAJOR_INCIDENT_ID,
    name="claude.ai and Claude Code unavailable for many users",
    status="identified",
    impact="major",
    updated_at=ts(2026, 3, 10, 9, 41, 10, 870000),
    url=f"{PAGE_URL}/incidents/{MAJOR_INCIDENT_ID}",
    latest_update=MAJOR_UPDATE_BODY,
    started_at=ts(2026, 3, 10, 9, 12, 44, 20000),
    latest_update_id="u4",
)
MAINTENANCE = Incident(
    id=MAINTENANCE_ID,
    name="Claude Console database maintenance",
    status="in_progress",
    impact="maintenance",
    updated_at=ts(2026, 3, 10, 6, 0, 2, 511000),
    url=f"{PAGE_URL}/incidents/{MAINTENANCE_ID}",
    latest_update="Scheduled maintenance is currently in progress. We will provide updates as necessary.",
    started_at=ts(2026, 3, 10, 6, 0),
    latest_update_id="m3",
)
EXPECTED = {
    "ok": ("none", "All Systems Operational", [], components()),
    "minor": (
        "minor",
        "Minor Service Outage",
        [MINOR],
        components(**{"Claude API (api.anthropic.com)": "degraded_performance"}),
    ),
    "major": (
        "major",
        "Partial System Outage",
        [MAJOR],
        components(**{"claude.ai": "major_outage", "Claude Code": "partial_outage"}),
    ),
    "maintenance": (
        "maintenance",
        "Service Under Maintenance",
        [MAINTENANCE],
        components(**{"platform.claude.com": "under_maintenance"}),
    ),
}


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# --- parsing -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", list(EXPECTED))
async def test_each_state_is_parsed(page: FakeStatuspage, state: str) -> None:
    page.state = state
    client = StatusClient(page.base_url, timeout=2)
    try:
        result = await client.get()
    finally:
        await client.aclose()
    indicator, description, incidents, comps = EXPECTED[state]
    assert (result.indicator, result.description) == (indicator, description)
    assert result.incidents == incidents
    assert result.components == comps
    assert result.not_operational() == [c for c in comps if c.status != "operational"]
    assert result.fetched_at.tzinfo is not None
    assert page.paths == ["/api/v2/summary.json"]


def test_to_json_shape_is_exact() -> None:
    result = parse_summary(summary("minor"))
    assert result.to_json() == {
        "indicator": "minor",
        "description": "Minor Service Outage",
        "incidents": [
            {
                "name": "Elevated errors on Claude Opus",
                "status": "investigating",
                "impact": "minor",
                "updated_at": "2026-03-10T14:20:05.101000+00:00",
                "url": f"{PAGE_URL}/incidents/{MINOR_INCIDENT_ID}",
            }
        ],
        "components": [
            {"name": "claude.ai", "status": "operational"},
            {"name": "platform.claude.com", "status": "operational"},
            {"name": "Claude API (api.anthropic.com)", "status": "degraded_performance"},
            {"name": "Claude Code", "status": "operational"},
            {"name": "Claude for Government", "status": "operational"},
        ],
    }
    json.dumps(result.to_json())  # serialisable as is


def test_maintenance_json_and_upcoming_maintenance_skipped() -> None:
    data = parse_summary(summary("maintenance")).to_json()
    assert data["indicator"] == "maintenance"
    assert [(i["name"], i["status"], i["impact"]) for i in data["incidents"]] == [
        ("Claude Console database maintenance", "in_progress", "maintenance")
    ]
    # "ok" lists a scheduled (future) maintenance, which is not an incident.
    assert parse_summary(summary("ok")).incidents == []


def test_group_container_is_skipped() -> None:
    raw = summary("minor")
    assert "Developer platform" in [c["name"] for c in raw["components"]]
    names = [c.name for c in parse_summary(raw).components]
    assert names == NAMES


def test_newest_update_wins_whatever_the_order() -> None:
    raw = summary("minor")
    raw["incidents"][0]["incident_updates"].reverse()
    assert parse_summary(raw).incidents[0].latest_update == "We are continuing to investigate this issue."


def test_a_new_update_changes_the_latest_update_but_not_the_incident_id() -> None:
    before = parse_summary(summary("minor")).incidents[0]
    after = parse_summary(summary("minor_update")).incidents[0]
    assert after.id == before.id == MINOR_INCIDENT_ID
    assert (after.latest_update_id, after.latest_update, after.status) == (
        MINOR_NEXT_UPDATE_ID,
        MINOR_NEXT_UPDATE_BODY,
        "monitoring",
    )
    assert before.latest_update_id == MINOR_UPDATE_ID


def test_incident_without_an_id_gets_a_stable_one_from_name_and_start() -> None:
    raw = summary("minor")
    del raw["incidents"][0]["id"]
    first = parse_summary(raw).incidents[0].id
    raw["incidents"][0]["incident_updates"].pop()
    assert (
        parse_summary(raw).incidents[0].id == first == "Elevated errors on Claude Opus@2026-03-10T14:03:21.512000+00:00"
    )


def test_update_without_an_id_leaves_latest_update_id_empty() -> None:
    raw = summary("minor")
    for update in raw["incidents"][0]["incident_updates"]:
        del update["id"]
    incident = parse_summary(raw).incidents[0]
    assert incident.latest_update_id is None
    assert incident.latest_update == "We are continuing to investigate this issue."


def test_links_fall_back_to_shortlink_then_page() -> None:
    raw = summary("minor")
    del raw["page"]
    assert parse_summary(raw).incidents[0].url == f"https://stspg.io/{MINOR_INCIDENT_ID[:6]}"
    raw = summary("minor")
    del raw["incidents"][0]["id"], raw["incidents"][0]["shortlink"]
    assert parse_summary(raw).incidents[0].url == PAGE_URL


def test_optional_parts_may_be_missing() -> None:
    raw = summary("major")
    del raw["scheduled_maintenances"]
    incident = raw["incidents"][0]
    del incident["incident_updates"], incident["started_at"]
    incident["updated_at"] = "2026-03-10T09:41:10"  # no offset: taken as UTC
    [parsed] = parse_summary(raw).incidents
    assert parsed.latest_update is None
    assert parsed.started_at == ts(2026, 3, 10, 9, 12, 44, 20000)
    assert parsed.updated_at == ts(2026, 3, 10, 9, 41, 10)


def _broken(path: str, value: Any) -> dict[str, Any]:
    """summary('minor') with the value at a dotted path replaced; a value of ... deletes it."""
    data = copy.deepcopy(summary("minor"))
    *parents, last = path.split(".")
    target: Any = data
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    key: Any = int(last) if last.isdigit() else last
    if value is ...:
        del target[key]
    else:
        target[key] = value
    return data


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ([], "expected a JSON object, got a list"),
        (_broken("status", ...), "status is missing, not an object"),
        (_broken("status.indicator", "purple"), "status.indicator is 'purple'"),
        (_broken("status.description", 3), "status.description is a number, not a string"),
        (_broken("components", {"a": 1}), "components is an object, not a list"),
        (_broken("components.0", "claude.ai"), "components[0] is a string, not an object"),
        (_broken("components.0.name", ...), "components[0].name is missing, not a string"),
        (_broken("components.3.status", None), "components[3].status is missing, not a string"),
        (_broken("incidents", ...), "incidents is missing, not a list"),
        (_broken("incidents.0.name", "  "), "incidents[0].name is empty"),
        (_broken("incidents.0.impact", True), "incidents[0].impact is a boolean, not a string"),
        (_broken("incidents.0.updated_at", "yesterday\n"), "incidents[0].updated_at is not an ISO 8601 time"),
        (
            _broken("incidents.0.incident_updates", "x"),
            "incidents[0].incident_updates is a string, not a list",
        ),
        (
            _broken("incidents.0.incident_updates.1.body", None),
            "incidents[0].incident_updates[1] has no text",
        ),
        (_broken("scheduled_maintenances", [None]), "scheduled_maintenances[0] is missing, not an object"),
    ],
)
def test_malformed_summary(data: Any, reason: str) -> None:
    with pytest.raises(StatusError) as info:
        parse_summary(data)
    message = str(info.value)
    assert message.startswith(f"unexpected summary: {reason}")
    assert "\n" not in message


# --- failures ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        ("http500", "status page answered HTTP 500"),
        ("malformed", "status page sent malformed JSON"),
        ("html", "status page sent text/html instead of JSON"),
        ("shape", "unexpected summary: status is missing, not an object"),
        ("stall", "no answer from 127.0.0.1 within 0.3 s"),
    ],
)
async def test_failures_give_one_line_reason(page: FakeStatuspage, state: str, reason: str) -> None:
    page.state = state
    client = StatusClient(page.base_url, timeout=0.3)
    try:
        with pytest.raises(StatusError) as info:
            await client.get()
    finally:
        await client.aclose()
    assert str(info.value) == reason
    assert info.value.__cause__ is None


async def test_connection_refused() -> None:
    client = StatusClient(unused_port_url(), timeout=2)
    try:
        with pytest.raises(StatusError, match=r"^connection to 127\.0\.0\.1 refused$"):
            await client.get()
    finally:
        await client.aclose()


@pytest.mark.parametrize("url", ["", "   ", "status.claude.com", "ftp://status.claude.com"])
def test_bad_base_url(url: str) -> None:
    with pytest.raises(ValueError):
        StatusClient(url)


# --- cache and single flight ---------------------------------------------------------------------------


async def test_cache_serves_within_ttl_and_refetches_after(page: FakeStatuspage, clock: FakeClock) -> None:
    client = StatusClient(page.base_url, timeout=2, ttl=60, clock=clock)
    try:
        first = await client.get()
        clock.now += 59
        assert await client.get() is first
        assert page.requests == 1
        clock.now += 1
        page.state = "minor"
        second = await client.get()
        assert page.requests == 2
        assert second.indicator == "minor"
    finally:
        await client.aclose()


async def test_failures_are_cached_briefly(page: FakeStatuspage, clock: FakeClock) -> None:
    page.state = "http500"
    client = StatusClient(page.base_url, timeout=2, ttl=60, clock=clock)
    try:
        with pytest.raises(StatusError, match="HTTP 500"):
            await client.get()
        page.state = "ok"
        clock.now += 9.9
        with pytest.raises(StatusError, match="HTTP 500"):
            await client.get()
        assert page.requests == 1
        clock.now += 0.1
        assert (await client.get()).indicator == "none"
        assert page.requests == 2
    finally:
        await client.aclose()


async def test_concurrent_gets_share_one_request(page: FakeStatuspage) -> None:
    client = StatusClient(page.base_url, timeout=2)
    try:
        results = await asyncio.gather(*(client.get() for _ in range(20)))
    finally:
        await client.aclose()
    assert page.requests == 1
    assert all(r is results[0] for r in results)


async def test_concurrent_gets_share_one_failure(page: FakeStatuspage) -> None:
    page.state = "stall"
    client = StatusClient(page.base_url, timeout=0.3)
    try:
        results = await asyncio.gather(*(client.get() for _ in range(20)), return_exceptions=True)
    finally:
        await client.aclose()
    assert page.requests == 1
    assert all(isinstance(r, StatusError) and "no answer" in str(r) for r in results)
    # Each caller gets its own exception object, so tracebacks don't pile up on a shared one.
    assert len({id(r) for r in results}) == 20


async def test_one_caller_cancelling_does_not_cancel_the_fetch(page: FakeStatuspage) -> None:
    client = StatusClient(page.base_url, timeout=2)
    try:
        quitter = asyncio.create_task(client.get())
        stayer = asyncio.create_task(client.get())
        await asyncio.sleep(0)  # both are now waiting on the shared fetch
        quitter.cancel()
        assert (await stayer).indicator == "none"
        assert quitter.cancelled()
        assert page.requests == 1
    finally:
        await client.aclose()


async def test_aclose_ends_a_stalled_fetch(page: FakeStatuspage) -> None:
    page.state = "stall"
    client = StatusClient(page.base_url, timeout=30)
    waiter = asyncio.create_task(client.get())
    await asyncio.sleep(0)
    await client.aclose()
    with pytest.raises(StatusError, match="cancelled"):
        await waiter


# --- peek ----------------------------------------------------------------------------------------------


async def test_peek_returns_none_quickly_when_stalled(page: FakeStatuspage) -> None:
    page.state = "stall"
    client = StatusClient(page.base_url, timeout=30)
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        assert await client.peek(0.05) is None
        # Bounded by max_wait, not by the 30 s fetch timeout.
        assert loop.time() - started < 5
        assert await client.peek(0) is None
        assert page.requests <= 1
    finally:
        await client.aclose()


async def test_peek_warms_the_cache(page: FakeStatuspage) -> None:
    page.state = "major"
    client = StatusClient(page.base_url, timeout=2)
    try:
        assert await client.peek(0) is None  # the fetch starts and keeps going
        fetched = await client.get()  # joins that same fetch
        assert await client.peek(0) is fetched
        assert fetched.incidents == [MAJOR]
        assert page.requests == 1
    finally:
        await client.aclose()


async def test_peek_returns_summary_when_fast(page: FakeStatuspage) -> None:
    page.state = "minor"
    client = StatusClient(page.base_url, timeout=2)
    try:
        result = await client.peek(2)
        assert isinstance(result, StatusSummary)
        assert result.incidents == [MINOR]
    finally:
        await client.aclose()


@pytest.mark.parametrize("state", ["http500", "malformed"])
async def test_peek_never_raises(page: FakeStatuspage, state: str) -> None:
    page.state = state
    client = StatusClient(page.base_url, timeout=2)
    try:
        assert await client.peek(2) is None
        assert await client.peek(2) is None  # the cached failure
        assert page.requests == 1
    finally:
        await client.aclose()


async def test_peek_refused() -> None:
    client = StatusClient(unused_port_url(), timeout=2)
    try:
        assert await client.peek(2) is None
    finally:
        await client.aclose()


# --- claude-doctor status ------------------------------------------------------------------------------


def human_status(page: FakeStatuspage, monkeypatch: pytest.MonkeyPatch, locale: str = "C.UTF-8") -> int:
    """`claude-doctor status` against the fake page, in a locale."""
    from bot.cli import main

    monkeypatch.setenv("STATUS_PAGE_URL", page.base_url)
    monkeypatch.setenv("LC_ALL", locale)
    return main(["status"])


def test_command_human_all_clear(page: FakeStatuspage, capsys: Capture, monkeypatch: pytest.MonkeyPatch) -> None:
    assert human_status(page, monkeypatch) == 0
    out, err = capsys.readouterr()
    assert out.startswith("Claude status: All systems operational\n") and "All 5 components operational." in out
    assert err == ""


def test_command_human_incident_is_the_bots_own_status_page(
    page: FakeStatuspage, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    page.state = "minor"
    assert human_status(page, monkeypatch) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0] == "Claude status: Minor service outage"
    assert "• Claude API (api.anthropic.com): degraded performance" in lines
    assert "Elevated errors on Claude Opus" in lines and "We are continuing to investigate this issue." in lines
    assert f"Details: {PAGE_URL}/incidents/{MINOR_INCIDENT_ID}" in lines
    assert err == ""


def test_command_human_speaks_the_locales_language(
    page: FakeStatuspage, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    page.state = "minor"
    assert human_status(page, monkeypatch, "zh_TW.UTF-8") == 0
    assert capsys.readouterr().out.startswith("Claude 狀態：")


def test_command_json(page: FakeStatuspage, capsys: Capture) -> None:
    page.state = "major"
    assert status_command(page.base_url, as_json=True) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == parse_summary(summary("major")).to_json()
    assert err == ""


@pytest.mark.parametrize(
    ("state", "reason"),
    [("http500", "status page answered HTTP 500"), ("stall", "no answer from 127.0.0.1 within 0.3 s")],
)
def test_command_failure(page: FakeStatuspage, capsys: Capture, state: str, reason: str) -> None:
    page.state = state
    assert status_command(page.base_url, as_json=True, timeout=0.3) == 1
    out, err = capsys.readouterr()
    # --json prints JSON on failure too, for scripts that read stdout.
    assert json.loads(out) == {"error": f"status page unavailable: {reason}", "state": "unavailable"}
    assert err == f"claude-doctor: status page unavailable: {reason}\n"


def test_command_refused(capsys: Capture) -> None:
    assert status_command(unused_port_url(), as_json=False, timeout=2) == 1
    out, err = capsys.readouterr()
    assert (out, err) == ("", "claude-doctor: status page unavailable: connection to 127.0.0.1 refused\n")


@pytest.mark.parametrize("url", ["", "  "])
def test_command_off(capsys: Capture, url: str) -> None:
    assert status_command(url, as_json=True) == 1
    out, err = capsys.readouterr()
    assert json.loads(out)["state"] == "off"
    assert err == "claude-doctor: status checks are turned off (STATUS_PAGE_URL is empty)\n"


def test_command_bad_url(capsys: Capture) -> None:
    assert status_command("status.claude.com", as_json=False) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("claude-doctor: status page unavailable: STATUS_PAGE_URL must be an http(s) URL")
    assert err.count("\n") == 1
