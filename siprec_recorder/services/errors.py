"""Errors of the portal; each carries the HTTP status it is answered with."""

from __future__ import annotations

from siprec_recorder.errors import RecorderError

__all__ = [
    "BadRequest",
    "Conflict",
    "Forbidden",
    "NotFound",
    "Redirect",
    "Unavailable",
    "Unauthorized",
    "Unprocessable",
    "WebError",
]


class WebError(RecorderError):
    """A request the portal refuses; ``str(error)`` is shown to the user as-is."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(WebError):
    status = 400


class Unauthorized(WebError):
    status = 401


class Forbidden(WebError):
    status = 403


class NotFound(WebError):
    status = 404


class Conflict(WebError):
    status = 409


class Unprocessable(WebError):
    """Well-formed but unusable input, such as a date outside the range the portal keeps."""

    status = 422


class Redirect(WebError):
    """Not an error: send the browser to ``message`` (a path), e.g. ``/password``."""

    status = 303


class Unavailable(WebError):
    """The request is fine but cannot be served now (e.g. the decryption key is missing)."""

    status = 503
