"""Serving audio files with HTTP range requests (RFC 9110 section 14).

One byte range is served as ``206 Partial Content``. The unit is matched without regard to
case and leading zeros are accepted (RFC 9110 14.1.1 allows both); a header we do not serve
(another unit, several ranges, garbage) is treated as "from the start". A range that starts
past the end is ``416`` with ``Content-Range: bytes */size``.

With a ``cap`` (streaming for the in-page player), every answer is a ``206`` of at most
``cap`` bytes and never the whole file: a request without a usable range gets the first
piece, and the player asks for the next ones as it plays or seeks. Without a cap (an
admin's download) the whole file comes with ``200``. Files are streamed in 64 KiB chunks,
never read whole into memory.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import anyio
from fastapi.responses import Response, StreamingResponse

from siprec_recorder.services.recordings import StoredAudio

__all__ = [
    "RangePlan",
    "parse_range",
    "plan_range",
    "range_response",
    "range_response_bytes",
]

_RANGE_RE = re.compile(r"^\s*bytes\s*=\s*(\d{0,19})\s*-\s*(\d{0,19})\s*$", re.IGNORECASE)
_CHUNK = 64 * 1024


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """``(first, last)`` inclusive, ``None`` for "no usable range", ``"unsatisfiable"``."""
    if not header or "," in header:
        return None
    m = _RANGE_RE.match(header)
    if m is None:
        return None
    first_s, last_s = m.groups()
    if not first_s and not last_s:
        return None
    if not first_s:  # suffix range: the last N bytes
        n = int(last_s)
        if n == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - n), size - 1
    first = int(first_s)
    last = int(last_s) if last_s else size - 1
    if first >= size:
        return "unsatisfiable"
    if last < first:
        return None
    return first, min(last, size - 1)


@dataclass(frozen=True, slots=True)
class RangePlan:
    """What one answer carries: ``status`` 200, 206 or 416 and the inclusive byte span."""

    status: int
    first: int
    last: int
    size: int

    @property
    def length(self) -> int:
        return 0 if self.status == 416 else self.last - self.first + 1


def plan_range(header: str | None, size: int, cap: int | None) -> RangePlan:
    """The answer to a ``Range`` header on a file of ``size`` bytes.

    With ``cap``, at most ``cap`` bytes and never the whole file (at most half of it, so a
    short recording also takes more than one request).
    """
    wanted = parse_range(header, size)
    if wanted == "unsatisfiable" or (cap is not None and size == 0):
        return RangePlan(416, 0, -1, size)
    if cap is None:
        if wanted is None or isinstance(wanted, str):
            return RangePlan(200, 0, size - 1, size)
        return RangePlan(206, wanted[0], wanted[1], size)
    limit = max(1, min(cap, -(-size // 2)))
    first, last = (0, size - 1) if wanted is None or isinstance(wanted, str) else wanted
    return RangePlan(206, first, min(last, first + limit - 1), size)


async def _stream(path: Path, first: int, length: int) -> AsyncIterator[bytes]:
    async with await anyio.open_file(path, "rb") as fh:
        await fh.seek(first)
        remaining = length
        while remaining > 0:
            chunk = await fh.read(min(_CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk


def _headers(plan: RangePlan, download_name: str | None) -> dict[str, str]:
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, no-store"}
    if download_name:
        headers["Content-Disposition"] = f'attachment; filename="{download_name}"'
    else:
        headers["Content-Disposition"] = "inline"
    if plan.status == 416:
        headers["Content-Range"] = f"bytes */{plan.size}"
    elif plan.status == 206:
        headers["Content-Range"] = f"bytes {plan.first}-{plan.last}/{plan.size}"
    return headers


def range_response(
    path: Path | StoredAudio,
    plan: RangePlan | str | None,
    *,
    media_type: str = "audio/mpeg",
    download_name: str | None = None,
) -> Response:
    """The response carrying ``plan`` (or the answer to a ``Range`` header, uncapped) of
    the file at ``path`` or of an object in the store (a ranged GET of only those bytes)."""
    if isinstance(path, StoredAudio):
        size = path.size
        stream = path.stream
    else:
        size = path.stat().st_size
        file = path

        def stream(first: int, length: int) -> AsyncIterator[bytes]:
            return _stream(file, first, length)

    if not isinstance(plan, RangePlan):
        plan = plan_range(plan, size, None)
    headers = _headers(plan, download_name)
    if plan.status == 416:
        return Response(status_code=416, headers=headers)
    headers["Content-Length"] = str(plan.length)
    return StreamingResponse(
        stream(plan.first, plan.length),
        status_code=plan.status,
        media_type=media_type,
        headers=headers,
    )


def range_response_bytes(
    data: bytes,
    plan: RangePlan | str | None,
    *,
    media_type: str = "audio/mpeg",
    download_name: str | None = None,
) -> Response:
    """As :func:`range_response`, for audio held in memory (a decrypted recording)."""
    if not isinstance(plan, RangePlan):
        plan = plan_range(plan, len(data), None)
    headers = _headers(plan, download_name)
    if plan.status == 416:
        return Response(status_code=416, headers=headers)
    body = data[plan.first : plan.last + 1]
    return Response(body, status_code=plan.status, media_type=media_type, headers=headers)
