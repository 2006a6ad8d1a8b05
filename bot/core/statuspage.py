"""Claude's status page as data: its summary's incidents and components, validated from the page's JSON. Pure: no
network, no Telegram."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

INDICATORS = ("none", "minor", "major", "critical", "maintenance")
# Maintenance states in which the work is happening now; "scheduled" and "completed" are not news.
_ACTIVE_MAINTENANCE = ("in_progress", "verifying")


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


def one_line(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
