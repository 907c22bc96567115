"""Slots: parsing, canonical form, the rules with their exact messages, DST-correct lookups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siprec_recorder.errors import ConfigError, LocalProtocolError
from siprec_recorder.policy.errors import ScheduleError
from siprec_recorder.policy.schedule import (
    Slot,
    WeeklySchedule,
    check_slots,
    get_zone,
    in_schedule,
    parse_slots,
    validate_slots,
)

BRU = ZoneInfo("Europe/Brussels")


def slots(*texts: str) -> list[Slot]:
    return [Slot.parse(t) for t in texts]


@pytest.mark.parametrize(
    ("text", "days", "start", "end", "canonical"),
    [
        ("mon-fri 08:00-18:00", (0, 1, 2, 3, 4), 480, 1080, "mon-fri 08:00-18:00"),
        ("mon,wed 22:00-02:00", (0, 2), 1320, 120, "mon,wed 22:00-02:00"),
        ("sat 00:00-24:00", (5,), 0, 1440, "sat 00:00-24:00"),
        ("  Mon - Fri   8:00 - 18:00 ", (0, 1, 2, 3, 4), 480, 1080, "mon-fri 08:00-18:00"),
        ("fri-mon 10:00-11:00", (0, 4, 5, 6), 600, 660, "mon,fri-sun 10:00-11:00"),
        ("sunday 09:30-10:00", (6,), 570, 600, "sun 09:30-10:00"),
        ("mon,mon,tue 09:00-10:00", (0, 1), 540, 600, "mon,tue 09:00-10:00"),
    ],
)
def test_parse(text: str, days: tuple[int, ...], start: int, end: int, canonical: str) -> None:
    slot = Slot.parse(text)
    assert (slot.days, slot.start, slot.end) == (days, start, end)
    assert slot.serialize() == canonical
    assert Slot.parse(slot.serialize()) == slot


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("monday", 'slot "monday": expected DAYS HH:MM-HH:MM, e.g. "mon-fri 08:00-18:00"'),
        (
            "08:00-18:00",
            'slot "08:00-18:00": expected DAYS HH:MM-HH:MM, e.g. "mon-fri 08:00-18:00"',
        ),
        (
            "foo 08:00-09:00",
            'slot "foo 08:00-09:00": unknown day "foo" (use mon, tue, wed, thu, fri, sat, sun)',
        ),
        ("mon 25:00-26:00", 'slot "mon 25:00-26:00": bad time "25:00"'),
        ("mon 08:60-09:00", 'slot "mon 08:60-09:00": bad time "08:60"'),
        ("mon 24:00-09:00", 'slot "mon 24:00-09:00": bad time "24:00"'),
        ("mon 08:00-24:30", 'slot "mon 08:00-24:30": bad time "24:30"'),
        ("mon,,tue 08:00-09:00", 'slot "mon,,tue 08:00-09:00": empty day in "mon,,tue"'),
        ("mon-tue-wed 08:00-09:00", 'slot "mon-tue-wed 08:00-09:00": bad day range "mon-tue-wed"'),
        ("", 'slot "": expected DAYS HH:MM-HH:MM, e.g. "mon-fri 08:00-18:00"'),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(ScheduleError) as info:
        Slot.parse(text)
    assert str(info.value) == message


def test_parse_slots_reports_every_bad_slot() -> None:
    with pytest.raises(ScheduleError) as info:
        parse_slots(["mon 08:00-09:00", "xx", "mon 99:00-10:00"])
    assert info.value.problems == (
        'slot "xx": expected DAYS HH:MM-HH:MM, e.g. "mon-fri 08:00-18:00"',
        'slot "mon 99:00-10:00": bad time "99:00"',
    )


def test_intervals_midnight_and_week_wrap() -> None:
    assert Slot.parse("mon,wed 22:00-02:00").intervals() == [(1320, 1560), (4200, 4440)]
    assert Slot.parse("sun 22:00-02:00").intervals() == [(9960, 10080), (0, 120)]
    assert Slot.parse("sat 00:00-24:00").duration == 1440
    assert Slot.parse("mon 08:00-08:00").duration == 0


def test_minimum_duration_message() -> None:
    assert check_slots("number +32470000001", slots("mon 08:00-08:04")) == [
        'number +32470000001: slot "mon 08:00-08:04" lasts 4 minutes, the minimum is 5'
    ]
    assert check_slots("number +32470000001", slots("mon 08:00-08:05")) == []
    assert check_slots("template t", slots("mon 23:58-00:02")) == [
        'template t: slot "mon 23:58-00:02" lasts 4 minutes, the minimum is 5'
    ]
    assert check_slots("template t", slots("mon 08:00-08:00")) == [
        'template t: slot "mon 08:00-08:00" lasts 0 minutes, the minimum is 5'
    ]


def test_overlap_messages() -> None:
    assert check_slots("template office", slots("mon-fri 08:00-18:00", "mon 17:00-19:00")) == [
        'template office: slots "mon-fri 08:00-18:00" and "mon 17:00-19:00"'
        " overlap on mon 17:00-18:00"
    ]
    # across midnight
    assert check_slots("template night", slots("mon 22:00-02:00", "tue 01:00-03:00")) == [
        'template night: slots "mon 22:00-02:00" and "tue 01:00-03:00" overlap on tue 01:00-02:00'
    ]
    # across the week wrap, sunday -> monday
    assert check_slots("number +32470000001", slots("sun 23:00-01:00", "mon 00:30-02:00")) == [
        'number +32470000001: slots "sun 23:00-01:00" and "mon 00:30-02:00"'
        " overlap on mon 00:30-01:00"
    ]
    # identical slots
    assert check_slots("template t", slots("sat 00:00-24:00", "sat 00:00-24:00")) == [
        'template t: slots "sat 00:00-24:00" and "sat 00:00-24:00" overlap on sat 00:00-24:00'
    ]


def test_adjacent_slots_do_not_overlap() -> None:
    assert check_slots("t", slots("mon 08:00-12:00", "mon 12:00-18:00")) == []
    assert check_slots("t", slots("sun 22:00-24:00", "mon 00:00-02:00")) == []
    assert check_slots("t", slots("mon-sun 00:00-24:00")) == []
    assert check_slots("t", slots("sun 20:00-08:00", "mon 08:00-20:00")) == []


def test_validate_slots_reports_all_problems_at_once() -> None:
    with pytest.raises(ScheduleError) as info:
        validate_slots(
            "template t", slots("mon 08:00-08:01", "mon-fri 09:00-17:00", "wed 16:00-18:00")
        )
    assert info.value.problems == (
        'template t: slot "mon 08:00-08:01" lasts 1 minutes, the minimum is 5',
        'template t: slots "mon-fri 09:00-17:00" and "wed 16:00-18:00" overlap on wed 16:00-17:00',
    )
    assert str(info.value) == "; ".join(info.value.problems)


def brussels(y: int, mo: int, d: int, h: int, mi: int, fold: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=BRU, fold=fold)


def test_in_schedule_local_wall_time() -> None:
    office = slots("mon-fri 08:00-18:00")
    # 2026-06-01 is a Monday; Brussels is UTC+2 in summer
    assert in_schedule(office, datetime(2026, 6, 1, 6, 0, tzinfo=UTC), "Europe/Brussels")
    assert not in_schedule(office, datetime(2026, 6, 1, 5, 59, tzinfo=UTC), "Europe/Brussels")
    assert not in_schedule(office, datetime(2026, 6, 1, 16, 0, tzinfo=UTC), "Europe/Brussels")
    assert in_schedule(office, datetime(2026, 6, 1, 15, 59, tzinfo=UTC), BRU)
    # winter: UTC+1
    assert in_schedule(office, datetime(2026, 1, 5, 7, 0, tzinfo=UTC))
    assert not in_schedule(office, datetime(2026, 1, 5, 6, 59, tzinfo=UTC))
    # saturday
    assert not in_schedule(office, brussels(2026, 6, 6, 10, 0))


def test_in_schedule_midnight_and_week_wrap() -> None:
    night = slots("sun 22:00-02:00")
    assert in_schedule(night, brussels(2026, 6, 7, 23, 0))  # sunday
    assert in_schedule(night, brussels(2026, 6, 8, 1, 59))  # monday
    assert not in_schedule(night, brussels(2026, 6, 8, 2, 0))
    assert not in_schedule(night, brussels(2026, 6, 7, 21, 59))


def test_spring_forward_day() -> None:
    # 2026-03-29 (Sunday): Brussels clocks jump from 02:00 to 03:00 (01:00 UTC)
    day = [datetime(2026, 3, 29, 0, 0, tzinfo=UTC) + timedelta(minutes=m) for m in range(0, 240)]
    # a slot lying wholly in the skipped hour never occurs that day
    assert not any(in_schedule(slots("sun 02:00-02:30"), t) for t in day)
    # a slot across the gap lasts two real hours instead of three
    across = WeeklySchedule(slots("sun 01:00-04:00"))
    minutes_in = sum(across.contains(t, BRU) for t in day)
    assert minutes_in == 120
    assert across.contains(datetime(2026, 3, 29, 0, 59, tzinfo=UTC), BRU)  # 02:59? no: 01:59 CET
    assert across.contains(datetime(2026, 3, 29, 1, 0, tzinfo=UTC), BRU)  # 03:00 CEST
    assert not across.contains(datetime(2026, 3, 29, 2, 0, tzinfo=UTC), BRU)  # 04:00 CEST


def test_fall_back_day() -> None:
    # 2026-10-25 (Sunday): Brussels clocks go back from 03:00 to 02:00 (01:00 UTC);
    # wall times 02:00-02:59 happen twice and both passes are inside a 02:00-02:30 slot.
    slot = WeeklySchedule(slots("sun 02:00-02:30"))
    first = brussels(2026, 10, 25, 2, 10, fold=0)
    second = brussels(2026, 10, 25, 2, 10, fold=1)
    assert first.utcoffset() != second.utcoffset()
    assert slot.contains(first, BRU)
    assert slot.contains(second, BRU)
    day = [datetime(2026, 10, 24, 23, 0, tzinfo=UTC) + timedelta(minutes=m) for m in range(300)]
    assert sum(slot.contains(t, BRU) for t in day) == 60
    # a slot 01:00-04:00 lasts four real hours that day
    assert sum(WeeklySchedule(slots("sun 01:00-04:00")).contains(t, BRU) for t in day) == 240


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(LocalProtocolError):
        in_schedule(slots("mon 08:00-09:00"), datetime(2026, 6, 1, 8, 30))


def test_unknown_zone_names_the_key() -> None:
    with pytest.raises(
        ConfigError, match=r"^\[policy\] timezone: unknown time zone 'Mars/Olympus'$"
    ):
        get_zone("Mars/Olympus")


@settings(deadline=None)
@given(st.text(max_size=80))
def test_fuzz_parser_only_raises_schedule_error(text: str) -> None:
    try:
        slot = Slot.parse(text)
    except ScheduleError:
        return
    assert Slot.parse(slot.serialize()) == slot
    check_slots("t", [slot])


_day = st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun"])
_time = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.integers(0, 59))


@settings(deadline=None)
@given(
    st.lists(st.builds(lambda d, a, b: f"{d} {a}-{b}", _day, _time, _time), min_size=1, max_size=6),
    st.integers(0, 7 * 1440 - 1),
)
def test_fuzz_compiled_schedule_matches_intervals(texts: list[str], minute: int) -> None:
    parsed = parse_slots(texts)
    expected = any(a <= minute < b for s in parsed for a, b in s.intervals())
    assert WeeklySchedule(parsed).contains_minute(minute) == expected
