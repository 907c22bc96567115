"""Portal pages of reconciliation runs: the list, one run's exceptions, their CSV.

Admins and auditors only (they see every recording); a standard user gets 403. Each
exception of a call the recorder saw links to that recording's page, which applies its own
access rules and audit event. The rules live in :mod:`siprec_recorder.assurance.service`;
this module holds routes only.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from siprec_recorder.assurance.reconcile import exceptions_csv
from siprec_recorder.assurance.service import list_runs, load_run
from siprec_recorder.services.errors import Forbidden, NotFound

from .pages import _me, render
from .portal import audit, get_portal

__all__ = ["page_router"]

page_router = APIRouter(include_in_schema=False)


async def _reader(request: Request) -> Any:
    me = await _me(request)
    if not me.reads_all:
        await audit(get_portal(request), me, "web.access_denied", "reconciliations")
        raise Forbidden("reconciliation reports are for administrators and auditors")
    return me


@page_router.get("/reconciliations")
async def runs_page(request: Request) -> Response:
    await _reader(request)
    runs = await list_runs(get_portal(request).db, limit=200)
    return render(request, "reconciliations.html", runs=runs)


async def _run(request: Request, run_id: str) -> Any:
    run = await load_run(get_portal(request).db, run_id)
    if run is None:
        raise NotFound(f"no reconciliation {run_id[:64]}")
    return run


@page_router.get("/reconciliations/{run_id}")
async def run_page(run_id: str, request: Request) -> Response:
    me = await _reader(request)
    run = await _run(request, run_id)
    category = request.query_params.get("category", "")
    exceptions = [e for e in run.exceptions if not category or e.get("category") == category]
    await audit(get_portal(request), me, "web.reconciliation_viewed", f"reconciliation:{run.id}")
    return render(request, "reconciliation.html", run=run, exceptions=exceptions, category=category)


@page_router.get("/reconciliations/{run_id}/exceptions.csv")
async def run_csv(run_id: str, request: Request) -> Response:
    me = await _reader(request)
    run = await _run(request, run_id)
    await audit(get_portal(request), me, "web.reconciliation_exported", f"reconciliation:{run.id}")
    return Response(
        exceptions_csv(run.exceptions),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="reconciliation-{run.id}.csv"'},
    )
