"""``GET /api/cases/{id}/export``: an admin downloads a case as an e-discovery bundle (zip).

The bundle is the one ``siprec-recorder export --case`` writes (see
:mod:`siprec_recorder.compliance.export`), and the export is a ledger event under the admin's
login; the zip is built in a temporary folder that is removed once it has been sent.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from siprec_recorder.services.errors import BadRequest, Forbidden
from siprec_recorder.storage.files import FileLayout

from .api import Me, PortalDep

__all__ = ["router"]

router = APIRouter(prefix="/api")
CaseId = Annotated[int, PathParam(ge=1, le=2**31 - 1)]


@router.get(
    "/cases/{case_id}/export",
    tags=["cases"],
    responses={200: {"content": {"application/zip": {}}}},
)
async def export_case(case_id: CaseId, request: Request, me: Me, portal: PortalDep) -> FileResponse:
    """The case's recordings, manifests and ledger proof as one zip; admins only; audited."""
    from siprec_recorder.compliance.export import ExportError, export_bundle, select_recordings

    if not me.is_admin:
        raise Forbidden("only admins export cases")
    recorder = getattr(request.app.state, "recorder", None)
    timezone = recorder.config.policy.timezone if recorder is not None else "UTC"
    tmp = Path(tempfile.mkdtemp(prefix="siprec-export-"))
    target = tmp / f"case-{case_id}.zip"
    try:
        ids = await select_recordings(portal.db, case=str(case_id))
        await export_bundle(
            portal.db,
            FileLayout(portal.files_root),
            ids,
            target,
            store=portal.settings.store,
            keyring=portal.settings.keyring,
            timezone=timezone,
            actor=f"web:{me.login}",
            selection={"case": str(case_id)},
        )
    except ExportError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise BadRequest(str(exc)) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return FileResponse(
        target,
        media_type="application/zip",
        filename=target.name,
        background=BackgroundTask(shutil.rmtree, tmp, True),
    )
