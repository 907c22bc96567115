"""E-discovery export: the recordings of a case, a number or a list, as a self-proving bundle.

Theory of operation
-------------------
:func:`export_bundle` selects recordings (a case's label, a number in a time window, or ids)
and writes, into a folder or a zip:

* ``audio/<id>.mp3``: the MP3 (decrypted when the recording is encrypted at rest, the
  stored bytes then also kept as ``stored/<id>.enc`` so that the ledger's SHA-256 can be
  checked), ``sidecars/<id>.json``: the sidecar written when the call was finished;
* ``transcripts/<id>.json``: the recording's transcript when it has one, as the audio
  (decrypted, the stored bytes then kept as ``stored/<id>.transcript.enc`` so that the
  SHA-256 of its ``transcript.stored`` ledger entry can be checked);
* ``manifest.json`` and ``manifest.csv``: one row per recording, with what a reviewer needs
  (participants, times in UTC and in the firm's zone, duration, labels, SHA-256s, the ledger
  entries that concern it);
* ``ledger.jsonl``: the audit ledger from its first entry to its head, and
  ``chain_head.json``: the head as the recorder held it, so that every file is proven by a
  chained entry;
* ``verify_bundle.py`` (stdlib only, :mod:`.bundle_verify`) and ``SHA256SUMS`` over all of it.

The export itself is a ledger event (``export.created``) that carries the digest of
``SHA256SUMS``: the recorder keeps the proof of what it handed out.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from siprec_recorder.storage.cases import Label, RecordingLabel, case_recording_ids, find_case
from siprec_recorder.storage.db import Database
from siprec_recorder.storage.files import FileLayout
from siprec_recorder.storage.ledger import append_event, format_ts
from siprec_recorder.storage.models import (
    LedgerEntry,
    LedgerHead,
    Recording,
    RecordingParticipant,
)

from . import bundle_verify
from .bundle_verify import CSV_FIELDS, csv_row

__all__ = ["ExportError", "ExportResult", "export_bundle", "select_recordings"]


class ExportError(Exception):
    """The selection or the target is not usable (one line for the operator)."""


@dataclass(frozen=True, slots=True)
class ExportResult:
    path: Path
    recordings: int
    sums_sha256: str


async def select_recordings(
    db: Database,
    *,
    case: str | None = None,
    numbers: Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    ids: Sequence[str] | None = None,
) -> list[str]:
    """The ids of the recordings selected (oldest first)."""
    q = select(Recording.id).where(Recording.file.is_not(None))
    async with db.session() as session:
        if case is not None:
            found = await find_case(session, case)
            if found is None:
                raise ExportError(f"no case {case!r}")
            q = q.where(Recording.id.in_(case_recording_ids(found)))
        if numbers:
            q = q.where(
                Recording.recorded_number.in_(numbers)
                | Recording.other_number.in_(numbers)
                | Recording.id.in_(
                    select(RecordingParticipant.recording_id).where(
                        RecordingParticipant.number.in_(numbers)
                    )
                )
            )
        if since is not None:
            q = q.where(Recording.start >= since)
        if until is not None:
            q = q.where(Recording.start < until)
        if ids is not None:
            q = q.where(Recording.id.in_(list(ids)))
        return list((await session.scalars(q.order_by(Recording.start, Recording.id))).all())


def _local(dt: datetime | None, zone: ZoneInfo) -> str | None:
    return None if dt is None else dt.astimezone(zone).isoformat()


def _utc(dt: datetime | None) -> str | None:
    return None if dt is None else format_ts(dt)


async def export_bundle(
    db: Database,
    layout: FileLayout,
    rec_ids: Sequence[str],
    target: Path,
    *,
    store: Any = None,
    keyring: Any = None,
    timezone: str = "UTC",
    actor: str = "cli",
    selection: dict[str, Any] | None = None,
) -> ExportResult:
    """Write the bundle of ``rec_ids`` to ``target`` (``*.zip``: a zip, else a new folder)."""
    if not rec_ids:
        raise ExportError("nothing to export: the selection has no recording with audio")
    as_zip = target.suffix.lower() == ".zip"
    if target.exists() and (as_zip or any(target.iterdir())):
        raise ExportError(f"{target} exists: give a new folder or zip")
    zone = ZoneInfo(timezone)
    files: dict[str, bytes] = {}
    rows: list[dict[str, Any]] = []
    async with db.session() as session:
        recs = (
            await session.scalars(
                select(Recording)
                .options(selectinload(Recording.participants))
                .where(Recording.id.in_(list(rec_ids)))
                .order_by(Recording.start, Recording.id)
            )
        ).all()
        label_rows = (
            await session.execute(
                select(RecordingLabel.recording_id, Label.title)
                .join(Label, Label.id == RecordingLabel.label_id)
                .where(RecordingLabel.recording_id.in_(list(rec_ids)))
            )
        ).all()
        ledger = (await session.scalars(select(LedgerEntry).order_by(LedgerEntry.seq))).all()
        head = await session.get(LedgerHead, 1)
    labels: dict[str, list[str]] = {}
    for rid, title in label_rows:
        labels.setdefault(rid, []).append(title)
    seqs: dict[str, list[int]] = {}
    for e in ledger:
        seqs.setdefault(e.subject, []).append(e.seq)
    for rec in recs:
        assert rec.file is not None
        stored = await _read(layout, store, rec.file)
        audio = stored
        encrypted = rec.key_id is not None
        row_files: dict[str, Any] = {}
        if encrypted:
            from siprec_recorder.compliance.crypto import decrypt_for

            if keyring is None:
                raise ExportError(f"{rec.id} is encrypted and no key is configured")
            audio = decrypt_for(stored, keyring, rec.key_id)
            files[f"stored/{rec.id}.enc"] = stored
            row_files["stored_file"] = f"stored/{rec.id}.enc"
        files[f"audio/{rec.id}.mp3"] = audio
        row_files.update(await _transcript(db, layout, store, keyring, rec.id, files))
        sidecar_name = None
        if rec.sidecar:
            sidecar_name = f"sidecars/{rec.id}.json"
            files[sidecar_name] = await _read(layout, store, rec.sidecar)
        participants = [
            f"{p.role or 'participant'}: {p.number or p.aor or '?'}"
            + (f" ({p.name})" if p.name else "")
            for p in rec.participants
        ]
        rows.append(
            {
                "id": rec.id,
                "call_id": rec.call_id,
                "state": rec.state,
                "direction": rec.direction,
                "recorded_number": rec.recorded_number,
                "other_number": rec.other_number,
                "participants": participants,
                "start_utc": _utc(rec.start),
                "end_utc": _utc(rec.end),
                "start_local": _local(rec.start, zone),
                "end_local": _local(rec.end, zone),
                "timezone": timezone,
                "duration_s": rec.duration_s,
                "labels": sorted(labels.get(rec.id, [])),
                "audio_file": f"audio/{rec.id}.mp3",
                "audio_sha256": hashlib.sha256(audio).hexdigest(),
                "stored_sha256": rec.sha256,
                "sidecar_file": sidecar_name,
                "encrypted": encrypted,
                "ledger_seqs": seqs.get(rec.id, []),
                **row_files,
            }
        )
    manifest = {
        "format": "siprec-recorder-export/1",
        "created_utc": _utc(datetime.now(ZoneInfo("UTC"))),
        "selection": selection or {},
        "recordings": rows,
    }
    files["manifest.json"] = (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode()
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(CSV_FIELDS), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(csv_row(row))
    files["manifest.csv"] = out.getvalue().encode("utf-8")
    lines = []
    for e in ledger:
        lines.append(
            json.dumps(
                {
                    "seq": e.seq,
                    "ts": format_ts(e.ts),
                    "actor": e.actor,
                    "action": e.action,
                    "subject": e.subject,
                    "details": json.loads(e.details),
                    "prev_hash": e.prev_hash,
                    "hash": e.hash,
                },
                ensure_ascii=False,
                sort_keys=True,
            )
        )
    files["ledger.jsonl"] = ("\n".join(lines) + "\n").encode("utf-8") if lines else b""
    last = ledger[-1] if ledger else None
    files["chain_head.json"] = json.dumps(
        {
            "seq": last.seq if last else 0,
            "hash": last.hash if last else bundle_verify.GENESIS_HASH,
            "recorder_head": {"seq": head.seq, "hash": head.hash} if head else None,
        },
        indent=2,
    ).encode()
    files["verify_bundle.py"] = Path(bundle_verify.__file__).read_bytes()
    sums = "".join(
        f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(files.items())
    ).encode()
    files["SHA256SUMS"] = sums
    _write(target, files, as_zip)
    digest = hashlib.sha256(sums).hexdigest()
    async with db.session() as session:
        await append_event(
            session,
            actor=actor,
            action="export.created",
            subject=f"export:{digest[:16]}",
            details={
                "recordings": [r["id"] for r in rows],
                "selection": selection or {},
                "sha256sums_sha256": digest,
                "target": str(target),
            },
        )
        await session.commit()
    return ExportResult(target, len(rows), digest)


async def _transcript(
    db: Database,
    layout: FileLayout,
    store: Any,
    keyring: Any,
    rec_id: str,
    files: dict[str, bytes],
) -> dict[str, Any]:
    """Put the transcript of ``rec_id`` into ``files`` as :func:`export_bundle` puts the
    audio; the manifest fields that describe it ({} when the recording has none)."""
    from siprec_recorder.transcription.store import transcript_files

    found = await transcript_files(db, rec_id)
    if not found:
        return {}
    (t,) = found  # one transcript per recording
    stored = await _read(layout, store, t["file"])
    text = stored
    fields: dict[str, Any] = {}
    if t["key_id"] is not None:
        from siprec_recorder.compliance.crypto import decrypt_for

        if keyring is None:
            raise ExportError(f"{rec_id}: its transcript is encrypted and no key is configured")
        text = decrypt_for(stored, keyring, t["key_id"])
        files[f"stored/{rec_id}.transcript.enc"] = stored
        fields["transcript_stored_file"] = f"stored/{rec_id}.transcript.enc"
    files[f"transcripts/{rec_id}.json"] = text
    return {
        "transcript_file": f"transcripts/{rec_id}.json",
        "transcript_sha256": hashlib.sha256(text).hexdigest(),
        "transcript_stored_sha256": t["sha256"],
        **fields,
    }


async def _read(layout: FileLayout, store: Any, rel: str) -> bytes:
    path = layout.absolute(rel)
    if path.is_file():
        return path.read_bytes()
    if store is None or store.is_local:
        raise ExportError(f"{rel}: file missing (run `siprec-recorder verify`)")
    return bytes(await store.read(rel))


def _write(target: Path, files: dict[str, bytes], as_zip: bool) -> None:
    if as_zip:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".part")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
            for name in sorted(files):
                zf.writestr(name, files[name])
        tmp.replace(target)
        return
    for name, data in files.items():
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
