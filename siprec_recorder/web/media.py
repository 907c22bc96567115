"""Serving audio files with HTTP range requests (RFC 9110 section 14).

One byte range is served as ``206 Partial Content``; a request without ``Range`` (or with a
syntax we do not serve, such as several ranges) gets the whole file with ``200``; a range
that starts past the end is ``416`` with ``Content-Range: bytes */size``. Files are streamed
in 64 KiB chunks from a thread, never read whole into memory.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from fastapi.responses import Response, StreamingResponse

__all__ = ["StoredAudio", "parse_range", "range_response", "range_response_bytes"]

_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CHUNK = 64 * 1024


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """``(first, last)`` inclusive, ``None`` for "whole file", ``"unsatisfiable"``."""
    if not header:
        return None
    m = _RANGE_RE.match(header.strip().replace(" ", ""))
    if m is None:
        return None
    first_s, last_s = m.groups()
    if not first_s and not last_s:
        return None
    if not first_s:  # suffix range: the last N bytes
        n = int(last_s)
        if n == 0:
            return "unsatisfiable"
        return max(0, size - n), size - 1
    first = int(first_s)
    last = int(last_s) if last_s else size - 1
    if first >= size:
        return "unsatisfiable"
    if last < first:
        return None
    return first, min(last, size - 1)


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


@dataclass(frozen=True, slots=True)
class StoredAudio:
    """A recording in the object store: ``key`` of ``store``, ``size`` bytes."""

    store: Any
    key: str
    size: int

    def stream(self, first: int, length: int) -> AsyncIterator[bytes]:
        return self.store.stream(self.key, first, length)  # type: ignore[no-any-return]


def range_response(
    path: Path | StoredAudio,
    range_header: str | None,
    *,
    media_type: str = "audio/mpeg",
    download_name: str | None = None,
) -> Response:
    """The response for a GET of ``path`` (a file, or an object: a ranged GET of only the
    bytes asked for) with an optional ``Range`` header."""
    if isinstance(path, StoredAudio):
        size = path.size
        stream = path.stream
    else:
        size = path.stat().st_size
        file = path

        def stream(first: int, length: int) -> AsyncIterator[bytes]:
            return _stream(file, first, length)

    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, no-store"}
    if download_name:
        headers["Content-Disposition"] = f'attachment; filename="{download_name}"'
    wanted = parse_range(range_header, size)
    if wanted == "unsatisfiable":
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    if wanted is None or isinstance(wanted, str):
        headers["Content-Length"] = str(size)
        return StreamingResponse(
            stream(0, size), status_code=200, media_type=media_type, headers=headers
        )
    first, last = wanted
    length = last - first + 1
    headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    headers["Content-Length"] = str(length)
    return StreamingResponse(
        stream(first, length), status_code=206, media_type=media_type, headers=headers
    )


def range_response_bytes(
    data: bytes,
    range_header: str | None,
    *,
    media_type: str = "audio/mpeg",
    download_name: str | None = None,
) -> Response:
    """As :func:`range_response`, for audio held in memory (a decrypted recording)."""
    size = len(data)
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, no-store"}
    if download_name:
        headers["Content-Disposition"] = f'attachment; filename="{download_name}"'
    wanted = parse_range(range_header, size)
    if wanted == "unsatisfiable":
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    if wanted is None or isinstance(wanted, str):
        return Response(data, status_code=200, media_type=media_type, headers=headers)
    first, last = wanted
    headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    return Response(data[first : last + 1], status_code=206, media_type=media_type, headers=headers)
