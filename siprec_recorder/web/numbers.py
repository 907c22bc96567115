"""Number management: recorded numbers, schedules, templates and bulk upload.

Everything here goes through the policy layer's ``PolicyService`` and its importer; the
portal adds no rule of its own, so the error a fleet manager sees is the policy layer's
message, word for word (``str(error)``; for a refused import, one line per bad row).
Admins change; auditors read; standard users see nothing of it.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from siprec_recorder.policy.errors import CsvImportError, NotFoundError, PolicyError
from siprec_recorder.services.auth import Principal
from siprec_recorder.services.errors import BadRequest, Forbidden, NotFound

from .portal import Portal, get_portal

__all__ = ["api_router", "page_router"]

api_router = APIRouter(prefix="/api", tags=["numbers"])
page_router = APIRouter(include_in_schema=False)
PortalDep = Annotated[Portal, Depends(get_portal)]
SLOT_LINES_MAX = 200


class ScheduleIn(BaseModel):
    template: str | None = Field(default=None, max_length=100)
    slots: list[Annotated[str, Field(max_length=200)]] | None = Field(
        default=None, max_length=SLOT_LINES_MAX
    )


class TemplateIn(BaseModel):
    slots: list[Annotated[str, Field(max_length=200)]] = Field(max_length=SLOT_LINES_MAX)


class NumberChange(BaseModel):
    user: str | None = Field(default=None, max_length=255)
    mode: str | None = Field(default=None, max_length=20)
    status: str | None = Field(default=None, max_length=20)
    managed: bool | None = None
    beep: bool | None = None
    notify: bool | None = None
    self_service: bool | None = None
    active: bool | None = None


def _policy_error(exc: Exception) -> JSONResponse:
    if isinstance(exc, CsvImportError):
        return JSONResponse(
            {
                "detail": exc.message,
                "problems": [
                    {"row": p.row, "column": p.column, "message": p.message} for p in exc.problems
                ],
            },
            status_code=422,
        )
    status = 404 if isinstance(exc, NotFoundError) else 422
    return JSONResponse({"detail": str(exc)}, status_code=status)


async def _reader(request: Request, portal: Portal) -> Principal:
    me = await portal.principal(request)
    if not me.reads_all:
        raise Forbidden("only admins and auditors see number management")
    return me


async def _admin(request: Request, portal: Portal, form: dict[str, Any] | None = None) -> Principal:
    me = await portal.principal(request, form=form)
    if not me.is_admin:
        raise Forbidden("only an admin changes numbers, schedules and templates")
    return me


def _lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.replace("\r", "").split("\n") if ln.strip()]


# -- API -----------------------------------------------------------------------------------


@api_router.get("/numbers")
async def numbers(request: Request, portal: PortalDep) -> list[dict[str, Any]]:
    await _reader(request, portal)
    return [n.to_dict() for n in await portal.policy.list_numbers()]


@api_router.get("/numbers/{number}")
async def number(number: str, request: Request, portal: PortalDep) -> Response:
    await _reader(request, portal)
    try:
        view = await portal.policy.get_number(number[:64])
    except PolicyError as exc:
        return _policy_error(exc)
    return JSONResponse(view.to_dict())


@api_router.patch("/numbers/{number}")
async def change_number(
    number: str, body: NumberChange, request: Request, portal: PortalDep
) -> Response:
    me = await _admin(request, portal)
    try:
        view = await portal.policy.set_number(
            number[:64], actor=me.login, **body.model_dump(exclude_none=True)
        )
    except PolicyError as exc:
        return _policy_error(exc)
    return JSONResponse(view.to_dict())


@api_router.put("/numbers/{number}/schedule")
async def schedule(number: str, body: ScheduleIn, request: Request, portal: PortalDep) -> Response:
    """Give a number a template or its own slots; the whole set is validated at once."""
    me = await _admin(request, portal)
    try:
        view = await portal.policy.set_schedule(
            number[:64], actor=me.login, template=body.template, slots=body.slots
        )
    except PolicyError as exc:
        return _policy_error(exc)
    return JSONResponse(view.to_dict())


@api_router.get("/templates")
async def templates_list(request: Request, portal: PortalDep) -> list[dict[str, Any]]:
    await _reader(request, portal)
    return [t.to_dict() for t in await portal.policy.list_templates()]


@api_router.put("/templates/{name}")
async def template_set(
    name: str, body: TemplateIn, request: Request, portal: PortalDep
) -> Response:
    me = await _admin(request, portal)
    try:
        view = await portal.policy.set_template(name[:100], body.slots, actor=me.login)
    except PolicyError as exc:
        return _policy_error(exc)
    return JSONResponse(view.to_dict())


async def _import(
    portal: Portal, me: Principal, data: bytes, filename: str, dry_run: bool
) -> dict[str, Any]:
    from siprec_recorder.policy.importer import import_numbers

    if len(data) > portal.settings.max_upload_bytes:
        raise BadRequest(f"the file is larger than {portal.settings.max_upload_bytes} bytes")
    result = await import_numbers(
        portal.db,
        data,
        actor=me.login,
        filename=filename[:200],
        dry_run=dry_run,
        country_code=portal.policy.settings.country_code,
        service=portal.policy,
    )
    portal.policy.notify_listeners()
    return result.to_dict()


@api_router.post("/numbers/import")
async def import_file(
    request: Request, portal: PortalDep, file: UploadFile, dry_run: bool = False
) -> Response:
    """Bulk CSV/XLSX upload, all or nothing; a refusal lists every bad row."""
    me = await _admin(request, portal)
    data = await file.read(portal.settings.max_upload_bytes + 1)
    try:
        return JSONResponse(await _import(portal, me, data, file.filename or "", dry_run))
    except (PolicyError, CsvImportError) as exc:
        return _policy_error(exc)


# -- pages ---------------------------------------------------------------------------------


@page_router.get("/numbers")
async def numbers_page(request: Request) -> Response:
    from .pages import render

    portal = get_portal(request)
    await _reader(request, portal)
    return render(
        request, "numbers.html", **_numbers_page(request, await portal.policy.list_numbers())
    )


def _numbers_page(request: Request, numbers: list[Any]) -> dict[str, Any]:
    """One page of the numbers list, with the pager's values."""
    from urllib.parse import urlencode

    size = get_portal(request).settings.page_size
    raw = request.query_params.get("page", "1")
    page = int(raw) if raw.isdigit() and len(raw) <= 9 else 1
    pages = max(1, -(-len(numbers) // size))
    page = min(max(page, 1), pages)
    return {
        "numbers": numbers[(page - 1) * size : page * size],
        "total": len(numbers),
        "page": page,
        "pages": pages,
        "link": lambda page: "/numbers?" + urlencode({"page": page}),
    }


@page_router.post("/numbers/import")
async def numbers_import_page(request: Request) -> Response:
    from .pages import render

    portal = get_portal(request)
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    me = await _admin(request, portal, fields)
    upload = form.get("file")
    problems: list[str] = []
    error = ""
    result = None
    if upload is None or isinstance(upload, str):
        error = "choose a CSV or XLSX file"
    else:
        data = await upload.read(portal.settings.max_upload_bytes + 1)
        try:
            result = await _import(
                portal, me, data, upload.filename or "", fields.get("dry_run") == "yes"
            )
        except CsvImportError as exc:
            error = exc.message.split("\n", 1)[0]
            problems = [str(p) for p in exc.problems]
        except PolicyError as exc:
            error = str(exc)
    return render(
        request,
        "numbers.html",
        status=422 if error else 200,
        error=error,
        problems=problems,
        result=result,
        **_numbers_page(request, await portal.policy.list_numbers()),
    )


@page_router.get("/numbers/{number}")
async def number_page(number: str, request: Request) -> Response:
    from .pages import render

    portal = get_portal(request)
    await _reader(request, portal)
    try:
        view = await portal.policy.get_number(number[:64])
    except NotFoundError as exc:
        raise NotFound(str(exc)) from None
    return render(
        request,
        "number.html",
        n=view,
        templates=await portal.policy.list_templates(),
        slots_text="\n".join(view.slots) if not view.template else "",
    )


@page_router.post("/numbers/{number}/schedule")
async def number_schedule_submit(number: str, request: Request) -> Response:
    from .pages import render

    portal = get_portal(request)
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    me = await _admin(request, portal, form)
    slots_text = form.get("slots", "")[:20_000]
    try:
        if form.get("kind") == "template":
            await portal.policy.set_schedule(
                number[:64], actor=me.login, template=form.get("template", "")[:100]
            )
        else:
            await portal.policy.set_schedule(number[:64], actor=me.login, slots=_lines(slots_text))
    except PolicyError as exc:
        view = await portal.policy.get_number(number[:64])
        return render(
            request,
            "number.html",
            status=422,
            error=str(exc),
            n=view,
            templates=await portal.policy.list_templates(),
            slots_text=slots_text,
            kind=form.get("kind", "slots"),
        )
    portal.policy.notify_listeners()
    from .pages import _back

    return _back(f"/numbers/{quote(number)}", "schedule saved")


@page_router.post("/numbers/{number}/settings")
async def number_settings_submit(number: str, request: Request) -> Response:
    from .pages import _back, render

    portal = get_portal(request)
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    me = await _admin(request, portal, form)
    try:
        await portal.policy.set_number(
            number[:64],
            actor=me.login,
            mode=form.get("mode") or None,
            status=form.get("status") or None,
            managed=form.get("managed") == "yes",
            beep=form.get("beep") == "yes",
            notify=form.get("notify") == "yes",
            self_service=form.get("self_service") == "yes",
            active=form.get("active") == "yes",
        )
    except PolicyError as exc:
        view = await portal.policy.get_number(number[:64])
        return render(
            request,
            "number.html",
            status=422,
            error=str(exc),
            n=view,
            templates=await portal.policy.list_templates(),
            slots_text="\n".join(view.slots) if not view.template else "",
        )
    return _back(f"/numbers/{quote(number)}", "settings saved")


@page_router.get("/templates")
async def templates_page(request: Request) -> Response:
    from .pages import render

    portal = get_portal(request)
    await _reader(request, portal)
    return render(request, "templates.html", templates=await portal.policy.list_templates())


@page_router.post("/templates")
async def templates_submit(request: Request) -> Response:
    from .pages import _back, render

    portal = get_portal(request)
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    me = await _admin(request, portal, form)
    name = form.get("name", "")[:100]
    slots_text = form.get("slots", "")[:20_000]
    try:
        await portal.policy.set_template(name, _lines(slots_text), actor=me.login)
    except PolicyError as exc:
        return render(
            request,
            "templates.html",
            status=422,
            error=str(exc),
            templates=await portal.policy.list_templates(),
            form={"name": name, "slots": slots_text},
        )
    portal.policy.notify_listeners()
    return _back("/templates", "template saved")
