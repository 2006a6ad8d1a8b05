"""Incident notifications as pure logic: the diff between two looks at the status page, and the poll backoff."""

from __future__ import annotations

from dataclasses import replace

from bot.core.notify import Backoff, EventKind, SeenIncident, diff, revision
from bot.services.status import StatusSummary, parse_summary
from tests.fake_statuspage import MAJOR_INCIDENT_ID, MINOR_INCIDENT_ID, MINOR_NEXT_UPDATE_BODY, summary


def look(state: str) -> StatusSummary:
    return parse_summary(summary(state))


def seen_after(state: str) -> dict[str, SeenIncident]:
    return diff(None, look(state))[1]


def kinds(events: list) -> list[tuple[EventKind, str]]:  # type: ignore[type-arg]
    return [(e.kind, e.seen.id) for e in events]


def test_first_look_announces_nothing_and_becomes_the_baseline() -> None:
    events, seen = diff(None, look("minor"))
    assert events == []
    assert list(seen) == [MINOR_INCIDENT_ID]


def test_new_incident_is_opened() -> None:
    events, _ = diff(seen_after("ok"), look("minor"))
    assert kinds(events) == [(EventKind.OPENED, MINOR_INCIDENT_ID)]
    assert events[0].incident is not None and events[0].incident.name == "Elevated errors on Claude Opus"


def test_same_state_twice_is_not_news() -> None:
    events, seen = diff(seen_after("minor"), look("minor"))
    assert events == []
    assert seen == seen_after("minor")


def test_new_update_is_one_updated_event_with_its_text() -> None:
    events, _ = diff(seen_after("minor"), look("minor_update"))
    assert kinds(events) == [(EventKind.UPDATED, MINOR_INCIDENT_ID)]
    assert events[0].incident is not None and events[0].incident.latest_update == MINOR_NEXT_UPDATE_BODY


def test_incident_gone_from_the_page_is_resolved_with_the_remembered_name_and_link() -> None:
    before = seen_after("minor")
    events, seen = diff(before, look("ok"))
    assert kinds(events) == [(EventKind.RESOLVED, MINOR_INCIDENT_ID)]
    assert events[0].incident is None
    assert events[0].seen == before[MINOR_INCIDENT_ID]
    assert seen == {}


def test_one_incident_ending_as_another_opens_gives_both_events() -> None:
    events, _ = diff(seen_after("minor"), look("major"))
    assert kinds(events) == [(EventKind.OPENED, MAJOR_INCIDENT_ID), (EventKind.RESOLVED, MINOR_INCIDENT_ID)]


def test_without_update_ids_a_status_change_is_the_update() -> None:
    incident = look("minor").incidents[0]
    bare = replace(incident, latest_update_id=None)
    assert revision(bare) == "status:investigating"
    assert revision(replace(bare, status="monitoring")) != revision(bare)


def test_an_incident_listed_twice_counts_once() -> None:
    page = look("minor")
    doubled = replace(page, incidents=page.incidents * 2)
    events, seen = diff(seen_after("ok"), doubled)
    assert kinds(events) == [(EventKind.OPENED, MINOR_INCIDENT_ID)]
    assert len(seen) == 1


def test_backoff_doubles_while_failing_up_to_the_cap_and_resets_on_success() -> None:
    backoff = Backoff(base=60, cap=300)
    assert backoff.delay == 60
    assert [backoff.failed() for _ in range(4)] == [120, 240, 300, 300]
    assert backoff.succeeded() == 60
    assert backoff.delay == 60
