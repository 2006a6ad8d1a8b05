"""Peak hours: is the window in which session limits drain faster open now, and when does that change."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")
# Shape of an IANA name; anything else (paths, spaces, dots-only parts) is refused before touching the disk.
_TZ_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$")
# Files in the zoneinfo directory that are not zones a user means: the host's own zone, tzdata internals.
_NOT_ZONES = frozenset({"localtime", "posixrules", "factory", "posix", "right"})
_FIELDS = ("timezone", "days", "start", "end")
# Metadata the knowledge file may carry beside the window itself.
_IGNORED_FIELDS = ("kind", "source")


@dataclass(frozen=True)
class PeakWindow:
    """A weekly window: on `days` (0 = Monday, in `tz`) from `start` until `end`.

    An end before the start means each occurrence runs past midnight into the next day."""

    tz: ZoneInfo
    days: frozenset[int]
    start: time
    end: time

    @classmethod
    def from_mapping(cls, d: Mapping[str, Any]) -> PeakWindow:
        """Build a window from the knowledge file's fields; raise ValueError naming the bad field."""
        if not isinstance(d, Mapping):
            raise ValueError(f"expected a mapping with {', '.join(_FIELDS)}, got {type(d).__name__}")
        unknown = sorted(str(k) for k in d if k not in _FIELDS and k not in _IGNORED_FIELDS)
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(unknown)}; expected {', '.join(_FIELDS)}")
        missing = [k for k in _FIELDS if k not in d]
        if missing:
            raise ValueError(f"missing field(s) {', '.join(missing)}")
        try:
            tz = resolve_tz(d["timezone"]) if isinstance(d["timezone"], str) else None
        except ValueError as exc:
            raise ValueError(f"timezone: {exc}") from None
        if tz is None:
            got = d["timezone"]
            raise ValueError(f"timezone: expected an IANA name such as America/Los_Angeles, got {got!r}")
        start = _parse_time(d["start"], "start")
        end = _parse_time(d["end"], "end")
        if start == end:
            raise ValueError(f"start and end are both {start:%H:%M}; the window would be empty")
        return cls(tz=tz, days=_parse_days(d["days"]), start=start, end=end)

    @property
    def crosses_midnight(self) -> bool:
        """Whether each occurrence ends on the day after it starts (in the window's own zone)."""
        return self.end < self.start

    def occurrences(self, around: datetime) -> Iterator[tuple[datetime, datetime]]:
        """(start, end) in UTC of the occurrences from the day before `around` to 8 days after, in order."""
        local_day = around.astimezone(self.tz).date()
        for offset in range(-1, 9):
            day = local_day + timedelta(days=offset)
            if day.weekday() not in self.days:
                continue
            end_day = day + timedelta(days=1) if self.crosses_midnight else day
            yield _instant(day, self.start, self.tz), _instant(end_day, self.end, self.tz)


@dataclass(frozen=True)
class PeakState:
    """Where `now` stands against the window, all datetimes in the user's zone.

    `start`/`end` are the current occurrence while in peak, otherwise the next one; `changes_at` is when
    `is_peak` flips (the current end, or the next start)."""

    is_peak: bool
    changes_at: datetime
    start: datetime
    end: datetime


def peak_state(now: datetime, user_tz: ZoneInfo, window: PeakWindow) -> PeakState:
    """Whether `now` (timezone-aware) falls inside the peak window, and the window's times in `user_tz`."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    # Compare in UTC: aware datetimes sharing a tzinfo compare by wall time, which is wrong across a DST fold.
    instant = now.astimezone(UTC)
    for start, end in window.occurrences(instant):
        if start <= instant < end:
            return _state(True, end, start, end, user_tz)
        if start > instant:
            return _state(False, start, start, end, user_tz)
    # occurrences() spans more than a week, so a window with at least one day always has a next occurrence.
    raise AssertionError("peak window has no occurrence within a week")


def resolve_tz(name: str) -> ZoneInfo:
    """The zone for an IANA name such as 'Asia/Shanghai' (case-insensitive); ValueError for anything else."""
    if not isinstance(name, str):
        raise ValueError(f"not a time zone name: {name!r}")
    cleaned = name.strip()
    if not cleaned:
        raise ValueError("empty time zone name")
    if not _TZ_NAME.match(cleaned) or cleaned.split("/", 1)[0].lower() in _NOT_ZONES:
        raise ValueError(f"not an IANA time zone name: {cleaned!r}")
    known = _zone_names()
    canonical = known.get(cleaned.lower()) if known else cleaned
    unknown = f"unknown time zone {cleaned!r} (expected an IANA name such as Asia/Shanghai)"
    if canonical is None:
        raise ValueError(unknown)
    try:
        return ZoneInfo(canonical)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(unknown) from None


@functools.cache
def _zone_names() -> dict[str, str]:
    # Users type 'asia/shanghai'; map lower-case names to the canonical spelling. Empty if the system
    # cannot list its zones, in which case ZoneInfo itself is the judge.
    return {n.lower(): n for n in available_timezones() if n.split("/", 1)[0].lower() not in _NOT_ZONES}


def _state(is_peak: bool, changes_at: datetime, start: datetime, end: datetime, tz: ZoneInfo) -> PeakState:
    return PeakState(is_peak, changes_at.astimezone(tz), start.astimezone(tz), end.astimezone(tz))


def _instant(day: date, at: time, tz: ZoneInfo) -> datetime:
    # fold=0 picks the first of a repeated wall time and shifts a skipped one forward; via UTC so later
    # arithmetic and comparisons are exact.
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)


def _parse_time(value: object, field: str) -> time:
    if isinstance(value, int) and not isinstance(value, bool):
        # PyYAML (YAML 1.1) reads an unquoted 11:00 as the base-60 integer 660.
        raise ValueError(f'{field}: got the number {value}; write the time quoted, like "05:00"')
    match = _TIME.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f'{field}: expected a time like "05:00", got {value!r}')
    hour, minute = int(match[1]), int(match[2])
    if hour > 23 or minute > 59:
        raise ValueError(f"{field}: {value!r} is not a time of day (00:00 to 23:59)")
    return time(hour, minute)


def _parse_days(value: object) -> frozenset[int]:
    if not isinstance(value, list | tuple) or not value:
        raise ValueError(f"days: expected a non-empty list such as [mon, tue, wed], got {value!r}")
    days: set[int] = set()
    for item in value:
        key = item.strip().lower() if isinstance(item, str) else None
        if key in DAY_NAMES:
            days.add(DAY_NAMES.index(key))
        elif key in _FULL_DAY_NAMES:
            days.add(_FULL_DAY_NAMES.index(key))
        else:
            raise ValueError(f"days: {item!r} is not a day (use {', '.join(DAY_NAMES)})")
    return frozenset(days)
