"""Weekly schedules: slots such as ``"mon-fri 08:00-18:00"`` and the rules they obey.

Theory of operation
-------------------
A *slot* is a set of weekdays with a start and an end wall-clock time. The end may be earlier
than the start, meaning the slot crosses midnight (``"mon,wed 22:00-02:00"`` runs Monday 22:00
to Tuesday 02:00 and Wednesday 22:00 to Thursday 02:00); ``24:00`` is allowed as an end
(``"sat 00:00-24:00"``). Each slot becomes half-open intervals of *minute of week* (Monday
00:00 is 0, the week has 10,080 minutes); an interval that runs past Sunday 24:00 is split and
continues at Monday 00:00 (week wrap).

Rules (:func:`check_slots`): a slot lasts at least :data:`MIN_SLOT_MINUTES` minutes, and no two
slots of one number or template overlap, midnight and week wrap included. A new set of slots
is always validated as a whole, so editing a schedule never needs a "delete first" step.

Time zones and DST (:func:`in_schedule`): slots are *local wall-clock* times in the configured
zone (default Europe/Brussels). An instant is converted to the wall time it shows in that zone
and that wall time is looked up. Consequences, chosen and tested:

* spring forward (02:00 -> 03:00): wall times 02:00-02:59 do not exist that day, so a slot
  lying wholly inside that hour does not occur, and a slot 01:00-04:00 lasts two real hours;
* fall back (03:00 -> 02:00): wall times 02:00-02:59 happen twice; an instant in either pass
  shows a time inside a 02:00-02:30 slot, so both passes are in the slot (the slot lasts an
  hour of real time that day). The rule is "what the clock on the wall says", nothing more.

This module is pure: no I/O, no clock; the instant to test is always an argument.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from siprec_recorder.errors import ConfigError, LocalProtocolError

from .errors import ScheduleError

__all__ = [
    "DAY_NAMES",
    "MIN_SLOT_MINUTES",
    "MINUTES_PER_DAY",
    "MINUTES_PER_WEEK",
    "Slot",
    "WeeklySchedule",
    "check_slots",
    "get_zone",
    "in_schedule",
    "minute_of_week",
    "parse_slots",
    "validate_slots",
]

DAY_NAMES: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 24 * 60
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY
MIN_SLOT_MINUTES = 5
MAX_SLOT_TEXT = 200

_DAY_INDEX = {name: i for i, name in enumerate(DAY_NAMES)}
_DAY_INDEX.update(
    {
        full: i
        for i, full in enumerate(
            ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
        )
    }
)
_SLOT_RE = re.compile(
    r"^(?P<days>[a-z][a-z,\-\s]*?)\s+(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})$"
)
_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2})$")


def _quote(text: str) -> str:
    text = text.strip()
    if len(text) > 60:
        text = text[:57] + "..."
    return '"' + text.replace('"', "'") + '"'


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _parse_time(raw: str, slot_text: str, *, is_end: bool) -> int:
    m = _TIME_RE.match(raw)
    if m is None:
        raise ScheduleError(f"slot {_quote(slot_text)}: bad time {_quote(raw)}")
    hour, minute = int(m.group(1)), int(m.group(2))
    if minute > 59 or hour > 24 or (hour == 24 and (minute != 0 or not is_end)):
        raise ScheduleError(f"slot {_quote(slot_text)}: bad time {_quote(raw)}")
    return hour * 60 + minute


def _parse_days(raw: str, slot_text: str) -> tuple[int, ...]:
    days: set[int] = set()
    for item in raw.split(","):
        item = item.strip()
        if not item:
            raise ScheduleError(f"slot {_quote(slot_text)}: empty day in {_quote(raw)}")
        ends = [part.strip() for part in item.split("-")]
        if len(ends) > 2:
            raise ScheduleError(f"slot {_quote(slot_text)}: bad day range {_quote(item)}")
        idx: list[int] = []
        for name in ends:
            if name not in _DAY_INDEX:
                raise ScheduleError(
                    f"slot {_quote(slot_text)}: unknown day {_quote(name)}"
                    " (use mon, tue, wed, thu, fri, sat, sun)"
                )
            idx.append(_DAY_INDEX[name])
        if len(idx) == 1:
            days.add(idx[0])
        else:
            # a range may wrap the week: "fri-mon" is fri, sat, sun, mon
            first, last = idx
            span = (last - first) % 7
            days.update((first + k) % 7 for k in range(span + 1))
    return tuple(sorted(days))


def _format_days(days: tuple[int, ...]) -> str:
    parts: list[str] = []
    i = 0
    while i < len(days):
        j = i
        while j + 1 < len(days) and days[j + 1] == days[j] + 1:
            j += 1
        if j - i >= 2:
            parts.append(f"{DAY_NAMES[days[i]]}-{DAY_NAMES[days[j]]}")
        else:
            parts.extend(DAY_NAMES[d] for d in days[i : j + 1])
        i = j + 1
    return ",".join(parts)


@dataclass(frozen=True, slots=True)
class Slot:
    """Weekdays (0 = Monday) and a wall-clock start/end in minutes of the day.

    ``end`` is 1..1440; ``end <= start`` means the slot crosses midnight into the next day.
    """

    days: tuple[int, ...]
    start: int
    end: int

    @classmethod
    def parse(cls, text: str) -> Slot:
        """Parse ``"DAYS HH:MM-HH:MM"``; DAYS is ``mon``, ``mon-fri``, ``mon,wed``, ...

        Raises :class:`ScheduleError` naming the slot. Durations are checked by
        :func:`check_slots`, not here.
        """
        if not isinstance(text, str):
            raise ScheduleError("slot must be text")
        if len(text) > MAX_SLOT_TEXT:
            raise ScheduleError(f"slot {_quote(text)}: too long")
        norm = " ".join(text.lower().split())
        m = _SLOT_RE.match(norm)
        if m is None:
            raise ScheduleError(
                f'slot {_quote(text)}: expected DAYS HH:MM-HH:MM, e.g. "mon-fri 08:00-18:00"'
            )
        days = _parse_days(m.group("days"), text)
        start = _parse_time(m.group("start"), text, is_end=False)
        end = _parse_time(m.group("end"), text, is_end=True)
        return cls(days=days, start=start, end=end)

    def serialize(self) -> str:
        """Canonical text, e.g. ``"mon-fri 08:00-18:00"``; ``parse(serialize())`` round-trips."""
        return f"{_format_days(self.days)} {_hhmm(self.start)}-{_hhmm(self.end)}"

    def __str__(self) -> str:
        return self.serialize()

    @property
    def duration(self) -> int:
        """Length in (wall-clock) minutes of one occurrence; 0 when start equals end."""
        if self.end > self.start:
            return self.end - self.start
        return self.end + MINUTES_PER_DAY - self.start if self.end != self.start else 0

    def intervals(self) -> list[tuple[int, int]]:
        """Half-open minute-of-week intervals, split at the week wrap (Sunday 24:00)."""
        out: list[tuple[int, int]] = []
        length = self.duration
        if length <= 0:
            return out
        for day in self.days:
            begin = day * MINUTES_PER_DAY + self.start
            finish = begin + length
            if finish <= MINUTES_PER_WEEK:
                out.append((begin, finish))
            else:
                out.append((begin, MINUTES_PER_WEEK))
                out.append((0, finish - MINUTES_PER_WEEK))
        return out


def parse_slots(texts: Iterable[str]) -> list[Slot]:
    """Parse several slots, reporting every unparsable one in one :class:`ScheduleError`."""
    slots: list[Slot] = []
    problems: list[str] = []
    for text in texts:
        try:
            slots.append(Slot.parse(text))
        except ScheduleError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ScheduleError(problems)
    return slots


def _describe_minute(minute: int) -> str:
    minute %= MINUTES_PER_WEEK
    return f"{DAY_NAMES[minute // MINUTES_PER_DAY]} {_hhmm(minute % MINUTES_PER_DAY)}"


def check_slots(owner: str, slots: Sequence[Slot]) -> list[str]:
    """Every rule broken by this whole set of slots, as messages naming ``owner`` and slots.

    ``owner`` is e.g. ``"number +32470000001"`` or ``"template office"``.
    """
    problems: list[str] = []
    for slot in slots:
        if slot.duration < MIN_SLOT_MINUTES:
            problems.append(
                f'{owner}: slot "{slot}" lasts {slot.duration} minutes,'
                f" the minimum is {MIN_SLOT_MINUTES}"
            )
    tagged = [(a, b, i) for i, slot in enumerate(slots) for a, b in slot.intervals()]
    tagged.sort()
    reported: set[tuple[int, int]] = set()
    for x in range(len(tagged)):
        a1, b1, i1 = tagged[x]
        for y in range(x + 1, len(tagged)):
            a2, b2, i2 = tagged[y]
            if a2 >= b1:
                break
            pair = (min(i1, i2), max(i1, i2))
            if i1 == i2 or pair in reported:
                continue
            reported.add(pair)
            first, second = slots[pair[0]], slots[pair[1]]
            lo, hi = a2, min(b1, b2)
            hi_of_day = hi % MINUTES_PER_DAY
            end_text = "24:00" if hi_of_day == 0 else _hhmm(hi_of_day)
            problems.append(
                f'{owner}: slots "{first}" and "{second}" overlap on '
                f"{_describe_minute(lo)}-{end_text}"
            )
    return problems


def validate_slots(owner: str, slots: Sequence[Slot]) -> None:
    """Raise :class:`ScheduleError` with every problem of :func:`check_slots`, if any."""
    problems = check_slots(owner, slots)
    if problems:
        raise ScheduleError(problems)


@lru_cache(maxsize=32)
def get_zone(name: str) -> ZoneInfo:
    """The zone called ``name``; :class:`ConfigError` naming ``[policy] timezone`` if unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"[policy] timezone: unknown time zone {name!r}") from exc


def minute_of_week(t: datetime, tz: tzinfo | str) -> float:
    """Minute of the week of the local wall time of the aware instant ``t`` in ``tz``."""
    if t.tzinfo is None or t.utcoffset() is None:
        raise LocalProtocolError("in_schedule needs an aware datetime")
    zone = get_zone(tz) if isinstance(tz, str) else tz
    local = t.astimezone(zone)
    return (
        local.weekday() * MINUTES_PER_DAY
        + local.hour * 60
        + local.minute
        + (local.second + local.microsecond / 1e6) / 60
    )


class WeeklySchedule:
    """A set of slots compiled to sorted, merged intervals for fast lookups."""

    __slots__ = ("_ends", "_starts", "slots")

    def __init__(self, slots: Iterable[Slot]) -> None:
        self.slots: tuple[Slot, ...] = tuple(slots)
        merged: list[list[int]] = []
        for a, b in sorted(iv for s in self.slots for iv in s.intervals()):
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        self._starts = [a for a, _ in merged]
        self._ends = [b for _, b in merged]

    def __bool__(self) -> bool:
        return bool(self._starts)

    def contains_minute(self, minute: float) -> bool:
        """Whether the minute of the week falls in a slot (start included, end excluded)."""
        i = bisect_right(self._starts, minute) - 1
        return i >= 0 and minute < self._ends[i]

    def contains(self, t: datetime, tz: tzinfo | str) -> bool:
        """Whether the aware instant ``t`` falls in a slot, in wall time of ``tz``."""
        return self.contains_minute(minute_of_week(t, tz))


def in_schedule(slots: Iterable[Slot], t: datetime, tz: tzinfo | str = "Europe/Brussels") -> bool:
    """Whether the aware instant ``t`` is inside one of ``slots`` (local wall time in ``tz``)."""
    return WeeklySchedule(slots).contains(t, tz)
