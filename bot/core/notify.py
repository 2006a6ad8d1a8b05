"""Status notifications without Telegram: what changed between two looks at the status page, and the poll backoff."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from bot.core.statuspage import Incident, StatusSummary


class EventKind(Enum):
    """What happened to an incident between two looks."""

    OPENED = "opened"
    UPDATED = "updated"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class SeenIncident:
    """What is remembered of an open incident: enough to notice an update and to announce its end."""

    id: str
    revision: str
    name: str
    url: str
    impact: str
    started_at: datetime

    @classmethod
    def of(cls, incident: Incident) -> SeenIncident:
        """The remembered form of an incident as the page shows it now."""
        return cls(incident.id, revision(incident), incident.name, incident.url, incident.impact, incident.started_at)


@dataclass(frozen=True)
class Event:
    """One change to announce. `incident` is the page's current view (None once resolved, as the page no longer
    lists it); `seen` is always there, for the name and link."""

    kind: EventKind
    seen: SeenIncident
    incident: Incident | None = None


def revision(incident: Incident) -> str:
    """What identifies an incident's state: its newest update's id, else its status (a page without update ids)."""
    return f"update:{incident.latest_update_id}" if incident.latest_update_id else f"status:{incident.status}"


def diff(
    previous: Mapping[str, SeenIncident] | None, summary: StatusSummary
) -> tuple[list[Event], dict[str, SeenIncident]]:
    """The events between the incidents last seen and `summary`, and the state to remember from now on.

    With no previous state (the first look) nothing is announced: the current incidents become the baseline."""
    current: dict[str, SeenIncident] = {}
    events: list[Event] = []
    for incident in summary.incidents:
        if incident.id in current:
            continue
        seen = SeenIncident.of(incident)
        current[incident.id] = seen
        if previous is None:
            continue
        old = previous.get(incident.id)
        if old is None:
            events.append(Event(EventKind.OPENED, seen, incident))
        elif old.revision != seen.revision:
            events.append(Event(EventKind.UPDATED, seen, incident))
    for incident_id, old in (previous or {}).items():
        if incident_id not in current:
            events.append(Event(EventKind.RESOLVED, old))
    return events, current


@dataclass
class Backoff:
    """The wait before the next poll: `base` while the page answers, doubling up to `cap` while it fails."""

    base: float = 60.0
    cap: float = 900.0
    delay: float = field(init=False)

    def __post_init__(self) -> None:
        self.delay = self.base

    def succeeded(self) -> float:
        """Record a good poll; the next one comes after `base`."""
        self.delay = self.base
        return self.delay

    def failed(self) -> float:
        """Record a failed poll; the wait doubles, up to `cap`."""
        self.delay = min(self.delay * 2, self.cap)
        return self.delay
