"""The policy engine: on every INVITE, decide whether the call is recorded.

Theory of operation
-------------------
:meth:`PolicyEngine.decide` takes the participants' AORs (as the metadata gives them:
``tel:``, ``sip:``, bare digits, URNs) and the instant the INVITE arrived, and returns a
:class:`Decision`. The order of the rules:

1. **Emergency always wins.** If any participant is on the emergency list (see
   :mod:`.emergency`), the call is not recorded (``emergency=True``) and nothing of it is
   kept but the ``emergency_calls`` counter: no number, no time, no index row. The counter
   is written by a background task, so this decision never waits for the database.
2. The participants are normalised to E.164 and looked up among the firm's numbers.
3. If none is known, ``unknown_numbers`` decides: ``record`` (the default; reason
   ``recorded-unknown-number``) or ``decline`` (reason ``unknown-number``).
4. Each known number gives a verdict: inactive -> ``number-inactive``; status ``auto`` ->
   recorded when the instant falls in one of its slots (wall time in the configured zone, see
   :mod:`.schedule`), else ``outside-schedule``; status ``manual`` -> recorded in mode
   ``professional``, else ``private-mode``. In ``auto`` the schedule alone decides; the mode
   only applies to ``manual`` numbers.
5. The first known number (in participant order) whose verdict is "record" is the recorded
   number; if none records, the call is declined with the first known number's reason.

``recorded_number`` is always the firm's number (E.164), also on a decline (the index row
says whose call was not recorded); ``beep`` is that number's recording-tone flag.

The decision is taken **once, at INVITE time**. A slot that ends during a call does not cut
the call, and a slot that starts during a call does not start a recording: re-INVITEs and
UPDATEs of an established session do not ask again. The reason strings are stable: they go
into 403 ``Warning`` headers and into index rows.

Freshness and speed: the engine keeps a snapshot of every number with its compiled schedule
in memory, so a decision is a dictionary lookup and a bisect (about 15 us). Every change
bumps the ``policy_version`` counter in its own transaction. Every decision reads that
counter (one primary-key row) and, when it moved, waits for the reload before deciding: a
change committed by any process or node before the INVITE governs that very call. A reload
of 100,000 numbers takes a second or more, but only the first call after a change waits for
it (the calls arriving meanwhile share the same reload).
:meth:`PolicyEngine.invalidate` forces a reload; a :class:`~.service.PolicyService` calls it
after each change it commits when it is registered as one of the service's listeners
(``on_change`` or ``add_listener``).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from siprec_recorder.errors import ConfigError
from siprec_recorder.phone import normalize_number
from siprec_recorder.storage.db import Database

from .db import bump_counter, read_counter, transaction
from .emergency import EmergencyMatcher
from .models import (
    COUNTER_EMERGENCY_CALLS,
    COUNTER_POLICY_VERSION,
    PolicyCounter,
    PolicyNumber,
    PolicyNumberSlot,
    PolicyTemplateSlot,
)
from .schedule import Slot, WeeklySchedule, get_zone, minute_of_week
from .settings import PolicySettings

__all__ = [
    "REASON_EMERGENCY",
    "REASON_INACTIVE",
    "REASON_OUTSIDE_SCHEDULE",
    "REASON_PRIVATE",
    "REASON_RECORDED",
    "REASON_RECORDED_UNKNOWN",
    "REASON_UNKNOWN",
    "Decision",
    "NumberRule",
    "PolicyEngine",
]

log = logging.getLogger(__name__)

REASON_EMERGENCY = "emergency-number"
REASON_PRIVATE = "private-mode"
REASON_OUTSIDE_SCHEDULE = "outside-schedule"
REASON_UNKNOWN = "unknown-number"
REASON_INACTIVE = "number-inactive"
REASON_RECORDED = "recorded"
REASON_RECORDED_UNKNOWN = "recorded-unknown-number"


@dataclass(frozen=True)
class Decision:
    """Whether to record a call, and why (``reason`` is one of the stable ``REASON_*``)."""

    record: bool
    reason: str
    recorded_number: str | None
    emergency: bool
    beep: bool


@dataclass(frozen=True, slots=True)
class NumberRule:
    """What the engine needs to know of one number."""

    number: str
    active: bool
    managed: bool
    status: str
    mode: str
    beep: bool
    schedule: WeeklySchedule

    def verdict(self, minute: float) -> str:
        """``REASON_RECORDED`` or the reason not to record, at local minute-of-week."""
        if not self.active:
            return REASON_INACTIVE
        if self.status == "auto":
            return (
                REASON_RECORDED
                if self.schedule.contains_minute(minute)
                else (REASON_OUTSIDE_SCHEDULE)
            )
        return REASON_RECORDED if self.mode == "professional" else REASON_PRIVATE


async def load_rules(db: Database) -> dict[str, NumberRule]:
    """Read every number with its effective schedule (template or own slots)."""
    async with db.session() as session:
        template_slots: dict[int, list[str]] = {}
        for template_id, spec in await session.execute(
            select(PolicyTemplateSlot.template_id, PolicyTemplateSlot.spec).order_by(
                PolicyTemplateSlot.template_id, PolicyTemplateSlot.position
            )
        ):
            template_slots.setdefault(template_id, []).append(spec)
        own_slots: dict[int, list[str]] = {}
        for number_id, spec in await session.execute(
            select(PolicyNumberSlot.number_id, PolicyNumberSlot.spec).order_by(
                PolicyNumberSlot.number_id, PolicyNumberSlot.position
            )
        ):
            own_slots.setdefault(number_id, []).append(spec)
        # many numbers share the same slots: compile each distinct set once
        cache: dict[tuple[str, ...], WeeklySchedule] = {}

        def compiled_schedule(specs: list[str]) -> WeeklySchedule:
            key = tuple(specs)
            schedule = cache.get(key)
            if schedule is None:
                schedule = cache[key] = WeeklySchedule(Slot.parse(spec) for spec in key)
            return schedule

        compiled = {tid: compiled_schedule(specs) for tid, specs in template_slots.items()}
        empty = WeeklySchedule(())
        rules: dict[str, NumberRule] = {}
        rows = await session.execute(
            select(
                PolicyNumber.id,
                PolicyNumber.number,
                PolicyNumber.active,
                PolicyNumber.managed,
                PolicyNumber.status,
                PolicyNumber.mode,
                PolicyNumber.beep,
                PolicyNumber.template_id,
            )
        )
        for nid, number, active, managed, status, mode, beep, tpl_id in rows:
            if tpl_id is not None:
                schedule = compiled.get(tpl_id, empty)
            elif nid in own_slots:
                schedule = compiled_schedule(own_slots[nid])
            else:
                schedule = empty
            rules[number] = NumberRule(
                number=number,
                active=bool(active),
                managed=bool(managed),
                status=status,
                mode=mode,
                beep=bool(beep),
                schedule=schedule,
            )
        return rules


_VERSION_QUERY = select(PolicyCounter.value).where(PolicyCounter.name == COUNTER_POLICY_VERSION)


class PolicyEngine:
    """Decides, per call, whether it is recorded. See the module docstring."""

    def __init__(
        self,
        db: Database,
        settings: PolicySettings | None = None,
        *,
        timezone: str | None = None,
        emergency_numbers: Iterable[str] | None = None,
        unknown_numbers: str | None = None,
        country_code: str | None = None,
        refresh_interval: float = 2.0,
        max_wait: float = 0.5,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        base = settings if settings is not None else PolicySettings()
        unknown = unknown_numbers if unknown_numbers is not None else base.unknown_numbers
        if unknown not in ("record", "decline"):
            raise ConfigError(
                f'[policy] unknown_numbers: must be "record" or "decline", not {unknown!r}'
            )
        cc = country_code if country_code is not None else base.country_code
        self._db = db
        self._zone = get_zone(timezone if timezone is not None else base.timezone)
        self._emergency = EmergencyMatcher(
            emergency_numbers if emergency_numbers is not None else base.emergency_numbers,
            country_code=cc,
        )
        self._unknown_record = unknown == "record"
        self._country_code = cc
        self._refresh_interval = refresh_interval
        self._monotonic = monotonic
        self._rules: dict[str, NumberRule] | None = None
        self._version = -1
        self._checked_at = 0.0
        self._lock = asyncio.Lock()
        self._wanted = 0  # bumped by invalidate()
        self._loaded = 0  # the value of _wanted the current snapshot reflects
        self._task: asyncio.Task[None] | None = None
        self._first_load: asyncio.Task[None] | None = None
        self._max_wait = max_wait
        self._uncounted_emergencies = 0
        # One flush at a time: two that read the same count before either subtracts it
        # would write it twice.
        self._flush_lock = asyncio.Lock()
        self._counter_task: asyncio.Task[None] | None = None
        self._counter_lock = asyncio.Lock()
        self._sqlite: sqlite3.Connection | None = None  # the version reader (SQLite only)

    def invalidate(self) -> None:
        """The policy changed in this process: reload before (or soon after) the next call."""
        self._wanted += 1

    async def refresh(self, *, force: bool = True) -> None:
        """Reload the snapshot now (``force``), or only if the ``policy_version`` moved."""
        async with self._lock:
            wanted = self._wanted
            async with self._db.session() as session:
                version = await read_counter(session, COUNTER_POLICY_VERSION)
            if force or self._rules is None or version != self._version or wanted != self._loaded:
                self._rules = await load_rules(self._db)
                self._version = version
            self._loaded = wanted
            self._checked_at = self._monotonic()

    async def _refresh_in_background(self) -> None:
        try:
            await self.refresh(force=False)
        except Exception:  # noqa: BLE001 - keep deciding with the snapshot we have
            log.exception("policy snapshot reload failed; the previous one stays in use")
            # do not make every call wait for a failing reload: the periodic check retries
            self._loaded = self._wanted
            self._checked_at = self._monotonic()

    async def wait_refreshed(self) -> None:
        """Wait for a background reload in progress, if any."""
        task = self._task
        if task is not None and not task.done():
            await asyncio.wait({task})

    async def close(self) -> None:
        """Write pending counters and stop a background reload (call before the loop ends)."""
        counter, self._counter_task = self._counter_task, None
        if counter is not None and not counter.done():
            await asyncio.gather(counter, return_exceptions=True)
        try:
            await self.flush_counters()
        except Exception:  # noqa: BLE001
            log.exception("cannot write the emergency call counter")
        for task in (self._task, self._first_load):
            if task is not None and not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._task = self._first_load = None
        if self._sqlite is not None:
            self._sqlite.close()
            self._sqlite = None

    async def _snapshot(self) -> dict[str, NumberRule]:
        if self._rules is None:
            # The first load is shared by every call that arrives while it runs: each running
            # its own refresh in turn (under the lock) made the first INVITEs after a start
            # wait one database round trip per call ahead of them. A failed load fails the
            # calls that shared it; the next call tries again.
            if self._first_load is None or self._first_load.done():
                self._first_load = asyncio.create_task(self.refresh(force=False))
            # shielded: a caller cancelled while waiting does not cancel the others' load
            await asyncio.shield(self._first_load)
            assert self._rules is not None
            return self._rules
        # Every decision reads the version counter (one indexed row): a change committed
        # by any process before this INVITE moved it, and the decision waits for the
        # reload. Between changes the snapshot stays in use and the check is all it costs.
        version = await self._read_version()
        if version != self._version or self._wanted != self._loaded:
            if self._task is None or self._task.done():
                self._task = asyncio.create_task(self._refresh_in_background())
            await asyncio.shield(self._task)
            if self._version != version and (self._task is None or self._task.done()):
                # the reload we joined had started before the change: one more
                self._task = asyncio.create_task(self._refresh_in_background())
                await asyncio.shield(self._task)
        assert self._rules is not None
        return self._rules

    async def _read_version(self) -> int:
        path = getattr(self._db, "_sqlite_path", None)
        if path is not None:
            # SQLite in WAL mode: a read of one primary-key row never waits for a writer and
            # takes a few microseconds in this thread, where a hop through aiosqlite's worker
            # thread costs about a millisecond on a loaded machine.
            if self._sqlite is None:
                self._sqlite = sqlite3.connect(
                    f"file:{path}?mode=ro", uri=True, check_same_thread=False
                )
            row = self._sqlite.execute(
                "SELECT value FROM policy_counters WHERE name = ?", (COUNTER_POLICY_VERSION,)
            ).fetchone()
            return int(row[0]) if row else 0
        async with self._db.engine.connect() as conn:
            value = await conn.scalar(_VERSION_QUERY)
        return int(value or 0)

    def normalize(self, aor: str) -> str | None:
        """The E.164 form of a participant, or None (a SIP user name without digits)."""
        try:
            return normalize_number(aor, country_code=self._country_code)
        except Exception:  # noqa: BLE001 - a participant we cannot read is simply unknown
            return None

    async def decide(self, participant_aors: Sequence[str], now: datetime) -> Decision:
        """The decision for a call whose INVITE arrived at the aware instant ``now``."""
        return await self._decide(participant_aors, now, count=True)

    async def evaluate(self, participant_aors: Sequence[str], at: datetime) -> Decision:
        """What :meth:`decide` would say of a call at ``at``, without counting it anywhere
        (reconciliation asks this of calls the recorder may never have seen)."""
        return await self._decide(participant_aors, at, count=False)

    async def _decide(
        self, participant_aors: Sequence[str], now: datetime, count: bool
    ) -> Decision:
        aors = [a for a in participant_aors if isinstance(a, str)]
        if self._emergency.any_matches(aors):
            if count:
                self._uncounted_emergencies += 1
                if self._counter_task is None or self._counter_task.done():
                    self._counter_task = asyncio.create_task(self.flush_counters())
            return Decision(
                record=False,
                reason=REASON_EMERGENCY,
                recorded_number=None,
                emergency=True,
                beep=False,
            )
        rules = await self._snapshot()
        minute = minute_of_week(now, self._zone)
        first_decline: tuple[NumberRule, str] | None = None
        seen: set[str] = set()
        for aor in aors:
            number = self.normalize(aor)
            if number is None or number in seen:
                continue
            seen.add(number)
            rule = rules.get(number)
            if rule is None:
                continue
            verdict = rule.verdict(minute)
            if verdict == REASON_RECORDED:
                return Decision(
                    record=True,
                    reason=REASON_RECORDED,
                    recorded_number=rule.number,
                    emergency=False,
                    beep=rule.beep,
                )
            if first_decline is None:
                first_decline = (rule, verdict)
        if first_decline is not None:
            rule, verdict = first_decline
            return Decision(
                record=False,
                reason=verdict,
                recorded_number=rule.number,
                emergency=False,
                beep=rule.beep,
            )
        if self._unknown_record:
            return Decision(
                record=True,
                reason=REASON_RECORDED_UNKNOWN,
                recorded_number=None,
                emergency=False,
                beep=False,
            )
        return Decision(
            record=False,
            reason=REASON_UNKNOWN,
            recorded_number=None,
            emergency=False,
            beep=False,
        )

    async def flush_counters(self) -> None:
        """Write the emergency calls counted in memory to the ``emergency_calls`` counter.

        :meth:`decide` does it in a background task, so that an emergency decision never
        waits for the database (e.g. for SQLite's write lock during a bulk import); a failed
        write is logged and retried with the next emergency call or :meth:`close`.
        """
        async with self._flush_lock:
            while self._uncounted_emergencies:
                count = self._uncounted_emergencies
                try:
                    async with transaction(self._db) as session:
                        await bump_counter(session, COUNTER_EMERGENCY_CALLS, count)
                except Exception:  # noqa: BLE001 - the count stays in memory for the next try
                    log.exception("cannot write the emergency call counter; will retry")
                    return
                self._uncounted_emergencies -= count

    async def emergency_calls(self) -> int:
        """How many emergency calls were refused so far (flushing the ones in memory first)."""
        await self.flush_counters()
        async with self._db.session() as session:
            return await read_counter(session, COUNTER_EMERGENCY_CALLS)
