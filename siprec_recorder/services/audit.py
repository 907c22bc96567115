"""The audit trail as the portal shows it (the ledger, filtered, newest first, with the
result of a full hash-chain verification), and the portal's own events written to it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from siprec_recorder.storage.db import Database
from siprec_recorder.storage.ledger import append_event, verify_chain
from siprec_recorder.storage.models import LedgerEntry

from .auth import Principal
from .errors import BadRequest, Forbidden
from .security import as_utc, user_time

__all__ = ["AuditQuery", "audit_trail", "record_event"]


@dataclass(frozen=True, slots=True)
class AuditQuery:
    actor: str | None = None
    action: str | None = None
    subject: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    page: int = 1
    page_size: int = 100


async def record_event(
    db: Database, actor: str, action: str, subject: str, details: dict[str, Any]
) -> None:
    """Write one ledger event in its own transaction."""
    async with db.session() as s:
        await append_event(s, actor=actor, action=action, subject=subject, details=details)
        await s.commit()


def _like(value: str) -> str:
    return "%" + value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def audit_trail(db: Database, p: Principal, q: AuditQuery) -> dict[str, Any]:
    """One page of ledger events for an admin or auditor, and the chain's status."""
    if not p.reads_all:
        raise Forbidden("only admins and auditors see the audit trail")
    if q.page < 1 or not 1 <= q.page_size <= 1000:
        raise BadRequest("page must be 1 or more and page_size between 1 and 1000")
    stmt = select(LedgerEntry)
    if q.actor:
        stmt = stmt.where(LedgerEntry.actor.like(_like(q.actor), escape="\\"))
    if q.action:
        stmt = stmt.where(LedgerEntry.action.like(_like(q.action), escape="\\"))
    if q.subject:
        stmt = stmt.where(LedgerEntry.subject.like(_like(q.subject), escape="\\"))
    if q.since:
        stmt = stmt.where(LedgerEntry.ts >= user_time(q.since, "since"))
    if q.until:
        stmt = stmt.where(LedgerEntry.ts < user_time(q.until, "until"))
    async with db.session() as s:
        total = int(await s.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
        rows = (
            await s.execute(
                stmt.order_by(LedgerEntry.seq.desc())
                .limit(q.page_size)
                .offset((q.page - 1) * q.page_size)
            )
        ).scalars()
        items = []
        for e in rows:
            try:
                details = json.loads(e.details)
            except (TypeError, ValueError):
                details = {"unreadable": e.details}
            items.append(
                {
                    "seq": e.seq,
                    "ts": as_utc(e.ts).isoformat(),
                    "actor": e.actor,
                    "action": e.action,
                    "subject": e.subject,
                    "details": details,
                    "hash": e.hash,
                }
            )
        problems = await verify_chain(s)
    async with db.session() as s:  # looking at the audit trail is itself audited
        filters = {
            k: v for k, v in (("actor", q.actor), ("action", q.action), ("subject", q.subject)) if v
        }
        await append_event(
            s,
            actor=p.login,
            action="web.audit_viewed",
            subject="ledger",
            details={"filters": filters, "page": q.page, "chain_ok": not problems},
        )
        await s.commit()
    return {
        "chain_ok": not problems,
        "problems": problems[:50],
        "total": total,
        "page": q.page,
        "page_size": q.page_size,
        "pages": max(1, -(-total // q.page_size)),
        "items": items,
    }
