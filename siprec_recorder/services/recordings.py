"""Search, detail and file access for recordings, filtered by what the principal may see.

Searching is one SQL query on the index tables (``recordings``, ``recording_participants``)
and the portal's ``web_recording_labels``: the index's own number search
(:func:`~siprec_recorder.storage.index.search.filter_recordings`, as the CLI uses it) with the
portal's further filters and the visibility rule of the principal (:mod:`.access`) as
conditions, a ``count(*)`` for the total, and one page sorted on a fixed list of columns.
Numbers typed by users are normalised the way the recorder normalises participants.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select, union
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from siprec_recorder.phone import number_forms
from siprec_recorder.storage.db import Database
from siprec_recorder.storage.index.search import (
    filter_recordings,
    number_selects,
    recordings_with_number,
)
from siprec_recorder.storage.models import Recording, User

from .access import Scope, numbers_of_login
from .errors import BadRequest, Forbidden, NotFound, Unavailable
from .models import Case, Label, RecordingLabel
from .security import as_utc, user_time

__all__ = ["SORT_COLUMNS", "RecordingService", "SearchQuery", "StoredAudio"]

SORT_COLUMNS: dict[str, Any] = {
    "start": Recording.start,
    "duration": Recording.duration_s,
    "direction": Recording.direction,
    "number": Recording.recorded_number,
    "other": Recording.other_number,
    "state": Recording.state,
}
DIRECTIONS = ("in", "out", "unknown")


@dataclass(frozen=True, slots=True)
class StoredAudio:
    """A recording in the object store: ``key`` of ``store``, ``size`` bytes."""

    store: Any
    key: str
    size: int

    def stream(self, first: int, length: int) -> AsyncIterator[bytes]:
        return self.store.stream(self.key, first, length)  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """The filters, sort and page of one search; None means "any"."""

    since: datetime | None = None
    until: datetime | None = None
    number: str | None = None
    user: str | None = None
    direction: str | None = None
    min_duration: float | None = None
    max_duration: float | None = None
    case_id: int | None = None
    label_id: int | None = None
    state: str | None = None
    sort: str = "start"
    order: str = "desc"
    page: int = 1
    page_size: int = 50
    text: str | None = None  # words said in the call (transcription.search syntax)

    def check(self, max_page_size: int) -> None:
        if self.sort not in SORT_COLUMNS:
            raise BadRequest(f"sort must be one of {', '.join(SORT_COLUMNS)}")
        if self.order not in ("asc", "desc"):
            raise BadRequest("order must be asc or desc")
        if self.direction is not None and self.direction not in DIRECTIONS:
            raise BadRequest(f"direction must be one of {', '.join(DIRECTIONS)}")
        if self.page < 1 or self.page > 1_000_000:
            raise BadRequest("page must be 1 or more")
        if not 1 <= self.page_size <= max_page_size:
            raise BadRequest(f"page_size must be between 1 and {max_page_size}")
        if self.since is not None:
            user_time(self.since, "since")
        if self.until is not None:
            user_time(self.until, "until")
        if self.since and self.until and as_utc(self.since) > as_utc(self.until):
            raise BadRequest("since must not be after until")


def _participant_numbers(rec: Recording) -> set[str]:
    numbers = {p.number for p in rec.participants if p.number}
    for n in (rec.recorded_number, rec.other_number):
        if n:
            numbers.add(n)
    return numbers


class RecordingService:
    """Read access to the index for the portal."""

    def __init__(
        self, db: Database, files_root: Path, *, country_code: str = "32", store: Any = None
    ) -> None:
        self._db = db
        self._root: Path = files_root
        self._cc = country_code
        self._store = store

    @staticmethod
    def _visible(scope: Scope) -> list[ColumnElement[bool]]:
        """The principal's access scope as conditions on the search (none: reads all)."""
        if scope.principal.reads_all:
            return []
        parts: list[Select[Any]] = []
        if scope.own_numbers:
            parts.extend(number_selects(sorted(scope.own_numbers)))
        labels = sorted(scope.labels_with("list"))
        if labels:
            parts.append(
                select(RecordingLabel.recording_id).where(RecordingLabel.label_id.in_(labels))
            )
        if not parts:
            return [Recording.id.is_(None)]
        return [Recording.id.in_(union(*parts))]

    async def _filters(
        self, s: AsyncSession, q: Select[Any], f: SearchQuery, scope: Scope
    ) -> Select[Any]:
        q = filter_recordings(
            q,
            number=number_forms(f.number, self._cc) if f.number else None,
            since=as_utc(f.since) if f.since is not None else None,
            until=as_utc(f.until) if f.until is not None else None,
            states=[f.state] if f.state else None,
            where=self._visible(scope),
        )
        if f.user:
            q = q.where(recordings_with_number(sorted(await numbers_of_login(s, f.user))))
        if f.direction:
            q = q.where(Recording.direction == f.direction)
        if f.min_duration is not None:
            q = q.where(Recording.duration_s >= f.min_duration)
        if f.max_duration is not None:
            q = q.where(Recording.duration_s <= f.max_duration)
        if f.text:
            from siprec_recorder.transcription.search import matching_recordings, parse_text_query

            try:
                tq = parse_text_query(f.text)
            except ValueError as exc:
                raise BadRequest(str(exc)) from None
            q = q.where(Recording.id.in_(matching_recordings(tq, self._db.engine.dialect.name)))
        if f.case_id is not None:
            label_id = await s.scalar(select(Case.label_id).where(Case.id == f.case_id))
            q = q.where(
                Recording.id.in_(
                    select(RecordingLabel.recording_id).where(
                        RecordingLabel.label_id == (label_id or -1)
                    )
                )
            )
        if f.label_id is not None:
            q = q.where(
                Recording.id.in_(
                    select(RecordingLabel.recording_id).where(RecordingLabel.label_id == f.label_id)
                )
            )
        return q

    async def _labels_of(self, s: AsyncSession, ids: list[str]) -> dict[str, list[Label]]:
        out: dict[str, list[Label]] = {i: [] for i in ids}
        if not ids:
            return out
        rows = await s.execute(
            select(RecordingLabel.recording_id, Label)
            .join(Label, Label.id == RecordingLabel.label_id)
            .where(RecordingLabel.recording_id.in_(ids))
            .order_by(Label.title)
        )
        for rec_id, label in rows.all():
            out[rec_id].append(label)
        return out

    async def _owners(self, s: AsyncSession, numbers: set[str]) -> dict[str, str]:
        try:
            from siprec_recorder.policy.models import PolicyNumber
        except ImportError:  # pragma: no cover
            return {}
        if not numbers:
            return {}
        try:
            rows = await s.execute(
                select(PolicyNumber.number, User.login)
                .join(User, User.id == PolicyNumber.user_id)
                .where(PolicyNumber.number.in_(list(numbers)))
            )
        except Exception:
            await s.rollback()
            return {}
        return {n: login for n, login in rows.all()}

    def _json(
        self,
        rec: Recording,
        labels: list[Label],
        scope: Scope,
        owners: dict[str, str],
        *,
        full: bool = False,
    ) -> dict[str, Any]:
        numbers = _participant_numbers(rec)
        label_ids = {lb.id for lb in labels}
        doc: dict[str, Any] = {
            "id": rec.id,
            "call_id": rec.call_id,
            "start": as_utc(rec.start).isoformat(),
            "end": as_utc(rec.end).isoformat() if rec.end else None,
            "duration_s": rec.duration_s,
            "direction": rec.direction,
            "state": rec.state,
            "recorded_number": rec.recorded_number,
            "other_number": rec.other_number,
            "user": owners.get(rec.recorded_number or "")
            or next((owners[n] for n in sorted(numbers) if n in owners), None),
            "participants": [
                {"aor": p.aor, "number": p.number, "name": p.name, "role": p.role}
                for p in rec.participants
            ],
            "labels": [{"id": lb.id, "title": lb.title, "colour": lb.colour} for lb in labels],
            "has_audio": bool(rec.file) and rec.state in ("complete", "interrupted"),
            "can_play": scope.can_play(numbers, label_ids),
            "can_download": scope.can_download,
            "legal_hold": bool(rec.legal_hold),
        }
        if full:
            doc.update(
                {
                    "reason": rec.reason,
                    "file": rec.file,
                    "sha256": rec.sha256,
                    "size_bytes": rec.size_bytes,
                    "codec": rec.codec,
                    "beep": rec.beep,
                    "srtp": rec.srtp,
                    "key_id": rec.key_id,
                    "streams": [
                        {
                            "label": st.label,
                            "codec": st.codec,
                            "packets_received": st.packets_received,
                            "packets_lost": st.packets_lost,
                            "jitter_ms": st.jitter_ms,
                            "mos": st.mos,
                            "rejected_source": st.rejected_source,
                            "rejected_ssrc": st.rejected_ssrc,
                            "status": st.status,
                        }
                        for st in rec.streams
                    ],
                }
            )
        return doc

    async def search(self, scope: Scope, f: SearchQuery, max_page_size: int) -> dict[str, Any]:
        """One page of matching recordings, with the total count."""
        f.check(max_page_size)
        async with self._db.session() as s:
            base = await self._filters(s, select(Recording.id), f, scope)
            total = int(await s.scalar(select(func.count()).select_from(base.subquery())) or 0)
            col = SORT_COLUMNS[f.sort]
            ordering = [col.asc() if f.order == "asc" else col.desc(), Recording.id.asc()]
            q = await self._filters(s, select(Recording), f, scope)
            q = (
                q.options(selectinload(Recording.participants))
                .order_by(*ordering)
                .limit(f.page_size)
                .offset((f.page - 1) * f.page_size)
            )
            recs = list((await s.execute(q)).scalars())
            labels = await self._labels_of(s, [r.id for r in recs])
            owners = await self._owners(s, set().union(*(_participant_numbers(r) for r in recs)))
            items = [self._json(r, labels[r.id], scope, owners) for r in recs]
        pages = max(1, -(-total // f.page_size))
        return {
            "total": total,
            "page": f.page,
            "page_size": f.page_size,
            "pages": pages,
            "sort": f.sort,
            "order": f.order,
            "items": items,
        }

    async def get(self, scope: Scope, recording_id: str) -> dict[str, Any]:
        """One recording the principal may see; 404 when it does not exist, 403 when hidden."""
        async with self._db.session() as s:
            rec = (
                await s.execute(
                    select(Recording)
                    .where(Recording.id == recording_id)
                    .options(selectinload(Recording.participants), selectinload(Recording.streams))
                )
            ).scalar_one_or_none()
            if rec is None:
                raise NotFound(f"no recording {recording_id}")
            labels = (await self._labels_of(s, [rec.id]))[rec.id]
            numbers = _participant_numbers(rec)
            if not scope.can_list(numbers, {lb.id for lb in labels}):
                raise Forbidden("you may not see this recording")
            owners = await self._owners(s, numbers)
            return self._json(rec, labels, scope, owners, full=True)

    async def transcript_hits(
        self, query: Any, recording_ids: list[str]
    ) -> dict[str, list[dict[str, Any]]]:
        """The transcript segments of each of ``recording_ids`` that match ``query`` (a
        ``transcription.search.TextQuery``), as hits."""
        from siprec_recorder.transcription.search import hits_for

        async with self._db.session() as s:
            return await hits_for(s, query, recording_ids)

    def audio_path(self, doc: dict[str, Any]) -> Path:
        """The file of a recording (checked to stay inside the recordings folder)."""
        rel = doc.get("file")
        if not rel or not doc.get("has_audio"):
            raise NotFound("this recording has no audio file")
        root = self._root.resolve()
        path = (root / str(rel)).resolve()
        if root not in path.parents or not path.is_file():
            raise NotFound("the audio file of this recording is missing")
        return path

    async def audio(self, doc: dict[str, Any], keyring: Any) -> Path | bytes | StoredAudio:
        """The audio of a recording: its path when stored in clear, else the decrypted bytes;
        a recording already moved to the object store is streamed from there."""
        if self._store is not None and not self._store.is_local:
            try:
                self.audio_path(doc)
            except NotFound:
                return await self._stored_audio(doc, keyring)
        path = self.audio_path(doc)
        with path.open("rb") as fh:
            head = fh.read(16)
        if doc.get("key_id") is None and not head.startswith(b"SRENC\x00"):
            return path
        from siprec_recorder.compliance.crypto import DecryptionError, decrypt_for

        blob = await asyncio.to_thread(path.read_bytes)
        try:
            return await asyncio.to_thread(decrypt_for, blob, keyring, doc.get("key_id"))
        except DecryptionError as exc:
            raise Unavailable(f"cannot decrypt this recording: {exc}") from None

    async def _stored_audio(self, doc: dict[str, Any], keyring: Any) -> bytes | StoredAudio:
        from siprec_recorder.storage.objects import StoreError

        rel = doc.get("file")
        if not rel or not doc.get("has_audio"):
            raise NotFound("this recording has no audio file")
        try:
            info = await self._store.head(str(rel))
        except StoreError as exc:
            raise Unavailable(f"the object store cannot be reached: {exc}") from None
        if info is None:
            raise NotFound("the audio file of this recording is missing")
        if doc.get("key_id") is None:
            return StoredAudio(self._store, str(rel), info.size)
        from siprec_recorder.compliance.crypto import DecryptionError, decrypt_for

        blob = await self._store.read(str(rel))  # decryption needs the whole object
        try:
            return await asyncio.to_thread(decrypt_for, blob, keyring, doc.get("key_id"))
        except DecryptionError as exc:
            raise Unavailable(f"cannot decrypt this recording: {exc}") from None

    def waveform(self, doc: dict[str, Any]) -> dict[str, Any]:
        """The peaks kept in the recording's sidecar at finalisation (404 when none)."""
        import json

        from siprec_recorder.storage.files import FileLayout

        path = self.audio_path(doc)
        side = path.with_name(Path(FileLayout.sidecar_of(path.name)).name)
        try:
            wave = json.loads(side.read_text(encoding="utf-8")).get("waveform")
        except (OSError, ValueError):
            wave = None
        if not isinstance(wave, dict) or not isinstance(wave.get("channels"), list):
            raise NotFound("no waveform for this recording")
        return {"duration_s": doc.get("duration_s"), **wave}
