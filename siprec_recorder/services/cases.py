"""Labels, cases, labels on recordings, and access requests.

Theory of operation
-------------------
A case is a title, an owner (the admin who created it), one label and three access settings.
A conversation is in a case while it carries the case's label; adding or removing the label
is the only way in or out. Access requests move ``pending -> approved | rejected`` and
``approved -> revoked``; an approved request simply stops counting at its ``expires_at``
(shown as ``expired``). Every transition is a row of history and a ledger event, and nobody
decides on their own request. Every method takes the principal and checks its rights itself,
so the JSON API and the pages share one set of rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from siprec_recorder.storage.db import Database
from siprec_recorder.storage.ledger import append_event
from siprec_recorder.storage.models import Recording

from .access import Scope, build_scope
from .auth import Principal
from .errors import BadRequest, Conflict, Forbidden, NotFound, Unavailable
from .models import (
    RIGHTS,
    SETTING_VALUES,
    AccessRequest,
    AccessRequestEvent,
    Case,
    Label,
    RecordingLabel,
)
from .security import as_utc, user_time
from .settings import WebSettings

__all__ = ["CaseService", "NewLabel", "parse_rights", "request_status"]

_COLOUR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
MAX_REQUEST_DAYS = 366


@dataclass(frozen=True, slots=True)
class NewLabel:
    """A label to create together with a case."""

    title: str
    colour: str


def parse_rights(rights: list[str] | str) -> list[str]:
    """The rights asked for, in canonical order; raises BadRequest on unknown ones."""
    items = rights.split(",") if isinstance(rights, str) else list(rights)
    wanted = {r.strip() for r in items if r.strip()}
    unknown = wanted - set(RIGHTS)
    if unknown:
        raise BadRequest(f"unknown right(s): {', '.join(sorted(unknown))}; use list, play, label")
    if not wanted:
        raise BadRequest("ask for at least one right: list, play or label")
    return [r for r in RIGHTS if r in wanted]


def request_status(req: AccessRequest, now: datetime) -> str:
    """``pending``, ``approved``, ``expired``, ``rejected`` or ``revoked`` at ``now``."""
    if req.status == "approved" and as_utc(req.expires_at) <= now:
        return "expired"
    return req.status


def label_json(label: Label) -> dict[str, Any]:
    return {"id": label.id, "title": label.title, "colour": label.colour}


class CaseService:
    """Every operation on labels, cases and access requests, with its checks and audit."""

    def __init__(self, db: Database, settings: WebSettings) -> None:
        self._db = db
        self._settings = settings

    def now(self) -> datetime:
        return as_utc(self._settings.clock())

    async def scope(self, principal: Principal) -> Scope:
        async with self._db.session() as s:
            return await build_scope(s, principal, self.now())

    @staticmethod
    async def _audit(s: AsyncSession, p: Principal, action: str, subject: str, **d: Any) -> None:
        await append_event(s, actor=p.login, action=action, subject=subject, details=d)

    @staticmethod
    def _require_admin(p: Principal) -> None:
        if not p.is_admin:
            raise Forbidden("only an admin may do this")

    @staticmethod
    def _require_writer(p: Principal) -> None:
        if p.is_auditor:
            raise Forbidden("an auditor reads and changes nothing")

    # -- legal holds ----------------------------------------------------------------------

    async def hold_recording(
        self, p: Principal, recording_id: str, *, held: bool, reason: str | None
    ) -> dict[str, Any]:
        """Put one recording on legal hold (``held``) or release it; admins only."""
        self._require_admin(p)
        async with self._db.session() as s:
            if await s.get(Recording, recording_id) is None:
                raise NotFound(f"no recording {recording_id}")
        return await self._change_hold(p, [recording_id], held=held, reason=reason)

    async def hold_case(
        self, p: Principal, case_id: int, *, held: bool, reason: str | None
    ) -> dict[str, Any]:
        """Put every recording now in case ``case_id`` (carrying its label, not purged) on
        legal hold, or release them; admins only. One ledger event for the case and one per
        recording. A recording labelled into the case later is not held by this: hold it,
        or the case, again."""
        from siprec_recorder.compliance.retention import RetentionError, recordings_in_case

        self._require_admin(p)
        if held and not (reason or "").strip():
            raise BadRequest("a legal hold needs a reason (case reference)")
        try:
            ids = await recordings_in_case(self._db, case_id)
        except RetentionError:
            raise NotFound(f"no case {case_id}") from None
        result = await self._change_hold(p, ids, held=held, reason=reason)
        async with self._db.session() as s:
            await append_event(
                s,
                actor=f"web:{p.login}",
                action="legal_hold.case_set" if held else "legal_hold.case_released",
                subject=f"case:{case_id}",
                details={"reason": (reason or "").strip() or None, "recordings": len(ids)},
                now=self.now(),
            )
            await s.commit()
        return {**result, "case_id": case_id}

    async def _change_hold(
        self, p: Principal, ids: list[str], *, held: bool, reason: str | None
    ) -> dict[str, Any]:
        """Through :func:`~siprec_recorder.compliance.retention.change_legal_hold`, the same
        function the CLI's ``hold``/``release`` use: the index flag and its ledger events
        (actor ``web:<login>``), then the object store's own legal hold (S3 Object Lock) on
        the recordings' objects. A store that cannot be reached is a 503 (the index hold is
        recorded; asking again carries it to the store)."""
        from siprec_recorder.compliance.retention import RetentionError, change_legal_hold

        if held and not (reason or "").strip():
            raise BadRequest("a legal hold needs a reason (case reference)")
        try:
            outcome = await change_legal_hold(
                self._db,
                ids,
                held=held,
                actor=f"web:{p.login}",
                reason=reason,
                now=self.now(),
                store=self._settings.store,
                retention_years=self._settings.retention_years,
            )
        except RetentionError as exc:
            raise Conflict(str(exc)) from None
        if outcome.store_errors:
            raise Unavailable(
                "the legal hold is recorded in the index, but the object store could not be "
                f"updated (ask again): {outcome.store_errors[0]}"
            )
        return {"held": held, **outcome.to_dict()}

    # -- labels ---------------------------------------------------------------------------

    async def labels(self) -> list[dict[str, Any]]:
        async with self._db.session() as s:
            rows = await s.execute(select(Label).order_by(Label.title))
            case_of = {c.label_id: c.id for c in (await s.execute(select(Case))).scalars()}
            return [{**label_json(lb), "case_id": case_of.get(lb.id)} for lb in rows.scalars()]

    async def _create_label(self, s: AsyncSession, p: Principal, new: NewLabel) -> Label:
        title = new.title.strip()
        if not title or len(title) > 80:
            raise BadRequest("a label title has 1 to 80 characters")
        if not _COLOUR_RE.match(new.colour.strip()):
            raise BadRequest("a label colour is #rrggbb, e.g. #d03030")
        exists = await s.scalar(select(Label.id).where(Label.title == title))
        if exists is not None:
            raise Conflict(f"a label titled {title!r} already exists")
        label = Label(
            title=title,
            colour=new.colour.strip().lower(),
            created_by=p.login,
            created_at=self.now(),
        )
        s.add(label)
        await s.flush()
        await self._audit(
            s, p, "web.label_created", f"label:{label.id}", title=title, colour=label.colour
        )
        return label

    async def create_label(self, p: Principal, new: NewLabel) -> dict[str, Any]:
        self._require_admin(p)
        async with self._db.session() as s:
            label = await self._create_label(s, p, new)
            await s.commit()
            return label_json(label)

    # -- cases ----------------------------------------------------------------------------

    @staticmethod
    def _may_read_case(scope: Scope | None, case: Case) -> bool:
        """Admins, auditors, the owner and holders of a right read a case's title,
        description, owner and label; everyone else sees only its number."""
        if scope is None:
            return True
        p = scope.principal
        return (
            p.reads_all
            or case.owner == p.login
            or any(scope.case_right(case.id, r) for r in RIGHTS)
        )

    def _case_json(
        self, case: Case, label: Label, scope: Scope | None, count: int | None = None
    ) -> dict[str, Any]:
        if not self._may_read_case(scope, case):
            return {
                "id": case.id,
                "title": f"Case {case.id}",
                "description": "",
                "owner": None,
                "label": {"id": None, "title": f"case {case.id}", "colour": "#667788"},
                "access": None,
                "created_at": as_utc(case.created_at).isoformat(),
                "my_rights": [],
                "restricted": True,
            }
        doc: dict[str, Any] = {
            "id": case.id,
            "title": case.title,
            "description": case.description,
            "owner": case.owner,
            "label": label_json(label),
            "access": {
                "list": case.list_access,
                "play": case.play_access,
                "label": case.label_access,
            },
            "created_at": as_utc(case.created_at).isoformat(),
        }
        if scope is not None:
            doc["my_rights"] = [r for r in RIGHTS if scope.case_right(case.id, r)]
        if count is not None:
            doc["recordings"] = count
        return doc

    async def cases(self, p: Principal) -> list[dict[str, Any]]:
        """Every case, by number; its details only for those who may read it (see
        :meth:`_may_read_case`): a user asks for access to a case number given to them."""
        async with self._db.session() as s:
            scope = await build_scope(s, p, self.now())
            rows = await s.execute(
                select(Case, Label).join(Label, Label.id == Case.label_id).order_by(Case.id.desc())
            )
            return [self._case_json(c, lb, scope) for c, lb in rows.all()]

    async def case(self, p: Principal, case_id: int) -> dict[str, Any]:
        async with self._db.session() as s:
            row = (
                await s.execute(
                    select(Case, Label)
                    .join(Label, Label.id == Case.label_id)
                    .where(Case.id == case_id)
                )
            ).first()
            if row is None:
                raise NotFound(f"no case {case_id}")
            scope = await build_scope(s, p, self.now())
            case, label = row
            await self._audit(s, p, "web.case_viewed", f"case:{case.id}")
            await s.commit()
            count = None
            if scope.case_right(case.id, "list"):
                count = len(
                    list(
                        await s.scalars(
                            select(RecordingLabel.id).where(RecordingLabel.label_id == label.id)
                        )
                    )
                )
            return self._case_json(case, label, scope, count)

    @staticmethod
    def _check_settings(settings: dict[str, str]) -> None:
        for right, value in settings.items():
            if value not in SETTING_VALUES:
                raise BadRequest(
                    f"{right} access must be one of {', '.join(SETTING_VALUES)}, got {value!r}"
                )

    async def create_case(
        self,
        p: Principal,
        *,
        title: str,
        description: str = "",
        label_id: int | None = None,
        new_label: NewLabel | None = None,
        list_access: str = "admins",
        play_access: str = "admins",
        label_access: str = "owner",
    ) -> dict[str, Any]:
        """Create a case with an existing label or a new one (title and colour)."""
        self._require_admin(p)
        title = title.strip()
        if not title or len(title) > 200:
            raise BadRequest("a case title has 1 to 200 characters")
        self._check_settings({"list": list_access, "play": play_access, "label": label_access})
        if (label_id is None) == (new_label is None):
            raise BadRequest("choose an existing label or create a new one (title and colour)")
        async with self._db.session() as s:
            if new_label is not None:
                label = await self._create_label(s, p, new_label)
            else:
                found = await s.get(Label, label_id)
                if found is None:
                    raise NotFound(f"no label {label_id}")
                label = found
                taken = await s.scalar(select(Case.id).where(Case.label_id == label.id))
                if taken is not None:
                    raise Conflict(f"label {label.title!r} already belongs to case {taken}")
            case = Case(
                title=title,
                description=description.strip(),
                label_id=label.id,
                owner=p.login,
                list_access=list_access,
                play_access=play_access,
                label_access=label_access,
                created_at=self.now(),
            )
            s.add(case)
            await s.flush()
            await self._audit(
                s,
                p,
                "web.case_created",
                f"case:{case.id}",
                title=title,
                label=label.title,
                access={"list": list_access, "play": play_access, "label": label_access},
            )
            await s.commit()
            scope = await build_scope(s, p, self.now())
            return self._case_json(case, label, scope)

    async def set_case_access(self, p: Principal, case_id: int, **settings: str) -> dict[str, Any]:
        """Change the access settings of a case (its owner or any admin)."""
        self._require_admin(p)
        self._check_settings(settings)
        async with self._db.session() as s:
            case = await s.get(Case, case_id)
            if case is None:
                raise NotFound(f"no case {case_id}")
            before = {
                "list": case.list_access,
                "play": case.play_access,
                "label": case.label_access,
            }
            for right, value in settings.items():
                setattr(case, f"{right}_access", value)
            after = {"list": case.list_access, "play": case.play_access, "label": case.label_access}
            await self._audit(
                s, p, "web.case_access_changed", f"case:{case.id}", before=before, after=after
            )
            await s.commit()
        return await self.case(p, case_id)

    # -- labels on recordings -------------------------------------------------------------

    async def _label_right(self, s: AsyncSession, p: Principal, label_id: int) -> Label:
        label = await s.get(Label, label_id)
        if label is None:
            raise NotFound(f"no label {label_id}")
        self._require_writer(p)
        case_id = await s.scalar(select(Case.id).where(Case.label_id == label_id))
        scope = await build_scope(s, p, self.now())
        if case_id is None:
            if not p.is_admin:
                raise Forbidden("only an admin may use a label that belongs to no case")
        elif not scope.case_right(case_id, "label"):
            raise Forbidden("you may not add or remove the label of this case")
        return label

    async def add_label(self, p: Principal, recording_id: str, label_id: int) -> None:
        await self.add_labels(p, [recording_id], label_id)

    async def add_labels(self, p: Principal, recording_ids: list[str], label_id: int) -> int:
        """Put a label on recordings, in one transaction; how many did not have it."""
        added = 0
        async with self._db.session() as s:
            label = await self._label_right(s, p, label_id)
            for recording_id in recording_ids:
                if await s.get(Recording, recording_id) is None:
                    raise NotFound(f"no recording {recording_id}")
                exists = await s.scalar(
                    select(RecordingLabel.id).where(
                        RecordingLabel.recording_id == recording_id,
                        RecordingLabel.label_id == label_id,
                    )
                )
                if exists is None:
                    added += 1
                    s.add(
                        RecordingLabel(
                            recording_id=recording_id,
                            label_id=label_id,
                            added_by=p.login,
                            added_at=self.now(),
                        )
                    )
                    await self._audit(
                        s,
                        p,
                        "web.label_added",
                        f"recording:{recording_id}",
                        label=label.title,
                        label_id=label.id,
                    )
            await s.commit()
        return added

    async def remove_label(self, p: Principal, recording_id: str, label_id: int) -> None:
        await self.remove_labels(p, [recording_id], label_id)

    async def remove_labels(self, p: Principal, recording_ids: list[str], label_id: int) -> int:
        """Take a label off recordings, in one transaction; how many had it."""
        removed = 0
        async with self._db.session() as s:
            label = await self._label_right(s, p, label_id)
            for recording_id in recording_ids:
                result = await s.execute(
                    delete(RecordingLabel).where(
                        RecordingLabel.recording_id == recording_id,
                        RecordingLabel.label_id == label_id,
                    )
                )
                if getattr(result, "rowcount", 0):
                    removed += 1
                    await self._audit(
                        s,
                        p,
                        "web.label_removed",
                        f"recording:{recording_id}",
                        label=label.title,
                        label_id=label.id,
                    )
            await s.commit()
        return removed

    # -- access requests ------------------------------------------------------------------

    async def _request_json(
        self,
        s: AsyncSession,
        req: AccessRequest,
        history: bool = False,
        scope: Scope | None = None,
    ) -> dict[str, Any]:
        case = await s.get(Case, req.case_id)
        title = None
        if case is not None:
            title = case.title if self._may_read_case(scope, case) else f"Case {case.id}"
        doc: dict[str, Any] = {
            "id": req.id,
            "case_id": req.case_id,
            "case_title": title,
            "requester": req.requester,
            "reason": req.reason,
            "rights": req.rights.split(","),
            "expires_at": as_utc(req.expires_at).isoformat(),
            "status": request_status(req, self.now()),
            "decided_by": req.decided_by,
            "decision_note": req.decision_note,
            "created_at": as_utc(req.created_at).isoformat(),
            "decided_at": as_utc(req.decided_at).isoformat() if req.decided_at else None,
        }
        if history:
            events = await s.execute(
                select(AccessRequestEvent)
                .where(AccessRequestEvent.request_id == req.id)
                .order_by(AccessRequestEvent.id)
            )
            doc["history"] = [
                {
                    "at": as_utc(e.at).isoformat(),
                    "actor": e.actor,
                    "action": e.action,
                    "note": e.note,
                }
                for e in events.scalars()
            ]
        return doc

    async def _event(
        self,
        s: AsyncSession,
        p: Principal,
        req: AccessRequest,
        action: str,
        note: str,
        **details: Any,
    ) -> None:
        s.add(
            AccessRequestEvent(
                request_id=req.id, at=self.now(), actor=p.login, action=action, note=note
            )
        )
        await self._audit(
            s,
            p,
            f"web.access_request_{action}",
            f"access_request:{req.id}",
            case_id=req.case_id,
            requester=req.requester,
            rights=req.rights,
            expires_at=as_utc(req.expires_at).isoformat(),
            note=note,
            **details,
        )

    def _check_expiry(self, expires_at: datetime) -> datetime:
        expires_at = user_time(expires_at, "expiry date")
        now = self.now()
        if expires_at <= now:
            raise BadRequest("the expiry date must be in the future")
        if expires_at > now + timedelta(days=MAX_REQUEST_DAYS):
            raise BadRequest(f"access can be granted for at most {MAX_REQUEST_DAYS} days")
        return expires_at

    async def request_access(
        self,
        p: Principal,
        *,
        case_id: int,
        reason: str,
        rights: list[str] | str,
        expires_at: datetime,
    ) -> dict[str, Any]:
        self._require_writer(p)
        wanted = parse_rights(rights)
        reason = reason.strip()
        if not reason:
            raise BadRequest("give a reason for the request")
        if len(reason) > 2000:
            raise BadRequest("the reason has at most 2000 characters")
        expires = self._check_expiry(expires_at)
        async with self._db.session() as s:
            if await s.get(Case, case_id) is None:
                raise NotFound(f"no case {case_id}")
            req = AccessRequest(
                case_id=case_id,
                requester=p.login,
                reason=reason,
                rights=",".join(wanted),
                expires_at=expires,
                status="pending",
                decision_note="",
                created_at=self.now(),
            )
            s.add(req)
            await s.flush()
            await self._event(s, p, req, "requested", reason)
            await s.commit()
            return await self._request_json(
                s, req, history=True, scope=await build_scope(s, p, self.now())
            )

    async def _decide(
        self,
        p: Principal,
        request_id: int,
        action: str,
        note: str,
        expires_at: datetime | None = None,
    ) -> dict[str, Any]:
        self._require_admin(p)
        async with self._db.session() as s:
            req = await s.get(AccessRequest, request_id)
            if req is None:
                raise NotFound(f"no access request {request_id}")
            if req.requester == p.login:
                raise Forbidden("nobody decides on their own request")
            status = request_status(req, self.now())
            if action in ("approved", "rejected") and status != "pending":
                raise Conflict(f"request {request_id} is {status}, not pending")
            if action == "revoked" and status != "approved":
                raise Conflict(
                    f"request {request_id} is {status}; only approved access can be revoked"
                )
            if action == "approved" and expires_at is not None:
                req.expires_at = self._check_expiry(expires_at)
            elif action == "approved" and as_utc(req.expires_at) <= self.now():
                raise Conflict("the requested expiry date has passed; set a new one")
            req.status = action
            req.decided_by = p.login
            req.decision_note = note.strip()
            req.decided_at = self.now()
            await self._event(s, p, req, action, note.strip())
            await s.commit()
            return await self._request_json(
                s, req, history=True, scope=await build_scope(s, p, self.now())
            )

    async def approve(
        self, p: Principal, request_id: int, note: str = "", expires_at: datetime | None = None
    ) -> dict[str, Any]:
        return await self._decide(p, request_id, "approved", note, expires_at)

    async def reject(self, p: Principal, request_id: int, note: str = "") -> dict[str, Any]:
        return await self._decide(p, request_id, "rejected", note)

    async def revoke(self, p: Principal, request_id: int, note: str = "") -> dict[str, Any]:
        return await self._decide(p, request_id, "revoked", note)

    async def requests(self, p: Principal, which: str) -> list[dict[str, Any]]:
        """``mine``, ``pending`` (admins, auditors) or ``all`` (admins, auditors, history)."""
        async with self._db.session() as s:
            q = select(AccessRequest).order_by(AccessRequest.id.desc())
            if which == "mine":
                q = q.where(AccessRequest.requester == p.login)
            elif not p.reads_all:
                raise Forbidden("only admins and auditors see other users' requests")
            elif which == "pending":
                q = q.where(AccessRequest.status == "pending")
            rows = list((await s.execute(q)).scalars())
            scope = await build_scope(s, p, self.now())
            return [
                await self._request_json(s, r, history=(which != "pending"), scope=scope)
                for r in rows
            ]

    async def request(self, p: Principal, request_id: int) -> dict[str, Any]:
        async with self._db.session() as s:
            req = await s.get(AccessRequest, request_id)
            if req is None or (req.requester != p.login and not p.reads_all):
                raise NotFound(f"no access request {request_id}")
            scope = await build_scope(s, p, self.now())
            return await self._request_json(s, req, history=True, scope=scope)
