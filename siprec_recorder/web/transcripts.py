"""Transcripts in the portal and the API: search by what was said, read a call's transcript.

Routes only; the rules stay below. Access is the recordings' own: a text search goes through
:meth:`RecordingService.search` (the caller's scope, every other filter), and a transcript
is shown only after :meth:`RecordingService.get` allowed the recording.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from siprec_recorder.services.errors import BadRequest, Unavailable
from siprec_recorder.services.recordings import SearchQuery
from siprec_recorder.storage.files import FileLayout
from siprec_recorder.transcription.search import TextQueryError, parse_text_query
from siprec_recorder.transcription.store import load_transcript

from .api import Me, PortalDep
from .portal import audit

__all__ = ["router"]

router = APIRouter(prefix="/api")


@router.get("/transcripts/search", tags=["transcripts"])
async def search_text(
    me: Me,
    portal: PortalDep,
    text: Annotated[str, Query(min_length=1, max_length=500)],
    since: datetime | None = None,
    until: datetime | None = None,
    number: Annotated[str | None, Query(max_length=100)] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Recordings visible to the caller whose transcript has every term, with the hits."""
    try:
        query = parse_text_query(text)
    except TextQueryError as exc:
        raise BadRequest(str(exc)) from None
    f = SearchQuery(
        since=since,
        until=until,
        number=number or None,
        text=text,
        page=page,
        page_size=min(page_size, portal.settings.max_page_size),
    )
    scope = await portal.scope(me)
    result = await portal.recordings.search(scope, f, portal.settings.max_page_size)
    hits = await portal.recordings.transcript_hits(query, [item["id"] for item in result["items"]])
    for item in result["items"]:
        item["hits"] = hits[item["id"]]
    await audit(portal, me, "web.search", "transcripts", text=text, total=result["total"])
    return result


@router.get("/recordings/{recording_id}/transcript", tags=["transcripts"])
async def transcript(
    recording_id: str,
    me: Me,
    portal: PortalDep,
    text: Annotated[str | None, Query(max_length=500)] = None,
) -> dict[str, Any]:
    """The transcript of one recording the caller may see: both legs with their speakers;
    with ``text``, the segments that match it are marked (``hit``)."""
    scope = await portal.scope(me)
    doc = await portal.recordings.get(scope, recording_id)  # 404 / 403 as for the recording
    from siprec_recorder.compliance.crypto import DecryptionError

    try:
        stored = await load_transcript(
            portal.db, FileLayout(portal.files_root), recording_id, portal.settings.keyring
        )
    except DecryptionError as exc:
        raise Unavailable(f"cannot decrypt this transcript: {exc}") from None
    if stored is None:
        return {"id": recording_id, "available": False, "legs": []}
    query = None
    if text:
        try:
            query = parse_text_query(text)
        except TextQueryError as exc:
            raise BadRequest(str(exc)) from None
    for leg in stored["legs"]:
        for seg in leg["segments"]:
            seg["hit"] = bool(
                query is not None
                and any(query.word_matches(w) for w in str(seg["text"]).replace(",", " ").split())
            )
    await audit(portal, me, "web.transcript", recording_id)
    return {
        "id": recording_id,
        "available": True,
        "model": stored.get("model"),
        "can_play": doc.get("can_play", False),
        "legs": stored["legs"],
    }
