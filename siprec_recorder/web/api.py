"""The JSON API under ``/api``; its OpenAPI description is served at ``/openapi.json``."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from siprec_recorder.services.audit import AuditQuery, audit_trail
from siprec_recorder.services.auth import LoginOutcome, Principal
from siprec_recorder.services.cases import NewLabel
from siprec_recorder.services.errors import Forbidden
from siprec_recorder.services.recordings import SearchQuery, StoredAudio

from .media import plan_range, range_response, range_response_bytes
from .portal import Portal, audit, get_portal
from .schemas import (
    AccessIn,
    CaseIn,
    DecisionIn,
    HoldIn,
    IsoTime,
    LabelIn,
    LabelRef,
    LoginIn,
    PasswordIn,
    ReleaseIn,
    RequestIn,
    SecondPersonIn,
)

__all__ = ["router", "set_session_cookie"]

router = APIRouter(prefix="/api")
PortalDep = Annotated[Portal, Depends(get_portal)]
PathId = Annotated[int, Path(ge=1, le=2**31 - 1)]


async def principal(request: Request, portal: PortalDep) -> Principal:
    return await portal.principal(request)


Me = Annotated[Principal, Depends(principal)]


def set_session_cookie(portal: Portal, response: Response, outcome: LoginOutcome) -> None:
    """Put the session token into a secure, HttpOnly, SameSite=Strict cookie."""
    response.set_cookie(
        portal.settings.cookie_name,
        outcome.token,
        httponly=True,
        samesite="strict",
        secure=portal.settings.secure_cookies,
        path="/",
    )  # a browser-session cookie: the server ends idle sessions after ``session_ttl``


def _login_json(outcome: LoginOutcome) -> dict[str, Any]:
    if outcome.kind == "second_person":
        return {"status": "second_person", "pending_token": outcome.token, "login": outcome.login}
    return {
        "status": "ok",
        "login": outcome.login,
        "token": outcome.token,
        "csrf_token": outcome.csrf_token,
        "must_change_password": outcome.must_change_password,
    }


# -- accounts ----------------------------------------------------------------------------


def _source(request: Request) -> str:
    return request.client.host if request.client else "-"


@router.post("/auth/login", tags=["auth"])
async def login(body: LoginIn, request: Request, portal: PortalDep) -> JSONResponse:
    """Log in; a four-eyes account gets ``second_person`` and a ``pending_token``.

    Only a JSON body is accepted, which a page of another site cannot send without a CORS
    preflight that this API never grants: no login CSRF through the API."""
    outcome = await portal.auth.login(body.login, body.password, body.otp, source=_source(request))
    response = JSONResponse(_login_json(outcome))
    if outcome.kind == "session":
        set_session_cookie(portal, response, outcome)
    return response


@router.post("/auth/second-person", tags=["auth"])
async def second_person(body: SecondPersonIn, request: Request, portal: PortalDep) -> JSONResponse:
    """A different account, of a role allowed to confirm, confirms a four-eyes login."""
    outcome = await portal.auth.confirm_second_person(
        body.pending_token, body.login, body.password, body.otp, source=_source(request)
    )
    response = JSONResponse(_login_json(outcome))
    set_session_cookie(portal, response, outcome)
    return response


@router.post("/auth/logout", tags=["auth"])
async def logout(request: Request, portal: PortalDep) -> JSONResponse:
    me = await portal.principal(request, allow_password_change=True)
    await portal.auth.logout(me)
    response = JSONResponse({"status": "logged out"})
    response.delete_cookie(portal.settings.cookie_name, path="/")
    return response


@router.get("/auth/me", tags=["auth"])
async def whoami(request: Request, portal: PortalDep) -> dict[str, Any]:
    me = await portal.principal(request, allow_password_change=True)
    return {
        "login": me.login,
        "name": me.name,
        "role": me.role,
        "must_change_password": me.must_change_password,
        "csrf_token": me.csrf_token,
    }


@router.post("/auth/password", tags=["auth"])
async def change_password(body: PasswordIn, request: Request, portal: PortalDep) -> dict[str, str]:
    me = await portal.principal(request, allow_password_change=True)
    await portal.auth.change_password(me, body.current, body.new)
    return {"status": "password changed"}


# -- recordings --------------------------------------------------------------------------


@router.get("/recordings", tags=["recordings"])
async def search(
    me: Me,
    portal: PortalDep,
    since: IsoTime | None = None,
    until: IsoTime | None = None,
    number: Annotated[str | None, Query(max_length=100)] = None,
    user: Annotated[str | None, Query(max_length=255)] = None,
    direction: Literal["in", "out", "unknown"] | None = None,
    min_duration: Annotated[float | None, Query(ge=0, le=1e7)] = None,
    max_duration: Annotated[float | None, Query(ge=0, le=1e7)] = None,
    case_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    label_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    state: Literal["recording", "complete", "interrupted", "failed", "declined"] | None = None,
    sort: Literal["start", "duration", "direction", "number", "other", "state"] = "start",
    order: Literal["asc", "desc"] = "desc",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=500)] = 50,
    text: Annotated[str | None, Query(max_length=500)] = None,
) -> dict[str, Any]:
    """Search recordings visible to the caller; ``total`` counts every match. ``text``:
    words said in the call (see ``/api/transcripts/search`` for the hits)."""
    f = SearchQuery(
        since=since,
        until=until,
        number=number or None,
        user=user or None,
        direction=direction,
        min_duration=min_duration,
        max_duration=max_duration,
        case_id=case_id,
        label_id=label_id,
        state=state,
        sort=sort,
        order=order,
        page=page,
        page_size=min(page_size, portal.settings.max_page_size),
        text=text or None,
    )
    scope = await portal.scope(me)
    result = await portal.recordings.search(scope, f, portal.settings.max_page_size)
    filters = {
        k: (v.isoformat() if isinstance(v, datetime) else v)
        for k, v in asdict(f).items()
        if v is not None
    }
    await audit(portal, me, "web.search", "recordings", filters=filters, total=result["total"])
    return result


async def _recording(
    portal: Portal, me: Principal, recording_id: str, right: str
) -> dict[str, Any]:
    scope = await portal.scope(me)
    try:
        doc = await portal.recordings.get(scope, recording_id)
    except Forbidden:
        await audit(portal, me, "web.access_denied", f"recording:{recording_id}", right=right)
        raise
    if right == "play" and not doc["can_play"]:
        await audit(portal, me, "web.access_denied", f"recording:{recording_id}", right=right)
        raise Forbidden("you may not play this recording")
    if right == "download" and not doc["can_download"]:
        await audit(portal, me, "web.access_denied", f"recording:{recording_id}", right=right)
        raise Forbidden("only admins download recordings")
    return doc


@router.get("/recordings/{recording_id}", tags=["recordings"])
async def recording(recording_id: str, me: Me, portal: PortalDep) -> dict[str, Any]:
    doc = await _recording(portal, me, recording_id, "list")
    await audit(portal, me, "web.recording_viewed", f"recording:{recording_id}")
    return doc


@router.get(
    "/recordings/{recording_id}/audio",
    tags=["recordings"],
    responses={200: {"content": {"audio/mpeg": {}}}, 206: {"description": "Partial Content"}},
)
async def play(recording_id: str, request: Request, me: Me, portal: PortalDep) -> Response:
    """Pieces of the MP3 for the in-page player (``206``, bounded size, whatever the
    ``Range`` header says); every answer is audited before a byte leaves."""
    doc = await _recording(portal, me, recording_id, "play")
    audio = await portal.recordings.audio(doc, portal.settings.keyring)
    rng = request.headers.get("range")
    size = (
        len(audio)
        if isinstance(audio, bytes)
        else audio.size
        if isinstance(audio, StoredAudio)
        else audio.stat().st_size
    )
    plan = plan_range(rng, size, portal.settings.stream_max_bytes)
    await audit(
        portal,
        me,
        "web.recording_played",
        f"recording:{recording_id}",
        range=(rng or "")[:200],
        status=plan.status,
        first=plan.first,
        bytes=plan.length,
        size=size,
    )
    if isinstance(audio, bytes):
        return range_response_bytes(audio, plan)
    return range_response(audio, plan)


@router.get("/recordings/{recording_id}/waveform", tags=["recordings"])
async def waveform(recording_id: str, me: Me, portal: PortalDep) -> dict[str, Any]:
    """Peaks of the call (one list per channel, 0..100) for the player's drawing."""
    doc = await _recording(portal, me, recording_id, "play")
    return portal.recordings.waveform(doc)


@router.get(
    "/recordings/{recording_id}/download",
    tags=["recordings"],
    responses={200: {"content": {"audio/mpeg": {}}}},
)
async def download(recording_id: str, request: Request, me: Me, portal: PortalDep) -> Response:
    """The MP3 as an attachment; admins only; audited."""
    doc = await _recording(portal, me, recording_id, "download")
    audio = await portal.recordings.audio(doc, portal.settings.keyring)
    await audit(
        portal,
        me,
        "web.recording_downloaded",
        f"recording:{recording_id}",
        sha256=doc.get("sha256"),
    )
    name = f"recording-{doc['id']}.mp3"
    if isinstance(audio, bytes):
        return range_response_bytes(audio, None, download_name=name)
    return range_response(audio, None, download_name=name)


@router.post("/recordings/{recording_id}/labels", tags=["recordings"])
async def add_label(recording_id: str, body: LabelRef, me: Me, portal: PortalDep) -> dict[str, Any]:
    await _recording(portal, me, recording_id, "list")
    await portal.cases.add_label(me, recording_id, body.label_id)
    return await portal.recordings.get(await portal.scope(me), recording_id)


@router.delete("/recordings/{recording_id}/labels/{label_id}", tags=["recordings"])
async def remove_label(
    recording_id: str, label_id: PathId, me: Me, portal: PortalDep
) -> dict[str, str]:
    await _recording(portal, me, recording_id, "list")
    await portal.cases.remove_label(me, recording_id, label_id)
    return {"status": "removed"}


@router.post("/recordings/{recording_id}/hold", tags=["recordings"])
async def hold_recording(
    recording_id: str, body: HoldIn, me: Me, portal: PortalDep
) -> dict[str, Any]:
    """Put a recording on legal hold (and its objects, in an object store); admins only."""
    return await portal.cases.hold_recording(me, recording_id, held=True, reason=body.reason)


@router.post("/recordings/{recording_id}/release", tags=["recordings"])
async def release_recording(
    recording_id: str, body: ReleaseIn, me: Me, portal: PortalDep
) -> dict[str, Any]:
    """Release a recording's legal hold; admins only."""
    return await portal.cases.hold_recording(me, recording_id, held=False, reason=body.reason)


# -- labels and cases --------------------------------------------------------------------


@router.get("/labels", tags=["cases"])
async def labels(me: Me, portal: PortalDep) -> list[dict[str, Any]]:
    return await portal.cases.labels()


@router.post("/labels", tags=["cases"], status_code=201)
async def create_label(body: LabelIn, me: Me, portal: PortalDep) -> dict[str, Any]:
    return await portal.cases.create_label(me, NewLabel(body.title, body.colour))


@router.get("/cases", tags=["cases"])
async def cases(me: Me, portal: PortalDep) -> list[dict[str, Any]]:
    return await portal.cases.cases(me)


@router.post("/cases", tags=["cases"], status_code=201)
async def create_case(body: CaseIn, me: Me, portal: PortalDep) -> dict[str, Any]:
    new = NewLabel(body.new_label.title, body.new_label.colour) if body.new_label else None
    return await portal.cases.create_case(
        me,
        title=body.title,
        description=body.description,
        label_id=body.label_id,
        new_label=new,
        list_access=body.list_access,
        play_access=body.play_access,
        label_access=body.label_access,
    )


@router.get("/cases/{case_id}", tags=["cases"])
async def case(case_id: PathId, me: Me, portal: PortalDep) -> dict[str, Any]:
    return await portal.cases.case(me, case_id)


@router.patch("/cases/{case_id}/access", tags=["cases"])
async def case_access(case_id: PathId, body: AccessIn, me: Me, portal: PortalDep) -> dict[str, Any]:
    changes = {k.removesuffix("_access"): v for k, v in body.model_dump().items() if v}
    return await portal.cases.set_case_access(me, case_id, **changes)


@router.post("/cases/{case_id}/hold", tags=["cases"])
async def hold_case(case_id: PathId, body: HoldIn, me: Me, portal: PortalDep) -> dict[str, Any]:
    """Put every recording of a case on legal hold; admins only."""
    return await portal.cases.hold_case(me, case_id, held=True, reason=body.reason)


@router.post("/cases/{case_id}/release", tags=["cases"])
async def release_case(
    case_id: PathId, body: ReleaseIn, me: Me, portal: PortalDep
) -> dict[str, Any]:
    """Release the legal hold of every recording of a case; admins only."""
    return await portal.cases.hold_case(me, case_id, held=False, reason=body.reason)


# -- access requests ---------------------------------------------------------------------


@router.get("/requests", tags=["requests"])
async def requests(
    me: Me, portal: PortalDep, which: Literal["mine", "pending", "all"] = "mine"
) -> list[dict[str, Any]]:
    return await portal.cases.requests(me, which)


@router.post("/requests", tags=["requests"], status_code=201)
async def request_access(body: RequestIn, me: Me, portal: PortalDep) -> dict[str, Any]:
    return await portal.cases.request_access(
        me,
        case_id=body.case_id,
        reason=body.reason,
        rights=list(body.rights),
        expires_at=body.expires_at,
    )


@router.get("/requests/{request_id}", tags=["requests"])
async def access_request(request_id: PathId, me: Me, portal: PortalDep) -> dict[str, Any]:
    return await portal.cases.request(me, request_id)


@router.post("/requests/{request_id}/approve", tags=["requests"])
async def approve(
    request_id: PathId, body: DecisionIn, me: Me, portal: PortalDep
) -> dict[str, Any]:
    return await portal.cases.approve(me, request_id, body.note, body.expires_at)


@router.post("/requests/{request_id}/reject", tags=["requests"])
async def reject(request_id: PathId, body: DecisionIn, me: Me, portal: PortalDep) -> dict[str, Any]:
    return await portal.cases.reject(me, request_id, body.note)


@router.post("/requests/{request_id}/revoke", tags=["requests"])
async def revoke(request_id: PathId, body: DecisionIn, me: Me, portal: PortalDep) -> dict[str, Any]:
    return await portal.cases.revoke(me, request_id, body.note)


# -- users -------------------------------------------------------------------------------


@router.get("/users", tags=["users"])
async def users(me: Me, portal: PortalDep) -> list[dict[str, Any]]:
    """The portal's accounts (admins, auditors); manage them with ``siprec-recorder users``."""
    from siprec_recorder.services.users import list_users

    if not me.reads_all:
        raise Forbidden("only admins and auditors see the accounts")
    return await list_users(portal.db)


# -- audit trail -------------------------------------------------------------------------


@router.get("/audit", tags=["audit"])
async def audit_events(
    me: Me,
    portal: PortalDep,
    actor: Annotated[str | None, Query(max_length=255)] = None,
    action: Annotated[str | None, Query(max_length=128)] = None,
    subject: Annotated[str | None, Query(max_length=255)] = None,
    since: IsoTime | None = None,
    until: IsoTime | None = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Ledger events (admins, auditors), newest first, with the hash chain's status."""
    return await audit_trail(
        portal.db, me, AuditQuery(actor, action, subject, since, until, page, page_size)
    )
