"""Who may see, play and label which recordings.

Theory of operation
-------------------
A :class:`Scope` is computed once per request for the principal:

* ``own_numbers``: the policy numbers whose user is this account (a *standard* user's calls
  are the recordings with one of these numbers among their participants);
* ``case_rights``: for every case, the rights (``list``, ``play``, ``label``) the principal
  holds, from the case's access settings (``owner`` / ``admins`` / ``everyone``) or from an
  approved access request that has not expired and was not revoked.

Admins and auditors list and play every recording. Only admins download. An auditor never
changes anything, so holds no ``label`` right whatever the settings say. The decision
functions are pure; they take the scope and the recording's numbers and labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from siprec_recorder.storage.models import User

from .auth import Principal
from .models import RIGHTS, AccessRequest, Case

__all__ = ["Scope", "base_rights", "build_scope", "numbers_of_login"]


@dataclass(frozen=True, slots=True)
class Scope:
    """What one principal may do, resolved for one request."""

    principal: Principal
    own_numbers: frozenset[str] = frozenset()
    case_rights: dict[int, frozenset[str]] = field(default_factory=dict)
    case_labels: dict[int, int] = field(default_factory=dict)  # case id -> label id

    def labels_with(self, right: str) -> frozenset[int]:
        """Label ids of the cases where the principal holds ``right``."""
        return frozenset(
            self.case_labels[c] for c, rights in self.case_rights.items() if right in rights
        )

    def can_list(self, numbers: set[str], label_ids: set[int]) -> bool:
        """Whether a recording with these participant numbers and labels is visible."""
        if self.principal.reads_all:
            return True
        return bool(numbers & self.own_numbers) or bool(label_ids & self.labels_with("list"))

    def can_play(self, numbers: set[str], label_ids: set[int]) -> bool:
        """Whether a recording with these participant numbers and labels may be played."""
        if self.principal.reads_all:
            return True
        return bool(numbers & self.own_numbers) or bool(label_ids & self.labels_with("play"))

    @property
    def can_download(self) -> bool:
        """MP3 download is for admins only."""
        return self.principal.is_admin

    def case_right(self, case_id: int, right: str) -> bool:
        """Whether the principal holds ``right`` on case ``case_id``."""
        if right in ("list", "play") and self.principal.reads_all:
            return True
        return right in self.case_rights.get(case_id, frozenset())


def base_rights(case: Case, principal: Principal) -> set[str]:
    """The rights the case's own settings give ``principal`` (no request needed)."""
    rights: set[str] = set()
    for right in RIGHTS:
        setting = getattr(case, f"{right}_access")
        if (
            setting == "everyone"
            or (setting == "admins" and principal.is_admin)
            or (setting == "owner" and principal.login == case.owner)
        ):
            rights.add(right)
    if principal.is_auditor:
        rights.discard("label")
    return rights


async def numbers_of_login(session: AsyncSession, login: str) -> frozenset[str]:
    """The active policy numbers whose user is ``login`` (empty when policy has none)."""
    try:
        from siprec_recorder.policy.models import PolicyNumber
    except ImportError:  # pragma: no cover - policy layer absent
        return frozenset()
    try:
        rows = await session.execute(
            select(PolicyNumber.number)
            .join(User, User.id == PolicyNumber.user_id)
            .where(User.login == login, PolicyNumber.active.is_(True))
        )
    except Exception:  # the policy tables may not exist in a portal-only database
        await session.rollback()
        return frozenset()
    return frozenset(r[0] for r in rows)


async def build_scope(session: AsyncSession, principal: Principal, now: datetime) -> Scope:
    """Resolve the principal's numbers and case rights at ``now``."""
    own = await numbers_of_login(session, principal.login)
    cases = list((await session.execute(select(Case))).scalars())
    granted: dict[int, set[str]] = {}
    if not principal.is_auditor:
        requests = await session.execute(
            select(AccessRequest).where(
                AccessRequest.requester == principal.login,
                AccessRequest.status == "approved",
                AccessRequest.expires_at > now,
            )
        )
        for req in requests.scalars():
            granted.setdefault(req.case_id, set()).update(
                r for r in req.rights.split(",") if r in RIGHTS
            )
    rights = {c.id: frozenset(base_rights(c, principal) | granted.get(c.id, set())) for c in cases}
    return Scope(principal, own, rights, {c.id: c.label_id for c in cases})
