"""Server-rendered pages: forms that post back and redirect (post/redirect/get).

Every form carries the session's CSRF token; every page that needs an account redirects to
``/login`` without one, and to ``/password`` while the first password has not been changed.
Little JavaScript: one small script confirms destructive buttons; the player is the
browser's own ``<audio>`` element fed by range requests.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import asdict
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from siprec_recorder.services.audit import AuditQuery, audit_trail
from siprec_recorder.services.auth import LoginOutcome, Principal
from siprec_recorder.services.cases import NewLabel
from siprec_recorder.services.errors import BadRequest, Forbidden, Redirect, WebError
from siprec_recorder.services.models import RIGHTS, SETTING_VALUES
from siprec_recorder.services.recordings import SORT_COLUMNS, SearchQuery
from siprec_recorder.services.security import as_utc, new_token, same_token, user_time

from .api import PathId, set_session_cookie
from .portal import audit, get_portal

__all__ = ["error_page", "render", "router", "templates"]

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
PENDING_COOKIE = "siprec_pending"


# The zone of the browser being answered (from its ``tz`` cookie, which app.js sets from
# ``Intl.DateTimeFormat``): times are shown in it with the zone marked, and times typed in
# forms are read in it.
_ZONE: ContextVar[tzinfo] = ContextVar("portal_zone", default=UTC)
TZ_COOKIE = "tz"


def user_zone(request: Request) -> tzinfo:
    """The browser's time zone, UTC when unknown or not a zone name."""
    name = unquote(request.cookies.get(TZ_COOKIE, "")[:100])[:64]
    if not name or name.startswith(("/", ".")) or ".." in name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def _fmt_time(value: str | datetime | None) -> str:
    if not value:
        return ""
    dt = datetime.fromisoformat(value) if isinstance(value, str) else value
    return as_utc(dt).astimezone(_ZONE.get()).strftime("%Y-%m-%d %H:%M:%S %Z")


def _fmt_duration(value: float | None) -> str:
    if value is None:
        return ""
    s = int(round(value))
    if s >= 3600:
        return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


def _until_date(value: str | datetime | None) -> str:
    """The last day an expiry covers (an expiry is the midnight that ends that day)."""
    if not value:
        return ""
    dt = datetime.fromisoformat(value) if isinstance(value, str) else value
    return (as_utc(dt) - timedelta(seconds=1)).strftime("%Y-%m-%d")


def _until(value: str | datetime | None) -> str:
    if not value:
        return ""
    dt = datetime.fromisoformat(value) if isinstance(value, str) else value
    return (as_utc(dt) - timedelta(seconds=1)).strftime("%Y-%m-%d %H:%M")


templates.env.filters["t"] = _fmt_time
templates.env.filters["until"] = _until
templates.env.filters["until_date"] = _until_date
templates.env.filters["dur"] = _fmt_duration


# The only texts a green banner can show: ``?msg=`` names one of them (with ``n``, a number,
# for those that mention one), so that no link can make the portal say something.
MESSAGES: dict[str, str] = {
    "password-changed": "password changed",
    "label-added": "label added",
    "label-removed": "label removed",
    "labels-added": "label added to {n} recordings",
    "labels-removed": "label removed from {n} recordings",
    "case-created": "case created",
    "access-settings-saved": "access settings saved",
    "request-sent": "request sent",
    "request-approved": "request {n} approved",
    "request-rejected": "request {n} rejected",
    "request-revoked": "request {n} revoked",
    "schedule-saved": "schedule saved",
    "settings-saved": "settings saved",
    "template-saved": "template saved",
    "profile-saved": "settings saved",
}


def message_key(text: str) -> str:
    """The key of a message of the table (``"label added"`` -> ``"label-added"``)."""
    return "-".join(text.lower().split())


def _flash(request: Request) -> str:
    text = MESSAGES.get(request.query_params.get("msg", ""), "")
    n = request.query_params.get("n", "")
    if "{n}" in text:
        return text.replace("{n}", n) if n.isdigit() and len(n) <= 9 else ""
    return text


def render(request: Request, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    """Render template ``name`` with the principal, CSRF token and flash message."""
    me: Principal | None = getattr(request.state, "principal", None)
    zone = user_zone(request)
    _ZONE.set(zone)
    ctx.setdefault("zone", getattr(zone, "key", "UTC"))
    ctx.setdefault("me", me)
    ctx.setdefault("csrf", me.csrf_token if me else "")
    ctx.setdefault("msg", _flash(request))
    ctx.setdefault("error", "")
    ctx["has_policy"] = get_portal(request).policy is not None
    return templates.TemplateResponse(request, name, ctx, status_code=status)


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    return render(request, "error.html", status=status, status_code=status, message=message)


def _back(path: str, msg: str = "", n: int | None = None) -> RedirectResponse:
    """Post/redirect/get to ``path`` with the banner ``msg`` (a key or text of MESSAGES)."""
    query = {"msg": message_key(msg)} if msg else {}
    if n is not None:
        query["n"] = str(n)
    return RedirectResponse(path + ("?" + urlencode(query) if query else ""), status_code=303)


async def _form(request: Request) -> dict[str, Any]:
    form = await request.form()
    out: dict[str, Any] = {}
    for key in form:
        values = [v for v in form.getlist(key) if isinstance(v, str)]
        many = len(values) > 1 or key.endswith("[]")
        out[key] = values if many else (values[0] if values else "")
    return out


async def _me(request: Request, form: dict[str, Any] | None = None) -> Principal:
    portal = get_portal(request)
    try:
        return await portal.principal(request, form=form)
    except Forbidden as exc:
        if "password" in exc.message:
            raise Redirect("/password") from None
        raise


def _parse_dt(
    value: str, what: str, *, end_of_day: bool = False, zone: tzinfo = UTC
) -> datetime | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{what}: not a date and time: {value!r}") from None
    plus = timedelta(days=1) if len(value) == 10 and end_of_day else None
    return user_time(dt, what, plus=plus, zone=zone)


def _int(value: str, what: str) -> int | None:
    value = (value or "").strip()
    if not value:
        return None
    if not value.isdigit() or len(value) > 9:
        raise BadRequest(f"{what}: not a number: {value!r}")
    return int(value)


def _float(value: str, what: str) -> float | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        f = float(value)
    except ValueError:
        raise BadRequest(f"{what}: not a number: {value!r}") from None
    if not 0 <= f <= 1e7:
        raise BadRequest(f"{what}: out of range")
    return f


# -- login ---------------------------------------------------------------------------------


LOGIN_CSRF_COOKIE = "siprec_login_csrf"


def _login_form(request: Request, name: str, status: int = 200, **ctx: Any) -> Response:
    """A login form with a fresh pre-session CSRF token, in the form and in a SameSite=Strict
    cookie: a page of another site can neither read the token nor send the cookie, so it
    cannot log the browser in to an account of its choosing (login CSRF)."""
    portal = get_portal(request)
    token = new_token()
    response = render(request, name, status=status, login_csrf=token, **ctx)
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=portal.settings.secure_cookies,
        path="/login",
    )
    return response


def _login_csrf_ok(request: Request, form: dict[str, Any]) -> bool:
    sent = form.get("login_csrf", "")
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    return isinstance(sent, str) and bool(cookie) and same_token(sent, cookie)


def client_source(request: Request) -> str:
    """The address a request comes from, for the login throttles."""
    return request.client.host if request.client else "-"


@router.get("/login")
async def login_page(request: Request) -> Response:
    return _login_form(request, "login.html")


def _after_login(request: Request, outcome: LoginOutcome) -> Response:
    portal = get_portal(request)
    if outcome.kind == "second_person":
        response: Response = RedirectResponse("/login/second", status_code=303)
        response.set_cookie(
            PENDING_COOKIE,
            outcome.token,
            httponly=True,
            samesite="strict",
            secure=portal.settings.secure_cookies,
            path="/login",
            max_age=int(portal.settings.four_eyes_window),
        )
        return response
    response = RedirectResponse(
        "/password" if outcome.must_change_password else "/", status_code=303
    )
    set_session_cookie(portal, response, outcome)
    response.delete_cookie(PENDING_COOKIE, path="/login")
    return response


@router.post("/login")
async def login_submit(request: Request) -> Response:
    form = await _form(request)
    portal = get_portal(request)
    if not _login_csrf_ok(request, form):
        await audit(portal, "-", "web.login_csrf_refused", "login", source=client_source(request))
        return _login_form(
            request, "login.html", status=403, error="the login form expired; log in again"
        )
    try:
        outcome = await portal.auth.login(
            str(form.get("login", ""))[:255],
            str(form.get("password", ""))[:1024],
            str(form.get("otp", ""))[:16],
            source=client_source(request),
        )
    except WebError as exc:
        return _login_form(
            request,
            "login.html",
            status=401,
            error=exc.message,
            login=str(form.get("login", ""))[:255],
        )
    return _after_login(request, outcome)


@router.get("/login/second")
async def second_page(request: Request) -> Response:
    portal = get_portal(request)
    first = await portal.auth.pending_login(request.cookies.get(PENDING_COOKIE, ""))
    if first is None:
        return _login_form(
            request,
            "login.html",
            status=401,
            error="the login waiting for a second person has expired; start again",
        )
    return _login_form(request, "second.html", first=first)


@router.post("/login/second")
async def second_submit(request: Request) -> Response:
    form = await _form(request)
    portal = get_portal(request)
    token = request.cookies.get(PENDING_COOKIE, "")
    first = await portal.auth.pending_login(token)
    if not _login_csrf_ok(request, form):
        return _login_form(
            request, "login.html", status=403, error="the login form expired; log in again"
        )
    try:
        outcome = await portal.auth.confirm_second_person(
            token,
            str(form.get("login", ""))[:255],
            str(form.get("password", ""))[:1024],
            str(form.get("otp", ""))[:16],
            source=client_source(request),
        )
    except WebError as exc:
        if first is None:
            return _login_form(request, "login.html", status=401, error=exc.message)
        return _login_form(request, "second.html", status=401, error=exc.message, first=first)
    return _after_login(request, outcome)


@router.get("/password")
async def password_page(request: Request) -> Response:
    portal = get_portal(request)
    await portal.principal(request, allow_password_change=True)
    return render(request, "password.html")


@router.post("/password")
async def password_submit(request: Request) -> Response:
    form = await _form(request)
    portal = get_portal(request)
    me = await portal.principal(request, form=form, allow_password_change=True)
    new = str(form.get("new", ""))[:1024]
    if new != str(form.get("confirm", ""))[:1024]:
        return render(request, "password.html", status=400, error="the two new passwords differ")
    try:
        await portal.auth.change_password(me, str(form.get("current", ""))[:1024], new)
    except WebError as exc:
        return render(request, "password.html", status=exc.status, error=exc.message)
    return _back("/", "password changed")


@router.post("/logout")
async def logout_submit(request: Request) -> Response:
    form = await _form(request)
    portal = get_portal(request)
    me = await portal.principal(request, form=form, allow_password_change=True)
    await portal.auth.logout(me)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(portal.settings.cookie_name, path="/")
    return response


# -- search and recordings -----------------------------------------------------------------


@router.get("/")
async def search_page(request: Request) -> Response:
    portal = get_portal(request)
    me = await _me(request)
    qp = request.query_params
    error, status = "", 200
    result: dict[str, Any] | None = None
    f = SearchQuery(page_size=portal.settings.page_size)
    try:
        direction = qp.get("direction") or None
        state = qp.get("state") or None
        f = SearchQuery(
            since=_parse_dt(qp.get("since", ""), "from", zone=user_zone(request)),
            until=_parse_dt(qp.get("until", ""), "to", end_of_day=True, zone=user_zone(request)),
            number=(qp.get("number") or "").strip()[:100] or None,
            user=(qp.get("user") or "").strip()[:255] or None,
            direction=direction,
            min_duration=_float(qp.get("min_duration", ""), "min. duration"),
            max_duration=_float(qp.get("max_duration", ""), "max. duration"),
            case_id=_int(qp.get("case_id", ""), "case"),
            label_id=_int(qp.get("label_id", ""), "label"),
            state=state,
            sort=qp.get("sort") or "start",
            order=qp.get("order") or "desc",
            page=_int(qp.get("page", ""), "page") or 1,
            page_size=_int(qp.get("page_size", ""), "page size") or portal.settings.page_size,
            text=(qp.get("text") or "").strip()[:500] or None,
        )
        scope = await portal.scope(me)
        result = await portal.recordings.search(scope, f, portal.settings.max_page_size)
        filters = {
            k: (v.isoformat() if isinstance(v, datetime) else v)
            for k, v in asdict(f).items()
            if v is not None
        }
        await audit(portal, me, "web.search", "recordings", filters=filters, total=result["total"])
    except WebError as exc:
        if exc.status in (401, 403):
            raise
        error, status = exc.message, exc.status
    keep = {k: v for k, v in qp.items() if k not in ("sort", "order", "page", "msg", "n") and v}

    def link(**changes: Any) -> str:
        params = {**keep, "sort": f.sort, "order": f.order, "page": f.page, **changes}
        return "/?" + urlencode(params)

    return render(
        request,
        "search.html",
        status=status,
        error=error,
        result=result,
        q=qp,
        f=f,
        link=link,
        sort_columns=list(SORT_COLUMNS),
        cases=await portal.cases.cases(me),
        labels=await portal.cases.labels(),
        usable_labels=_usable_labels(me, await portal.scope(me), await portal.cases.labels()),
        back="/?" + urlencode(keep | {"sort": f.sort, "order": f.order, "page": f.page}),
    )


@router.get("/recordings/{recording_id}")
async def recording_page(recording_id: str, request: Request) -> Response:
    portal = get_portal(request)
    me = await _me(request)
    scope = await portal.scope(me)
    try:
        doc = await portal.recordings.get(scope, recording_id)
    except Forbidden:
        await audit(portal, me, "web.access_denied", f"recording:{recording_id}", right="list")
        raise
    await audit(portal, me, "web.recording_viewed", f"recording:{recording_id}")
    usable = _usable_labels(me, scope, await portal.cases.labels())
    return render(
        request,
        "recording.html",
        rec=doc,
        usable_labels=usable,
        usable_ids={lb["id"] for lb in usable},
    )


def _usable_labels(me: Principal, scope: Any, labels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The labels ``me`` may put on or take off recordings."""
    if me.is_auditor:
        return []
    return [
        lb
        for lb in labels
        if (lb["case_id"] is None and me.is_admin)
        or (lb["case_id"] is not None and scope.case_right(lb["case_id"], "label"))
    ]


@router.post("/labels/bulk")
async def bulk_labels(request: Request) -> Response:
    """Put a label on (or take it off) every recording ticked in a search result."""
    form = await _form(request)
    portal = get_portal(request)
    me = await _me(request, form)
    label_id = _int(str(form.get("label_id", "")), "label")
    if label_id is None:
        raise BadRequest("choose a label")
    ids = form.get("ids", [])
    ids = [ids] if isinstance(ids, str) else list(ids)
    if not ids:
        raise BadRequest("tick at least one recording")
    if len(ids) > portal.settings.max_page_size:
        raise BadRequest(f"at most {portal.settings.max_page_size} recordings at once")
    action = str(form.get("action", "add"))
    if action not in ("add", "remove"):
        raise BadRequest("unknown action")
    scope = await portal.scope(me)
    for rec_id in ids:
        await portal.recordings.get(scope, str(rec_id)[:64])  # 403/404 before any change
    wanted = [str(rec_id)[:64] for rec_id in ids]
    if action == "add":
        await portal.cases.add_labels(me, wanted, label_id)
    else:
        await portal.cases.remove_labels(me, wanted, label_id)
    back = str(form.get("back", "/"))
    if not back.startswith("/?") and back != "/":
        back = "/"
    sep = "&" if "?" in back else "?"
    key = "labels-added" if action == "add" else "labels-removed"
    return RedirectResponse(
        f"{back}{sep}" + urlencode({"msg": key, "n": len(ids)}), status_code=303
    )


@router.post("/recordings/{recording_id}/labels")
async def recording_add_label(recording_id: str, request: Request) -> Response:
    form = await _form(request)
    portal = get_portal(request)
    me = await _me(request, form)
    label_id = _int(str(form.get("label_id", "")), "label")
    if label_id is None:
        raise BadRequest("choose a label")
    await portal.recordings.get(await portal.scope(me), recording_id)
    await portal.cases.add_label(me, recording_id, label_id)
    return _back(f"/recordings/{quote(recording_id)}", "label added")


@router.post("/recordings/{recording_id}/labels/{label_id}/remove")
async def recording_remove_label(recording_id: str, label_id: PathId, request: Request) -> Response:
    form = await _form(request)
    portal = get_portal(request)
    me = await _me(request, form)
    await portal.recordings.get(await portal.scope(me), recording_id)
    await portal.cases.remove_label(me, recording_id, label_id)
    return _back(f"/recordings/{quote(recording_id)}", "label removed")


# -- cases ---------------------------------------------------------------------------------


@router.get("/cases")
async def cases_page(request: Request) -> Response:
    portal = get_portal(request)
    me = await _me(request)
    return render(
        request,
        "cases.html",
        cases=await portal.cases.cases(me),
        labels=await portal.cases.labels(),
        settings_values=SETTING_VALUES,
    )


@router.post("/cases")
async def cases_create(request: Request) -> Response:
    form = await _form(request)
    portal = get_portal(request)
    me = await _me(request, form)
    choice = str(form.get("label_choice", "new"))
    try:
        doc = await portal.cases.create_case(
            me,
            title=str(form.get("title", ""))[:300],
            description=str(form.get("description", ""))[:4000],
            label_id=_int(str(form.get("label_id", "")), "label") if choice == "existing" else None,
            new_label=NewLabel(
                str(form.get("label_title", ""))[:100], str(form.get("label_colour", ""))[:20]
            )
            if choice != "existing"
            else None,
            list_access=str(form.get("list_access", "admins")),
            play_access=str(form.get("play_access", "admins")),
            label_access=str(form.get("label_access", "owner")),
        )
    except WebError as exc:
        if exc.status in (401, 403):
            raise
        return render(
            request,
            "cases.html",
            status=exc.status,
            error=exc.message,
            cases=await portal.cases.cases(me),
            labels=await portal.cases.labels(),
            settings_values=SETTING_VALUES,
            form=form,
        )
    return _back(f"/cases/{doc['id']}", "case created")


@router.get("/cases/{case_id}")
async def case_page(case_id: PathId, request: Request) -> Response:
    portal = get_portal(request)
    me = await _me(request)
    case = await portal.cases.case(me, case_id)
    result = None
    page = _int(request.query_params.get("page", ""), "page") or 1
    if "list" in case["my_rights"]:
        scope = await portal.scope(me)
        result = await portal.recordings.search(
            scope,
            SearchQuery(case_id=case_id, page=page, page_size=portal.settings.page_size),
            portal.settings.max_page_size,
        )
    mine = [r for r in await portal.cases.requests(me, "mine") if r["case_id"] == case_id]
    default_expiry = (as_utc(portal.settings.clock()) + timedelta(days=30)).strftime("%Y-%m-%d")
    return render(
        request,
        "case.html",
        case=case,
        result=result,
        rights=RIGHTS,
        settings_values=SETTING_VALUES,
        my_requests=mine,
        default_expiry=default_expiry,
        link=lambda page: f"/cases/{case_id}?" + urlencode({"page": page}),
    )


@router.post("/cases/{case_id}/access")
async def case_access_submit(case_id: PathId, request: Request) -> Response:
    form = await _form(request)
    portal = get_portal(request)
    me = await _me(request, form)
    await portal.cases.set_case_access(
        me,
        case_id,
        **{r: str(form.get(f"{r}_access", "")) for r in RIGHTS if form.get(f"{r}_access")},
    )
    return _back(f"/cases/{case_id}", "access settings saved")


# -- access requests -----------------------------------------------------------------------


@router.get("/requests")
async def requests_page(request: Request) -> Response:
    portal = get_portal(request)
    me = await _me(request)
    pending = await portal.cases.requests(me, "pending") if me.reads_all else []
    default_expiry = (as_utc(portal.settings.clock()) + timedelta(days=30)).strftime("%Y-%m-%d")
    return render(
        request,
        "requests.html",
        mine=await portal.cases.requests(me, "mine"),
        pending=pending,
        cases=await portal.cases.cases(me),
        rights=RIGHTS,
        default_expiry=default_expiry,
    )


@router.get("/requests/all")
async def requests_all_page(request: Request) -> Response:
    portal = get_portal(request)
    me = await _me(request)
    return render(request, "requests_all.html", requests=await portal.cases.requests(me, "all"))


@router.post("/requests")
async def requests_create(request: Request) -> Response:
    form = await _form(request)
    portal = get_portal(request)
    me = await _me(request, form)
    rights = form.get("rights", [])
    if isinstance(rights, str):
        rights = [rights]
    case_id = _int(str(form.get("case_id", "")), "case")
    if case_id is None:
        raise BadRequest("choose a case")
    expires = _parse_dt(str(form.get("expires_at", ""))[:40], "expiry date", end_of_day=True)
    if expires is None:
        raise BadRequest("give an expiry date")
    await portal.cases.request_access(
        me, case_id=case_id, reason=str(form.get("reason", "")), rights=rights, expires_at=expires
    )
    return _back("/requests", "request sent")


@router.post("/requests/{request_id}/{action}")
async def requests_decide(request_id: PathId, action: str, request: Request) -> Response:
    form = await _form(request)
    portal = get_portal(request)
    me = await _me(request, form)
    note = str(form.get("note", ""))[:2000]
    if action == "approve":
        expires = _parse_dt(str(form.get("expires_at", ""))[:40], "expiry date", end_of_day=True)
        await portal.cases.approve(me, request_id, note, expires)
    elif action == "reject":
        await portal.cases.reject(me, request_id, note)
    elif action == "revoke":
        await portal.cases.revoke(me, request_id, note)
    else:
        raise BadRequest("unknown action")
    back = str(form.get("back", "/requests"))
    done = {"approve": "approved", "reject": "rejected", "revoke": "revoked"}[action]
    return _back(
        back if back in ("/requests", "/requests/all") else "/requests",
        f"request-{done}",
        n=request_id,
    )


# -- audit trail ---------------------------------------------------------------------------


@router.get("/audit")
async def audit_page(request: Request) -> Response:
    portal = get_portal(request)
    me = await _me(request)
    qp = request.query_params
    error, status = "", 200
    trail = None
    try:
        trail = await audit_trail(
            portal.db,
            me,
            AuditQuery(
                actor=(qp.get("actor") or "")[:255] or None,
                action=(qp.get("action") or "")[:128] or None,
                subject=(qp.get("subject") or "")[:255] or None,
                since=_parse_dt(qp.get("since", ""), "from", zone=user_zone(request)),
                until=_parse_dt(
                    qp.get("until", ""), "to", end_of_day=True, zone=user_zone(request)
                ),
                page=_int(qp.get("page", ""), "page") or 1,
                page_size=100,
            ),
        )
    except Forbidden:
        raise
    except WebError as exc:
        error, status = exc.message, exc.status
    keep = {k: v for k, v in qp.items() if k not in ("page", "msg", "n") and v}
    return render(
        request,
        "audit.html",
        status=status,
        trail=trail,
        q=qp,
        error=error,
        link=lambda page: "/audit?" + urlencode({**keep, "page": page}),
    )


@router.get("/health", include_in_schema=False)
async def health() -> dict[str, str]:
    return {"status": "ok", "time": datetime.now(UTC).isoformat()}
