"""The portal's services bundled for the routes, and the per-request helpers they share.

A request is authenticated by the session cookie (browsers) or by ``Authorization: Bearer
<session token>`` (API clients). A cookie-authenticated request that changes anything must
carry the session's CSRF token (header ``X-CSRF-Token`` or form field ``csrf_token``); a
bearer token cannot be sent by a foreign page, so it needs none. Until an account has
changed its first password, its session may only change the password, read ``me`` and
log out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request

from siprec_recorder.services.access import Scope
from siprec_recorder.services.audit import record_event
from siprec_recorder.services.auth import AuthService, Principal
from siprec_recorder.services.cases import CaseService
from siprec_recorder.services.errors import Forbidden, Unauthorized
from siprec_recorder.services.recordings import RecordingService
from siprec_recorder.services.security import same_token
from siprec_recorder.services.settings import WebSettings
from siprec_recorder.storage.db import Database

__all__ = ["Portal", "audit", "get_portal"]

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PASSWORD_CHANGE_ALLOWED = frozenset(
    {"/api/auth/password", "/api/auth/logout", "/api/auth/me", "/password", "/logout"}
)


@dataclass
class Portal:
    """Everything the routes need, built once by ``create_app``."""

    db: Database
    files_root: Path
    settings: WebSettings
    policy: Any
    auth: AuthService
    cases: CaseService
    recordings: RecordingService

    def session_token(self, request: Request) -> tuple[str | None, bool]:
        """(token, came_from_cookie)."""
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            return header[7:].strip() or None, False
        return request.cookies.get(self.settings.cookie_name), True

    async def principal(
        self,
        request: Request,
        *,
        form: dict[str, Any] | None = None,
        allow_password_change: bool = False,
    ) -> Principal:
        """The authenticated principal, with CSRF and first-password checks done."""
        cached = getattr(request.state, "principal", None)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        token, from_cookie = self.session_token(request)
        principal = await self.auth.authenticate(token)
        if principal is None:
            raise Unauthorized("log in first")
        if from_cookie and request.method in UNSAFE_METHODS:
            sent = request.headers.get("x-csrf-token") or (form or {}).get("csrf_token") or ""
            if not isinstance(sent, str) or not same_token(sent, principal.csrf_token):
                raise Forbidden("missing or wrong CSRF token; reload the page")
        if principal.must_change_password and not (
            allow_password_change or request.url.path in PASSWORD_CHANGE_ALLOWED
        ):
            raise Forbidden("change your password first")
        request.state.principal = principal
        return principal

    async def scope(self, principal: Principal) -> Scope:
        return await self.cases.scope(principal)


def get_portal(request: Request) -> Portal:
    """The portal of the app serving ``request``."""
    return request.app.state.portal  # type: ignore[no-any-return]


async def audit(
    portal: Portal, principal: Principal | str, action: str, subject: str, **details: Any
) -> None:
    """Write one ledger event in its own transaction."""
    actor = principal if isinstance(principal, str) else principal.login
    await record_event(portal.db, actor, action, subject, details)
