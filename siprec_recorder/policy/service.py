"""The policy service: numbers, schedules and templates, with rules, audit and notifications.

Theory of operation
-------------------
Every public method is one database transaction: it reads what it needs, checks every rule
(:mod:`.rules`, :mod:`.schedule`), writes the change, appends an audit event to the ledger
(``actor``, ``action``, ``subject``, ``details = {"before": ..., "after": ...}``), queues a
notification when one is due, and bumps the ``policy_version`` counter so that every
:class:`~.engine.PolicyEngine` reloads; all of it commits together or not at all. Errors are
:class:`~.errors.PolicyError` subclasses with a message naming the number, template or slot.

Decisions recorded here:

* A number's schedule is either a template (the number references it: editing the template
  changes every number using it) or its own slots, never both.
* ``remove`` is a soft remove: the number becomes inactive (never recorded, reason
  ``number-inactive``); its row and history stay. ``set --active yes`` brings it back. Changes
  other than re-activation are refused on an inactive number ("must exist and be active").
* An unmanaged number can only be manual + professional; a managed one needs at least one slot.
* In ``auto`` the schedule decides and the mode is not used; a user (``by_user``, self
  service) therefore cannot switch the mode of an ``auto`` number.
* Notifications: when the fleet manager (not the user) changes ``status``, ``mode``,
  ``managed`` or ``active`` of a number whose ``notify`` is on, a JSON notification is queued
  in ``policy_notifications`` in the same transaction; :mod:`.notify` delivers it.
* A template used by an active number cannot be deleted; inactive numbers that use it keep
  a copy of its slots as their own.
* A user named by login that does not exist yet is created (role ``standard``, no password:
  it cannot log in to the portal until an administrator sets one).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from siprec_recorder.storage.db import Database
from siprec_recorder.storage.ledger import append_event
from siprec_recorder.storage.models import User, utcnow

from .db import bump_policy_version, read_counter, transaction
from .errors import NotFoundError, RuleError, ScheduleError
from .models import (
    COUNTER_EMERGENCY_CALLS,
    PolicyNotification,
    PolicyNumber,
    PolicyNumberSlot,
    PolicyTemplate,
    PolicyTemplateSlot,
)
from .rules import MODES, STATUSES, check_number_rules, normalize_firm_number, parse_choice
from .schedule import Slot, parse_slots, validate_slots
from .settings import PolicySettings

__all__ = [
    "NOTIFY_FIELDS",
    "NumberView",
    "PolicyService",
    "TemplateView",
    "notification_payload",
    "validate_template_name",
]

#: Fields whose change by the fleet manager notifies the user (when ``notify`` is on).
NOTIFY_FIELDS = ("status", "mode", "managed", "active")
_TEMPLATE_NAME_RE = re.compile(r"^[\w][\w .@+-]{0,99}$")
_LOGIN_RE = re.compile(r"^[^\s<>\"';,]{1,255}$")
#: A number's settings that its view shows as the row holds them.
_ROW_SETTINGS = ("mode", "managed", "status", "beep", "notify", "self_service", "active")


@dataclass(frozen=True, slots=True)
class NumberView:
    """A number as shown by ``numbers show`` / ``list`` and stored in audit events."""

    number: str
    user: str | None
    user_name: str | None
    mode: str
    managed: bool
    status: str
    beep: bool
    notify: bool
    self_service: bool
    active: bool
    template: str | None
    slots: tuple[str, ...]

    @classmethod
    def of(
        cls,
        row: PolicyNumber,
        *,
        login: str | None,
        user_name: str | None,
        template: str | None,
        slots: Sequence[str],
    ) -> NumberView:
        """The view of ``row``, given its user's login and name, its template's name and the
        slots that apply (the template's or its own)."""
        settings = {name: getattr(row, name) for name in _ROW_SETTINGS}
        return cls(
            number=row.number,
            user=login,
            user_name=user_name,
            template=template,
            slots=tuple(slots),
            **settings,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        d = asdict(self)
        d["slots"] = list(self.slots)
        return d


@dataclass(frozen=True, slots=True)
class TemplateView:
    """A template with its slots and how many numbers use it."""

    name: str
    slots: tuple[str, ...]
    numbers: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"name": self.name, "slots": list(self.slots), "numbers": self.numbers}


def validate_template_name(name: str) -> str:
    """The stripped template name; :class:`RuleError` when it is empty or odd."""
    clean = name.strip()
    if not _TEMPLATE_NAME_RE.match(clean):
        raise RuleError(
            f"template name {clean[:40]!r} is not valid: 1-100 letters, digits, "
            "spaces or . _ - @ +, starting with a letter or digit"
        )
    return clean


def validate_login(login: str) -> str:
    """The stripped login; ValueError when empty or containing spaces or quotes."""
    clean = login.strip()
    if not _LOGIN_RE.match(clean):
        raise ValueError(f"user login {clean[:40]!r} is not valid (no spaces, quotes, <>;,)")
    return clean


def notification_payload(
    view_before: NumberView, view_after: NumberView, *, actor: str, at: datetime
) -> dict[str, Any] | None:
    """The JSON document sent to the webhook, or None when nothing notifiable changed."""
    changes = {
        f: {"before": getattr(view_before, f), "after": getattr(view_after, f)}
        for f in NOTIFY_FIELDS
        if getattr(view_before, f) != getattr(view_after, f)
    }
    if not changes:
        return None
    return {
        "id": uuid.uuid4().hex,
        "type": "number.changed",
        "number": view_after.number,
        "user": {"login": view_after.user, "name": view_after.user_name},
        "changes": changes,
        "now": {f: getattr(view_after, f) for f in NOTIFY_FIELDS},
        "actor": actor,
        "at": at.isoformat(),
    }


class PolicyService:
    """Administration of the recording policy (the CLI, the portal and imports use it)."""

    def __init__(
        self,
        db: Database,
        settings: PolicySettings | None = None,
        *,
        on_change: Callable[[], None] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.settings = settings if settings is not None else PolicySettings()
        self._listeners: list[Callable[[], None]] = [on_change] if on_change else []
        self._clock = clock

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after every committed change (e.g. ``engine.invalidate``)."""
        self._listeners.append(callback)

    def notify_listeners(self) -> None:
        """Tell every listener the policy changed (bulk imports call it too)."""
        for callback in self._listeners:
            callback()

    # ---------------------------------------------------------------- helpers

    def normalize(self, number: str) -> str:
        """The E.164 form of a firm number; :class:`RuleError` if it is not one."""
        try:
            return normalize_firm_number(number, self.settings.country_code)
        except ValueError as exc:
            raise RuleError(str(exc)) from None

    async def _row(self, session: AsyncSession, number: str) -> PolicyNumber:
        row = await session.scalar(select(PolicyNumber).where(PolicyNumber.number == number))
        if row is None:
            raise NotFoundError(f"number {number} does not exist")
        return row

    async def _template(self, session: AsyncSession, name: str) -> PolicyTemplate:
        row = await session.scalar(select(PolicyTemplate).where(PolicyTemplate.name == name))
        if row is None:
            raise NotFoundError(f"template {name} does not exist")
        return row

    async def _template_slots(self, session: AsyncSession, template_id: int) -> list[str]:
        rows = await session.scalars(
            select(PolicyTemplateSlot.spec)
            .where(PolicyTemplateSlot.template_id == template_id)
            .order_by(PolicyTemplateSlot.position)
        )
        return list(rows)

    async def _own_slots(self, session: AsyncSession, number_id: int) -> list[str]:
        rows = await session.scalars(
            select(PolicyNumberSlot.spec)
            .where(PolicyNumberSlot.number_id == number_id)
            .order_by(PolicyNumberSlot.position)
        )
        return list(rows)

    async def _view(self, session: AsyncSession, row: PolicyNumber) -> NumberView:
        login = name = None
        if row.user_id is not None:
            user = await session.get(User, row.user_id)
            if user is not None:
                login, name = user.login, user.name
        template = None
        if row.template_id is not None:
            tpl = await session.get(PolicyTemplate, row.template_id)
            template = tpl.name if tpl is not None else None
            slots = await self._template_slots(session, row.template_id)
        else:
            slots = await self._own_slots(session, row.id)
        return NumberView.of(row, login=login, user_name=name, template=template, slots=slots)

    async def _user_id(
        self, session: AsyncSession, login: str, name: str | None, actor: str
    ) -> int:
        try:
            login = validate_login(login)
        except ValueError as exc:
            raise RuleError(str(exc)) from None
        user = await session.scalar(select(User).where(User.login == login))
        if user is None:
            user = User(login=login, name=name or login, role="standard")
            session.add(user)
            await session.flush()
            await append_event(
                session,
                actor=actor,
                action="policy.user.created",
                subject=f"user:{login}",
                details={"login": login, "name": user.name, "role": "standard"},
                now=self._clock(),
            )
        elif name and user.name != name:
            user.name = name
        return user.id

    def _parse_new_slots(self, owner: str, slots: Iterable[str]) -> list[Slot]:
        parsed = parse_slots(slots)
        validate_slots(owner, parsed)
        return parsed

    async def _check(self, session: AsyncSession, row: PolicyNumber) -> None:
        if row.template_id is not None:
            has_slots = bool(await self._template_slots(session, row.template_id))
        else:
            has_slots = bool(await self._own_slots(session, row.id))
        problems = check_number_rules(
            row.number, managed=row.managed, status=row.status, mode=row.mode, has_slots=has_slots
        )
        if problems:
            raise RuleError("; ".join(message for _, message in problems))

    async def _replace_own_slots(
        self, session: AsyncSession, number_id: int, slots: Sequence[Slot]
    ) -> None:
        await session.execute(
            delete(PolicyNumberSlot).where(PolicyNumberSlot.number_id == number_id)
        )
        for position, slot in enumerate(slots):
            session.add(PolicyNumberSlot(number_id=number_id, position=position, spec=str(slot)))
        await session.flush()

    async def _finish(
        self,
        session: AsyncSession,
        *,
        actor: str,
        action: str,
        subject: str,
        details: dict[str, Any],
        before: NumberView | None = None,
        after: NumberView | None = None,
        notify: bool = False,
    ) -> None:
        now = self._clock()
        await append_event(
            session, actor=actor, action=action, subject=subject, details=details, now=now
        )
        if notify and before is not None and after is not None and after.notify:
            payload = notification_payload(before, after, actor=actor, at=now)
            if payload is not None:
                session.add(
                    PolicyNotification(
                        number=after.number,
                        payload=json.dumps(payload, sort_keys=True),
                        created_at=now,
                        next_attempt_at=now,
                    )
                )
        await bump_policy_version(session)

    async def _save_number(
        self,
        session: AsyncSession,
        row: PolicyNumber,
        before: NumberView,
        *,
        actor: str,
        action: str,
        notify: bool,
        details: dict[str, Any] | None = None,
        check_rules: bool = True,
    ) -> NumberView:
        """Stamp a changed number, hold it to its rules and, when its view changed, audit the
        change (``before``/``after`` plus ``details``) and queue the user's notification."""
        row.updated_at = self._clock()
        await session.flush()
        if check_rules:
            await self._check(session, row)
        after = await self._view(session, row)
        if after != before:
            await self._finish(
                session,
                actor=actor,
                action=action,
                subject=f"number:{row.number}",
                details={"before": before.to_dict(), "after": after.to_dict(), **(details or {})},
                before=before,
                after=after,
                notify=notify,
            )
        return after

    # ---------------------------------------------------------------- numbers

    async def add_number(
        self,
        number: str,
        *,
        actor: str,
        user: str | None = None,
        user_name: str | None = None,
        managed: bool | None = None,
        status: str | None = None,
        mode: str = "professional",
        beep: bool = False,
        notify: bool = False,
        self_service: bool = False,
        template: str | None = None,
        slots: Sequence[str] | None = None,
    ) -> NumberView:
        """Add a number. ``managed`` defaults to yes when a template or slots are given;
        ``status`` to ``auto`` for a managed number, else ``manual``."""
        e164 = self.normalize(number)
        if template is not None and slots:
            raise RuleError(f"number {e164}: give a template or slots, not both")
        try:
            mode = parse_choice(mode, "mode", MODES)
            if status is not None:
                status = parse_choice(status, "status", STATUSES)
        except ValueError as exc:
            raise RuleError(f"number {e164}: {exc}") from None
        if managed is None:
            managed = template is not None or bool(slots)
        if status is None:
            status = "auto" if managed else "manual"
        parsed = self._parse_new_slots(f"number {e164}", slots or ())
        async with transaction(self.db) as session:
            existing = await session.scalar(select(PolicyNumber).where(PolicyNumber.number == e164))
            if existing is not None:
                state = "" if existing.active else " (inactive: use numbers set --active yes)"
                raise RuleError(f"number {e164} already exists{state}")
            template_id = None
            if template is not None:
                template_id = (await self._template(session, template.strip())).id
            user_id = await self._user_id(session, user, user_name, actor) if user else None
            row = PolicyNumber(
                number=e164,
                user_id=user_id,
                mode=mode,
                managed=managed,
                status=status,
                beep=beep,
                notify=notify,
                self_service=self_service,
                active=True,
                template_id=template_id,
                created_at=self._clock(),
                updated_at=self._clock(),
            )
            session.add(row)
            await session.flush()
            if parsed:
                await self._replace_own_slots(session, row.id, parsed)
            await self._check(session, row)
            after = await self._view(session, row)
            await self._finish(
                session,
                actor=actor,
                action="policy.number.added",
                subject=f"number:{e164}",
                details={"before": None, "after": after.to_dict()},
            )
        self.notify_listeners()
        return after

    async def set_number(
        self,
        number: str,
        *,
        actor: str,
        user: str | None = None,
        user_name: str | None = None,
        managed: bool | None = None,
        status: str | None = None,
        mode: str | None = None,
        beep: bool | None = None,
        notify: bool | None = None,
        self_service: bool | None = None,
        active: bool | None = None,
    ) -> NumberView:
        """Change some attributes (``None`` = unchanged); the result must obey every rule."""
        e164 = self.normalize(number)
        try:
            if mode is not None:
                mode = parse_choice(mode, "mode", MODES)
            if status is not None:
                status = parse_choice(status, "status", STATUSES)
        except ValueError as exc:
            raise RuleError(f"number {e164}: {exc}") from None
        async with transaction(self.db) as session:
            row = await self._row(session, e164)
            if not row.active and active is not True:
                raise RuleError(f"number {e164} is not active")
            before = await self._view(session, row)
            if user is not None:
                row.user_id = await self._user_id(session, user, user_name, actor)
            elif user_name is not None and row.user_id is not None:
                owner = await session.get(User, row.user_id)
                if owner is not None:
                    owner.name = user_name
            for field, value in (
                ("managed", managed),
                ("status", status),
                ("mode", mode),
                ("beep", beep),
                ("notify", notify),
                ("self_service", self_service),
                ("active", active),
            ):
                if value is not None:
                    setattr(row, field, value)
            after = await self._save_number(
                session, row, before, actor=actor, action="policy.number.changed", notify=True
            )
        self.notify_listeners()
        return after

    async def set_mode(
        self, number: str, mode: str, *, actor: str, by_user: bool = False
    ) -> NumberView:
        """Switch professional/private. ``by_user``: the user's own request (self service)."""
        e164 = self.normalize(number)
        try:
            mode = parse_choice(mode, "mode", MODES)
        except ValueError as exc:
            raise RuleError(f"number {e164}: {exc}") from None
        async with transaction(self.db) as session:
            row = await self._row(session, e164)
            if not row.active:
                raise RuleError(f"number {e164} is not active")
            if by_user and not row.self_service:
                raise RuleError(
                    f"number {e164}: self service is off, the user cannot change the mode"
                )
            if by_user and row.status == "auto":
                raise RuleError(
                    f"number {e164}: status is auto, the schedule decides"
                    " (the mode applies to manual numbers only)"
                )
            before = await self._view(session, row)
            row.mode = mode
            after = await self._save_number(
                session,
                row,
                before,
                actor=actor,
                action="policy.number.mode",
                notify=not by_user,
                details={"by_user": by_user},
            )
        self.notify_listeners()
        return after

    async def set_schedule(
        self,
        number: str,
        *,
        actor: str,
        template: str | None = None,
        slots: Sequence[str] | None = None,
    ) -> NumberView:
        """Give a number a template, or its own slots (validated as a whole, atomically)."""
        e164 = self.normalize(number)
        if (template is None) == (slots is None):
            raise RuleError(f"number {e164}: give a template or slots (one of them)")
        parsed = self._parse_new_slots(f"number {e164}", slots or ())
        async with transaction(self.db) as session:
            row = await self._row(session, e164)
            if not row.active:
                raise RuleError(f"number {e164} is not active")
            before = await self._view(session, row)
            if template is not None:
                row.template_id = (await self._template(session, template.strip())).id
                await self._replace_own_slots(session, row.id, ())
            else:
                row.template_id = None
                await self._replace_own_slots(session, row.id, parsed)
            after = await self._save_number(
                session, row, before, actor=actor, action="policy.number.schedule", notify=False
            )
        self.notify_listeners()
        return after

    async def remove_number(self, number: str, *, actor: str) -> NumberView:
        """Soft remove: the number becomes inactive (see the module docstring)."""
        e164 = self.normalize(number)
        async with transaction(self.db) as session:
            row = await self._row(session, e164)
            if not row.active:
                raise RuleError(f"number {e164} is not active")
            before = await self._view(session, row)
            row.active = False  # a change: only an active number gets here
            after = await self._save_number(
                session,
                row,
                before,
                actor=actor,
                action="policy.number.removed",
                notify=True,
                check_rules=False,
            )
        self.notify_listeners()
        return after

    async def get_number(self, number: str) -> NumberView:
        """One number; :class:`NotFoundError` if it does not exist."""
        e164 = self.normalize(number)
        async with self.db.session() as session:
            return await self._view(session, await self._row(session, e164))

    async def list_numbers(
        self, *, include_inactive: bool = True, user: str | None = None
    ) -> list[NumberView]:
        """Every number, sorted; optionally only active ones or one user's."""
        async with self.db.session() as session:
            templates: dict[int, str] = {}
            for tid, tname in await session.execute(select(PolicyTemplate.id, PolicyTemplate.name)):
                templates[tid] = tname
            tslots: dict[int, list[str]] = {}
            for tid, spec in await session.execute(
                select(PolicyTemplateSlot.template_id, PolicyTemplateSlot.spec).order_by(
                    PolicyTemplateSlot.template_id, PolicyTemplateSlot.position
                )
            ):
                tslots.setdefault(tid, []).append(spec)
            own: dict[int, list[str]] = {}
            for nid, spec in await session.execute(
                select(PolicyNumberSlot.number_id, PolicyNumberSlot.spec).order_by(
                    PolicyNumberSlot.number_id, PolicyNumberSlot.position
                )
            ):
                own.setdefault(nid, []).append(spec)
            query = (
                select(PolicyNumber, User.login, User.name)
                .outerjoin(User, User.id == PolicyNumber.user_id)
                .order_by(PolicyNumber.number)
            )
            if not include_inactive:
                query = query.where(PolicyNumber.active.is_(True))
            if user is not None:
                query = query.where(User.login == user)
            out: list[NumberView] = []
            for row, login, name in await session.execute(query):
                if row.template_id is not None:
                    template = templates.get(row.template_id)
                    slots = tslots.get(row.template_id, [])
                else:
                    template, slots = None, own.get(row.id, [])
                out.append(
                    NumberView.of(row, login=login, user_name=name, template=template, slots=slots)
                )
            return out

    # ---------------------------------------------------------------- templates

    async def set_template(self, name: str, slots: Sequence[str], *, actor: str) -> TemplateView:
        """Create or replace a template; its new slots are validated as a whole, and every
        number that uses it must still obey its rules."""
        name = validate_template_name(name)
        parsed = parse_slots(slots)
        if not parsed:
            raise ScheduleError(f"template {name}: at least one slot is required")
        validate_slots(f"template {name}", parsed)
        async with transaction(self.db) as session:
            row = await session.scalar(select(PolicyTemplate).where(PolicyTemplate.name == name))
            before: dict[str, Any] | None = None
            if row is None:
                row = PolicyTemplate(name=name, created_at=self._clock(), updated_at=self._clock())
                session.add(row)
                await session.flush()
            else:
                before = {"name": name, "slots": await self._template_slots(session, row.id)}
                await session.execute(
                    delete(PolicyTemplateSlot).where(PolicyTemplateSlot.template_id == row.id)
                )
                row.updated_at = self._clock()
            for position, slot in enumerate(parsed):
                session.add(
                    PolicyTemplateSlot(template_id=row.id, position=position, spec=str(slot))
                )
            await session.flush()
            used = await self._numbers_using(session, row.id)
            for number_row in used:
                await self._check(session, number_row)
            view = TemplateView(name=name, slots=tuple(str(s) for s in parsed), numbers=len(used))
            if before is None or before["slots"] != list(view.slots):
                await self._finish(
                    session,
                    actor=actor,
                    action="policy.template.set",
                    subject=f"template:{name}",
                    details={"before": before, "after": view.to_dict()},
                )
        self.notify_listeners()
        return view

    async def _numbers_using(self, session: AsyncSession, template_id: int) -> list[PolicyNumber]:
        rows = await session.scalars(
            select(PolicyNumber).where(PolicyNumber.template_id == template_id)
        )
        return list(rows)

    async def list_templates(self) -> list[TemplateView]:
        """Every template with its slots and number of users, sorted by name."""
        async with self.db.session() as session:
            counts = dict(
                (
                    await session.execute(
                        select(PolicyNumber.template_id, func.count())
                        .where(PolicyNumber.template_id.is_not(None))
                        .group_by(PolicyNumber.template_id)
                    )
                ).all()
            )
            out = []
            for row in await session.scalars(select(PolicyTemplate).order_by(PolicyTemplate.name)):
                slots = await self._template_slots(session, row.id)
                out.append(TemplateView(row.name, tuple(slots), int(counts.get(row.id, 0))))
            return out

    async def get_template(self, name: str) -> TemplateView:
        """One template; :class:`NotFoundError` if it does not exist."""
        async with self.db.session() as session:
            row = await self._template(session, name.strip())
            slots = await self._template_slots(session, row.id)
            used = await self._numbers_using(session, row.id)
            return TemplateView(row.name, tuple(slots), len(used))

    async def delete_template(self, name: str, *, actor: str) -> None:
        """Delete a template no active number uses.

        Inactive numbers that still reference it keep its slots as their own slots, so that
        they can be re-activated with the schedule they had.
        """
        name = name.strip()
        async with transaction(self.db) as session:
            row = await self._template(session, name)
            used = await self._numbers_using(session, row.id)
            active = [r for r in used if r.active]
            if active:
                some = ", ".join(sorted(r.number for r in active)[:3])
                more = ", ..." if len(active) > 3 else ""
                noun = "number" if len(active) == 1 else "numbers"
                raise RuleError(f"template {name} is used by {len(active)} {noun} ({some}{more})")
            slots = await self._template_slots(session, row.id)
            parsed = [Slot.parse(spec) for spec in slots]
            for number_row in used:
                number_row.template_id = None
                await self._replace_own_slots(session, number_row.id, parsed)
            before = {"name": name, "slots": slots}
            await session.execute(
                delete(PolicyTemplateSlot).where(PolicyTemplateSlot.template_id == row.id)
            )
            await session.delete(row)
            await session.flush()
            await self._finish(
                session,
                actor=actor,
                action="policy.template.deleted",
                subject=f"template:{name}",
                details={
                    "before": before,
                    "after": None,
                    "slots_copied_to_inactive_numbers": sorted(r.number for r in used),
                },
            )
        self.notify_listeners()

    # ---------------------------------------------------------------- counters, outbox

    async def emergency_calls(self) -> int:
        """How many emergency calls were refused (the only trace they leave)."""
        async with self.db.session() as session:
            return await read_counter(session, COUNTER_EMERGENCY_CALLS)

    async def pending_notifications(self) -> list[dict[str, Any]]:
        """Notifications not delivered yet (oldest first)."""
        async with self.db.session() as session:
            rows = await session.scalars(
                select(PolicyNotification)
                .where(PolicyNotification.delivered_at.is_(None))
                .order_by(PolicyNotification.id)
            )
            return [
                {
                    "id": r.id,
                    "number": r.number,
                    "attempts": r.attempts,
                    "last_error": r.last_error,
                    "payload": json.loads(r.payload),
                }
                for r in rows
            ]
