"""Peak hours: the Los Angeles window seen from other zones, across weekends and DST changes on both sides."""

from __future__ import annotations

from datetime import datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from bot.core.peak import PeakState, PeakWindow, peak_state, resolve_tz

LA = ZoneInfo("America/Los_Angeles")
SH = ZoneInfo("Asia/Shanghai")
BER = ZoneInfo("Europe/Berlin")
UTC = ZoneInfo("UTC")
PEAK_YAML = Path(__file__).resolve().parent.parent / "knowledge" / "peak.yaml"


def _load_window() -> PeakWindow:
    data = yaml.safe_load(PEAK_YAML.read_text(encoding="utf-8"))
    return PeakWindow.from_mapping({k: v for k, v in data.items() if k not in ("kind", "source")})


WINDOW = _load_window()


def at(tz: ZoneInfo, y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=tz)


# (id, now, user zone, is_peak, changes_at, start, end); start/end are the current occurrence in peak,
# else the next one. Expected values worked out by hand from LA 05:00-11:00 (PST = UTC-8, PDT = UTC-7).
CASES = [
    # Shanghai, winter: 21:00-03:00, the user's clock crosses midnight.
    ("sh-winter-inside", at(SH, 2026, 1, 12, 22), SH, True,
     at(SH, 2026, 1, 13, 3), at(SH, 2026, 1, 12, 21), at(SH, 2026, 1, 13, 3)),
    ("sh-winter-after-midnight", at(SH, 2026, 1, 13, 1), SH, True,
     at(SH, 2026, 1, 13, 3), at(SH, 2026, 1, 12, 21), at(SH, 2026, 1, 13, 3)),
    ("sh-winter-outside", at(SH, 2026, 1, 13, 12), SH, False,
     at(SH, 2026, 1, 13, 21), at(SH, 2026, 1, 13, 21), at(SH, 2026, 1, 14, 3)),
    # Shanghai, summer: 20:00-02:00.
    ("sh-summer-inside", at(SH, 2026, 7, 15, 20, 30), SH, True,
     at(SH, 2026, 7, 16, 2), at(SH, 2026, 7, 15, 20), at(SH, 2026, 7, 16, 2)),
    ("sh-summer-before", at(SH, 2026, 7, 15, 19, 59), SH, False,
     at(SH, 2026, 7, 15, 20), at(SH, 2026, 7, 15, 20), at(SH, 2026, 7, 16, 2)),
    # Boundaries: start inclusive, end exclusive.
    ("la-start-exact", at(LA, 2026, 1, 19, 5), LA, True,
     at(LA, 2026, 1, 19, 11), at(LA, 2026, 1, 19, 5), at(LA, 2026, 1, 19, 11)),
    ("la-just-before", at(LA, 2026, 1, 19, 4, 59), LA, False,
     at(LA, 2026, 1, 19, 5), at(LA, 2026, 1, 19, 5), at(LA, 2026, 1, 19, 11)),
    ("la-end-exact", at(LA, 2026, 1, 19, 11), LA, False,
     at(LA, 2026, 1, 20, 5), at(LA, 2026, 1, 20, 5), at(LA, 2026, 1, 20, 11)),
    # Weekends are off-peak; Friday's peak is followed by Monday's.
    ("la-saturday", at(LA, 2026, 1, 17, 8), LA, False,
     at(LA, 2026, 1, 19, 5), at(LA, 2026, 1, 19, 5), at(LA, 2026, 1, 19, 11)),
    ("utc-friday-evening", at(UTC, 2026, 1, 16, 20), UTC, False,
     at(UTC, 2026, 1, 19, 13), at(UTC, 2026, 1, 19, 13), at(UTC, 2026, 1, 19, 19)),
    # Saturday 01:00 in Shanghai is still Friday morning in LA.
    ("sh-saturday-is-la-friday", at(SH, 2026, 1, 17, 1), SH, True,
     at(SH, 2026, 1, 17, 3), at(SH, 2026, 1, 16, 21), at(SH, 2026, 1, 17, 3)),
    ("sh-friday-peak-ends", at(SH, 2026, 1, 17, 3), SH, False,
     at(SH, 2026, 1, 19, 21), at(SH, 2026, 1, 19, 21), at(SH, 2026, 1, 20, 3)),
    # Saturday 21:30 / Sunday 22:00 in Shanghai look like peak hours but are the LA weekend.
    ("sh-saturday-evening", at(SH, 2026, 1, 17, 21, 30), SH, False,
     at(SH, 2026, 1, 19, 21), at(SH, 2026, 1, 19, 21), at(SH, 2026, 1, 20, 3)),
    ("sh-sunday-evening", at(SH, 2026, 1, 18, 22), SH, False,
     at(SH, 2026, 1, 19, 21), at(SH, 2026, 1, 19, 21), at(SH, 2026, 1, 20, 3)),
    # US spring forward, Sunday 2026-03-08: Friday before is PST, Monday after is PDT.
    ("us-spring-friday-pst", at(SH, 2026, 3, 6, 21), SH, True,
     at(SH, 2026, 3, 7, 3), at(SH, 2026, 3, 6, 21), at(SH, 2026, 3, 7, 3)),
    ("us-spring-weekend-to-pdt", at(SH, 2026, 3, 7, 12), SH, False,
     at(SH, 2026, 3, 9, 20), at(SH, 2026, 3, 9, 20), at(SH, 2026, 3, 10, 2)),
    ("us-spring-utc-before", at(UTC, 2026, 3, 6, 12, 30), UTC, False,
     at(UTC, 2026, 3, 6, 13), at(UTC, 2026, 3, 6, 13), at(UTC, 2026, 3, 6, 19)),
    ("us-spring-utc-after", at(UTC, 2026, 3, 9, 12, 30), UTC, True,
     at(UTC, 2026, 3, 9, 18), at(UTC, 2026, 3, 9, 12), at(UTC, 2026, 3, 9, 18)),
    # Between the US (03-08) and EU (03-29) changes Berlin is CET while LA is PDT: 13:00-19:00.
    ("gap-weeks-berlin-spring", at(BER, 2026, 3, 10, 13, 30), BER, True,
     at(BER, 2026, 3, 10, 19), at(BER, 2026, 3, 10, 13), at(BER, 2026, 3, 10, 19)),
    ("eu-spring-friday-cet", at(BER, 2026, 3, 27, 12), BER, False,
     at(BER, 2026, 3, 27, 13), at(BER, 2026, 3, 27, 13), at(BER, 2026, 3, 27, 19)),
    # EU spring forward, Sunday 2026-03-29: Monday after is 14:00-20:00 CEST.
    ("eu-spring-weekend-to-cest", at(BER, 2026, 3, 28, 20), BER, False,
     at(BER, 2026, 3, 30, 14), at(BER, 2026, 3, 30, 14), at(BER, 2026, 3, 30, 20)),
    # EU fall back, Sunday 2026-10-25: Friday before is 14:00 CEST, Monday after 13:00 CET (LA still PDT).
    ("eu-fall-friday-cest", at(BER, 2026, 10, 23, 14), BER, True,
     at(BER, 2026, 10, 23, 20), at(BER, 2026, 10, 23, 14), at(BER, 2026, 10, 23, 20)),
    ("eu-fall-weekend-to-cet", at(BER, 2026, 10, 24, 12), BER, False,
     at(BER, 2026, 10, 26, 13), at(BER, 2026, 10, 26, 13), at(BER, 2026, 10, 26, 19)),
    ("gap-weeks-berlin-fall", at(BER, 2026, 10, 26, 13), BER, True,
     at(BER, 2026, 10, 26, 19), at(BER, 2026, 10, 26, 13), at(BER, 2026, 10, 26, 19)),
    # US fall back, Sunday 2026-11-01: Friday before is PDT, Monday after is PST.
    ("us-fall-friday-pdt-sh", at(SH, 2026, 10, 30, 20), SH, True,
     at(SH, 2026, 10, 31, 2), at(SH, 2026, 10, 30, 20), at(SH, 2026, 10, 31, 2)),
    ("us-fall-utc-weekend-to-pst", at(UTC, 2026, 10, 30, 18, 30), UTC, False,
     at(UTC, 2026, 11, 2, 13), at(UTC, 2026, 11, 2, 13), at(UTC, 2026, 11, 2, 19)),
    ("us-fall-sh-monday-pst", at(SH, 2026, 11, 2, 12), SH, False,
     at(SH, 2026, 11, 2, 21), at(SH, 2026, 11, 2, 21), at(SH, 2026, 11, 3, 3)),
    # The repeated hour itself (01:30 on 2026-11-01, either fold) is a Sunday: off-peak.
    ("us-fall-ambiguous-hour", datetime(2026, 11, 1, 1, 30, fold=1, tzinfo=LA), LA, False,
     at(LA, 2026, 11, 2, 5), at(LA, 2026, 11, 2, 5), at(LA, 2026, 11, 2, 11)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("now", "user_tz", "is_peak", "changes_at", "start", "end"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_peak_state(
    now: datetime, user_tz: ZoneInfo, is_peak: bool, changes_at: datetime, start: datetime, end: datetime
) -> None:
    state = peak_state(now, user_tz, WINDOW)
    assert state == PeakState(is_peak, changes_at, start, end)
    # Equality of aware datetimes ignores the zone; the wall clock shown to the user must be in their zone.
    for value, expected in ((state.changes_at, changes_at), (state.start, start), (state.end, end)):
        assert value.tzinfo == user_tz
        assert value.replace(tzinfo=None) == expected.replace(tzinfo=None)


def test_input_zone_does_not_matter() -> None:
    instant = at(SH, 2026, 1, 12, 22)
    states = {peak_state(instant.astimezone(tz), SH, WINDOW) for tz in (SH, LA, BER, UTC)}
    assert len(states) == 1


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        peak_state(datetime(2026, 1, 12, 22), SH, WINDOW)


def test_window_from_knowledge_file() -> None:
    assert WINDOW.tz == LA
    assert WINDOW.days == frozenset(range(5))
    assert (WINDOW.start, WINDOW.end) == (time(5), time(11))
    assert not WINDOW.crosses_midnight


def test_window_ignores_kind_and_source() -> None:
    data = yaml.safe_load(PEAK_YAML.read_text(encoding="utf-8"))
    assert PeakWindow.from_mapping(data) == WINDOW


def test_window_crossing_midnight_in_its_own_zone() -> None:
    window = PeakWindow.from_mapping({"timezone": "UTC", "days": ["Fri"], "start": "22:00", "end": "02:00"})
    fri_22, sat_02 = at(UTC, 2026, 1, 16, 22), at(UTC, 2026, 1, 17, 2)
    # Saturday 01:00 belongs to Friday's occurrence.
    assert peak_state(at(UTC, 2026, 1, 17, 1), UTC, window) == PeakState(True, sat_02, fri_22, sat_02)
    next_fri_22, next_sat_02 = at(UTC, 2026, 1, 23, 22), at(UTC, 2026, 1, 24, 2)
    after = peak_state(sat_02, UTC, window)
    assert after == PeakState(False, next_fri_22, next_fri_22, next_sat_02)


GOOD = {"timezone": "America/Los_Angeles", "days": ["mon"], "start": "05:00", "end": "11:00"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone: unknown time zone 'Mars/Olympus'"),
        ({"timezone": 8}, "timezone: expected an IANA name"),
        ({"days": ["mon", "funday"]}, "days: 'funday' is not a day"),
        ({"days": []}, "days: expected a non-empty list"),
        ({"days": "mon"}, "days: expected a non-empty list"),
        ({"start": "25:00"}, "start: '25:00' is not a time of day"),
        ({"end": "5am"}, 'end: expected a time like "05:00"'),
        ({"start": 300}, 'start: got the number 300; write the time quoted, like "05:00"'),
        ({"end": "05:00"}, "start and end are both 05:00"),
        ({"tz": "UTC"}, "unknown field(s) tz"),
    ],
)
def test_bad_window(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as info:
        PeakWindow.from_mapping({**GOOD, **change})
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_missing_field() -> None:
    with pytest.raises(ValueError, match=r"^missing field\(s\) end$"):
        PeakWindow.from_mapping({k: v for k, v in GOOD.items() if k != "end"})


def test_unquoted_yaml_time_is_explained() -> None:
    # PyYAML reads an unquoted 11:00 as the base-60 integer 660 (05:00 survives only thanks to its leading 0).
    data = yaml.safe_load("timezone: UTC\ndays: [mon]\nstart: 05:00\nend: 11:00\n")
    with pytest.raises(ValueError, match=r"^end: got the number 660; write the time quoted"):
        PeakWindow.from_mapping(data)


@pytest.mark.parametrize(
    "name",
    ["Mars/Olympus", "", "   ", "../etc/passwd", "/etc/localtime", "Asia/../Asia/Shanghai", "localtime",
     "posixrules", "Factory", "Asia/Shanghai\x00", "Asia Shanghai", "Asia/"],
)  # fmt: skip
def test_resolve_tz_rejects(name: str) -> None:
    with pytest.raises(ValueError):
        resolve_tz(name)


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("Asia/Shanghai", "Asia/Shanghai"),
        ("  Europe/Berlin ", "Europe/Berlin"),
        ("asia/shanghai", "Asia/Shanghai"),
        ("UTC", "UTC"),
        ("america/los_angeles", "America/Los_Angeles"),
    ],
)
def test_resolve_tz_accepts(name: str, key: str) -> None:
    assert resolve_tz(name) == ZoneInfo(key)
    assert resolve_tz(name).key == key
