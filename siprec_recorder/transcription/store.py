"""Transcripts as records: the file beside the MP3, its rows, its ledger entry, its checks.

A transcript is stored like the recording it belongs to: a JSON file next to the MP3
(``<name>.transcript.json``), written atomically, encrypted with the recording's key when
the recording is encrypted, its SHA-256 in the ``transcripts`` row and in the ledger entry
``transcript.stored``. Purging a recording deletes the file and the searchable rows
(:func:`purge_rows`, :func:`transcript_of`); ``verify`` re-hashes the files
(:func:`verify_transcripts`); export takes :func:`transcript_files`.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from ..isotime import utc_iso
from ..storage.db import Database
from ..storage.files import FileLayout
from ..storage.integrity import Problem, sha256_file
from ..storage.ledger import append_event
from ..storage.models import Recording, utcnow
from .models import Transcript, TranscriptionJob, TranscriptSegment

__all__ = [
    "TRANSCRIPT_FORMAT",
    "load_transcript",
    "purge_rows",
    "recording_with_participants",
    "store_transcript",
    "transcript_files",
    "transcript_of",
    "verify_transcripts",
]

TRANSCRIPT_FORMAT = "siprec-recorder-transcript/1"


async def recording_with_participants(session: AsyncSession, rec_id: str) -> Recording | None:
    """The recording row of ``rec_id`` with its participants loaded (None when absent)."""
    return (
        await session.execute(
            select(Recording)
            .where(Recording.id == rec_id)
            .options(selectinload(Recording.participants))
        )
    ).scalar_one_or_none()


def transcript_of(rel_mp3: str) -> str:
    """The transcript path beside an MP3 path."""
    base = rel_mp3[: -len(".mp3")] if rel_mp3.endswith(".mp3") else rel_mp3
    return base + ".transcript.json"


def _speaker(p: Any) -> str | None:
    return str(p.name or p.number or p.aor) if (p.name or p.number or p.aor) else None


async def store_transcript(
    db: Database,
    layout: FileLayout,
    rec_id: str,
    result: dict[str, Any],
    keyring: Any = None,
    *,
    actor: str = "system",
) -> str | None:
    """Write the transcript of ``rec_id`` (file, rows, ledger); its path, None when the
    recording has no file any more (purged meanwhile)."""
    async with db.session() as session:
        rec = await recording_with_participants(session, rec_id)
        if rec is None or rec.file is None or rec.state == "purged":
            return None
        file, key_id = rec.file, rec.key_id
        speakers = {p.participant_id: _speaker(p) for p in rec.participants if p.participant_id}
    legs = []
    for leg in result["legs"]:
        legs.append({**leg, "speaker": speakers.get(leg.get("participant_id"))})
    doc = {
        "format": TRANSCRIPT_FORMAT,
        "id": rec_id,
        "model": result.get("model"),
        "created": utc_iso(utcnow()),
        "legs": legs,
    }
    data = json.dumps(doc, indent=1, ensure_ascii=False).encode("utf-8") + b"\n"
    if key_id is not None:
        from ..compliance.crypto import encrypt_bytes

        key = keyring.get(key_id) if keyring is not None else None
        if key is None:  # never write in clear what belongs to an encrypted recording
            raise RuntimeError(f"encryption key {key_id} is not configured")
        data, _ = encrypt_bytes(data, key)
    rel = transcript_of(file)
    sha, size = await asyncio.to_thread(layout.write_atomic, rel, data)
    rows = [
        {
            "recording_id": rec_id,
            "leg": leg["label"],
            "participant_id": leg.get("participant_id"),
            "speaker": leg["speaker"],
            "language": leg.get("language"),
            "start_s": seg["start_s"],
            "end_s": seg["end_s"],
            "text": seg["text"],
            "confidence": seg.get("confidence"),
            "words": seg.get("words"),
        }
        for leg in legs
        for seg in leg["segments"]
    ]
    async with db.session() as session:
        state = await session.scalar(select(Recording.state).where(Recording.id == rec_id))
        if state is None or state == "purged":  # purged while we wrote: leave nothing behind
            await session.rollback()
            await asyncio.to_thread(layout.absolute(rel).unlink, missing_ok=True)
            return None
        await purge_rows(session, rec_id)
        session.add(
            Transcript(
                recording_id=rec_id,
                file=rel,
                sha256=sha,
                size_bytes=size,
                key_id=key_id,
                model=str(result.get("model") or "?"),
                languages={leg["label"]: leg.get("language") for leg in legs},
            )
        )
        for row in rows:
            session.add(TranscriptSegment(**row))
        await session.execute(
            update(TranscriptionJob)
            .where(TranscriptionJob.recording_id == rec_id)
            .values(state="done", finished_at=utcnow(), error=None)
        )
        await append_event(
            session,
            actor=actor,
            action="transcript.stored",
            subject=rec_id,
            details={
                "file": rel,
                "sha256": sha,
                "size_bytes": size,
                "model": result.get("model"),
                "segments": len(rows),
                "key_id": key_id,
            },
        )
        await session.commit()
    return rel


async def purge_rows(session: AsyncSession, rec_id: str) -> None:
    """Delete the transcript rows of ``rec_id`` in ``session``'s transaction."""
    await session.execute(delete(TranscriptSegment).where(TranscriptSegment.recording_id == rec_id))
    await session.execute(delete(Transcript).where(Transcript.recording_id == rec_id))


async def transcript_files(db: Database, rec_id: str) -> list[dict[str, Any]]:
    """The transcript file(s) of a recording, for export: path (relative to the recordings
    folder), SHA-256, size and key id (``None``: stored in clear). [] when there is none."""
    async with db.session() as session:
        t = await session.get(Transcript, rec_id)
    if t is None or t.file is None:
        return []
    return [{"file": t.file, "sha256": t.sha256, "size_bytes": t.size_bytes, "key_id": t.key_id}]


async def load_transcript(
    db: Database, layout: FileLayout, rec_id: str, keyring: Any = None
) -> dict[str, Any] | None:
    """The stored transcript document of ``rec_id``, decrypted; None when there is none."""
    files = await transcript_files(db, rec_id)
    if not files:
        return None
    from ..compliance.crypto import decrypt_for

    blob = await asyncio.to_thread(layout.absolute(files[0]["file"]).read_bytes)
    doc: dict[str, Any] = json.loads(decrypt_for(blob, keyring, files[0]["key_id"]))
    return doc


def _check(layout: FileLayout, rel: str, sha: str | None, size: int | None) -> Problem | None:
    try:
        path: Path = layout.absolute(rel)
    except Exception as exc:
        return Problem("modified", rel, f"transcript path: {exc}")
    if not path.is_file():
        return Problem("missing", rel, "transcript file not found")
    actual, actual_size = sha256_file(path)
    if actual != sha or (size is not None and actual_size != size):
        return Problem("modified", rel, f"transcript sha256 {actual} != indexed {sha}")
    return None


async def verify_transcripts(db: Database, layout: FileLayout) -> list[Problem]:
    """Re-hash every stored transcript against its row."""
    async with db.session() as session:
        rows = (
            await session.execute(
                select(Transcript.file, Transcript.sha256, Transcript.size_bytes).where(
                    Transcript.file.is_not(None)
                )
            )
        ).all()
    problems = []
    for rel, sha, size in rows:
        problem = await asyncio.to_thread(_check, layout, str(rel), sha, size)
        if problem is not None:
            problems.append(problem)
    return problems
