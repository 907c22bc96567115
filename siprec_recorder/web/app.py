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

from siprec_recorder.services.auth import AuthService
from siprec_recorder.services.cases import CaseService
from siprec_recorder.services.errors import Redirect, Unauthorized, WebError
from siprec_recorder.services.recordings import RecordingService
from siprec_recorder.services.settings import WebSettings
from siprec_recorder.storage.db import Database

from . import api, export, pages
from .portal import Portal

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
        recordings=RecordingService(db, root, country_code=country_code, store=settings.store),
    )
    app = FastAPI(
        title="siprec-recorder portal",
        version="1",
        description="Search, playback, cases, access requests and number management.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.portal = portal

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if request.url.path.startswith("/api") and (twice := _repeated_query_key(request)):
            # Every API parameter is single-valued; taking the last of several would answer
            # a question nobody asked (a filter the caller did not mean).
            response: Response = JSONResponse(
                {"detail": f"query parameter {twice!r} given more than once"}, status_code=400
            )
        else:
            response = await call_next(request)
        if response.status_code == 405:
            response.headers["Allow"] = _allowed_methods(app, request.url.path)
        for name, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if not request.url.path.startswith("/static/"):
            # Pages and JSON name people and calls: never kept by the browser (Back after
            # logging out shows nothing) nor by a proxy.
            response.headers["Cache-Control"] = "no-store"
            response.headers.setdefault("Pragma", "no-cache")
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
    app.include_router(export.router)
    _include_transcripts(app)
    if policy is not None:
        from .numbers import api_router, page_router

        app.include_router(api_router)
        app.include_router(page_router)
    from .assurance import page_router as assurance_pages

    app.include_router(assurance_pages)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=_HERE / "static"), name="static")
    _describe_security(app)
    return app


def _repeated_query_key(request: Request) -> str | None:
    seen: set[str] = set()
    for key, _value in request.query_params.multi_items():
        if key in seen:
            return key
        seen.add(key)
    return None


def _allowed_methods(app: FastAPI, path: str) -> str:
    """The ``Allow`` header of a 405 (RFC 9110 section 15.5.6): the methods of the most
    specific routes whose path matches (``/api/numbers/import`` before ``{number}``).
    Starlette names only the first route that matched."""
    by_params: dict[int, set[str]] = {}
    for route in app.routes:
        regex = getattr(route, "path_regex", None)
        m = regex.match(path) if regex is not None else None
        if m is not None:
            by_params.setdefault(len(m.groupdict()), set()).update(
                getattr(route, "methods", None) or ()
            )
    return ", ".join(sorted(by_params[min(by_params)])) if by_params else ""


_OPEN_OPERATIONS = {"/api/auth/login", "/api/auth/second-person"}
_ERRORS = {
    "400": "The request is wrong (the message says why)",
    "401": "Not logged in, or the session ended",
    "403": "Not allowed for this account, or a missing CSRF token",
    "404": "No such thing",
    "409": "Conflicts with what exists",
    "422": "Well-formed but unusable input (e.g. a date out of range)",
    "503": "Cannot be served now (e.g. the decryption key is missing)",
}


def _describe_security(app: FastAPI) -> None:
    """Declare how the API authenticates (a session token as Bearer, or the browser's
    session cookie with its CSRF header) and the error answers every operation may give."""
    base = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = base()
        components = doc.setdefault("components", {})
        components["securitySchemes"] = {
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "description": "The `token` of POST /api/auth/login.",
            },
            "cookieAuth": {
                "type": "apiKey",
                "in": "cookie",
                "name": "siprec_session",
                "description": "Browsers; changes also need the X-CSRF-Token header.",
            },
        }
        components.setdefault("schemas", {})["Error"] = {
            "type": "object",
            "properties": {"detail": {"type": "string"}},
            "required": ["detail"],
        }
        doc["security"] = [{"bearerAuth": []}, {"cookieAuth": []}]
        for path, ops in doc.get("paths", {}).items():
            for op in ops.values():
                if path in _OPEN_OPERATIONS:
                    op["security"] = []
                responses = op.setdefault("responses", {})
                if "422" in responses:  # ours ({"detail": text}) or FastAPI's validation list
                    responses["422"]["content"]["application/json"]["schema"] = {
                        "anyOf": [
                            {"$ref": "#/components/schemas/Error"},
                            {"$ref": "#/components/schemas/HTTPValidationError"},
                        ]
                    }
                for code, text in _ERRORS.items():
                    responses.setdefault(
                        code,
                        {
                            "description": text,
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Error"}
                                }
                            },
                        },
                    )
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
