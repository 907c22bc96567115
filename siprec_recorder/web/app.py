"""The portal application: ``create_app(db, layout, settings, policy) -> FastAPI``.

The JSON API lives under ``/api`` (OpenAPI at ``/openapi.json``, docs at ``/api/docs``);
server-rendered pages live under ``/``. Both share the services of :class:`~.portal.Portal`,
so a rule holds the same way whichever door a request comes through. Errors of ours
(:class:`~.errors.WebError`) become JSON ``{"detail": message}`` under ``/api`` and an error
page elsewhere, with the status the error carries.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from siprec_recorder.storage.db import Database

from . import api, pages
from .auth import AuthService
from .cases import CaseService
from .errors import Redirect, Unauthorized, WebError
from .portal import Portal
from .recordings import RecordingService
from .settings import WebSettings

__all__ = ["WebSettings", "create_app"]

log = logging.getLogger(__name__)
_HERE = Path(__file__).parent

_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; media-src 'self'; style-src 'self'; "
        "style-src-attr 'unsafe-inline'; "
        "script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
}


def _include_transcripts(app: FastAPI) -> None:
    """Text search and the transcripts of recordings (the routes of web/transcripts.py)."""
    from . import transcripts

    app.include_router(transcripts.router)


def create_app(
    db: Database,
    layout: Any,
    settings: WebSettings | None = None,
    policy: Any | None = None,
    *,
    country_code: str = "32",
) -> FastAPI:
    """Build the portal on an opened ``db``; ``layout.root`` is the recordings folder.

    ``policy`` is the policy layer's service for the number-management pages (``None``
    leaves those pages saying that number management is not available).
    """
    settings = settings or WebSettings()
    root = Path(getattr(layout, "root", layout))
    portal = Portal(
        db=db,
        files_root=root,
        settings=settings,
        policy=policy,
        auth=AuthService(db, settings),
        cases=CaseService(db, settings),
        recordings=RecordingService(db, root, country_code=country_code),
    )
    app = FastAPI(
        title="siprec-recorder portal",
        version="1",
        description="Search, playback, cases, access requests and number management.",
        docs_url="/api/docs",
        redoc_url=None,
    )
    app.state.portal = portal

    @app.middleware("http")
    async def schema_and_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        await portal.ensure_schema()
        response = await call_next(request)
        for name, value in _SECURITY_HEADERS.items():
            if name == "Content-Security-Policy" and request.url.path == "/api/docs":
                continue
            response.headers.setdefault(name, value)
        if settings.secure_cookies:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response

    @app.exception_handler(WebError)
    async def web_error(request: Request, exc: WebError) -> Response:
        if request.url.path.startswith("/api"):
            return JSONResponse({"detail": exc.message}, status_code=exc.status)
        if isinstance(exc, Unauthorized):
            return RedirectResponse("/login", status_code=303)
        if isinstance(exc, Redirect):
            return RedirectResponse(exc.message, status_code=303)
        return pages.error_page(request, exc.status, exc.message)

    app.include_router(api.router)
    _include_transcripts(app)
    if policy is not None:
        from .numbers import api_router, page_router

        app.include_router(api_router)
        app.include_router(page_router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=_HERE / "static"), name="static")
    return app
