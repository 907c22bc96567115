"""Moves finished recordings from the local folder into the object store, never losing one.

Theory of operation
-------------------
The local recordings folder is the queue: every ``.mp3`` in it (the spool excluded) whose
index row is finished (a SHA-256 recorded, not ``recording``) is due. For each, the companions
go first (the JSON sidecar and any kept raw RTP), the MP3 last, each with Object Lock
retention until the row's ``retention_until`` and the row's legal hold; every upload is checked
against our SHA-256 by the store (:meth:`ObjectStore.put_file`). Only when all of a recording's
objects are stored and verified are its local files removed, MP3 last. A crash at any point
leaves the local files, and the next pass (or the next start) uploads them again: a repeated
upload is harmless (same bytes, same key).

A failed pass is logged, counted, and retried with exponential backoff (1 s to
``max_backoff``); nothing is dropped, and ``pending`` tells monitoring how many recordings
wait. The MP3 is checked against the index before it is sent: a local file that no longer
matches its recorded SHA-256 stays where it is for ``verify`` to report.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from .db import Database
from .files import FileLayout
from .models import Recording
from .objects import ObjectStore, _sha256_file

__all__ = ["UploadCounters", "Uploader", "sync_protection"]

log = logging.getLogger("siprec_recorder.storage")


@dataclass
class UploadCounters:
    """What monitoring reads (``/metrics``)."""

    uploaded: int = 0  # recordings whose every object is stored and verified
    objects: int = 0
    bytes: int = 0
    failures: int = 0  # failed attempts (each retried)
    pending: int = 0  # recordings waiting in the local folder at the last pass
    last_error: str = ""


class Uploader:
    """The background task that empties the local folder into ``store``."""

    def __init__(
        self,
        db: Database,
        root: Path,
        store: ObjectStore,
        *,
        retention_years: int = 5,
        interval: float = 2.0,
        max_backoff: float = 30.0,
        concurrency: int = 4,
    ) -> None:
        self.db = db
        self.layout = FileLayout(root)
        self.store = store
        self.retention_years = retention_years
        self.interval = interval
        self.max_backoff = max_backoff
        self.concurrency = concurrency
        self.counters = UploadCounters()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="uploader")

    async def stop(self, *, drain_timeout: float = 10.0) -> None:
        """One last pass (bounded), then stop; what is left stays for the next start."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, drain_timeout)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._task
        await self.store.close()

    async def _run(self) -> None:
        backoff = 1.0
        while True:
            try:
                failed = await self.run_once()
            except Exception as exc:  # noqa: BLE001 - the loop must outlive any store fault
                failed = 1
                self.counters.failures += 1
                self.counters.last_error = str(exc)
                log.warning("upload pass failed, will retry: %s", exc)
            if self._stopping:
                return
            delay = self.interval if not failed else backoff
            backoff = 1.0 if not failed else min(backoff * 2, self.max_backoff)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def run_once(self) -> int:
        """Upload everything due; the number of recordings that failed (and wait for later)."""
        local = await asyncio.to_thread(lambda: list(self.layout.iter_recordings()))
        due = await self._rows(local)
        self.counters.pending = len(due)
        if not due:
            return 0
        sem = asyncio.Semaphore(self.concurrency)
        failed = 0

        async def one(row: Any) -> None:
            nonlocal failed
            async with sem:
                try:
                    await self._upload(row)
                except Exception as exc:  # noqa: BLE001 - counted and retried
                    failed += 1
                    self.counters.failures += 1
                    self.counters.last_error = f"{row.file}: {exc}"
                    log.warning("upload of %s failed, will retry: %s", row.file, exc)

        await asyncio.gather(*(one(r) for r in due))
        self.counters.pending = failed
        return failed

    async def _rows(self, local: list[str]) -> list[Any]:
        by_id: dict[str, str] = {}
        for rel in local:
            rec_id = rel.rsplit("_", 1)[-1][: -len(".mp3")]
            by_id[rec_id] = rel
        rows: list[Any] = []
        ids = list(by_id)
        async with self.db.session() as session:
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                result = await session.execute(
                    select(
                        Recording.id,
                        Recording.file,
                        Recording.sidecar,
                        Recording.sha256,
                        Recording.state,
                        Recording.start,
                        Recording.retention_until,
                        Recording.legal_hold,
                    ).where(Recording.id.in_(chunk))
                )
                for row in result:
                    if row.file == by_id.get(row.id) and row.sha256 and row.state != "recording":
                        rows.append(row)
        return rows

    def _retain_until(self, row: Any) -> datetime:
        if row.retention_until is not None:
            until: datetime = row.retention_until
            return until if until.tzinfo else until.replace(tzinfo=UTC)
        start: datetime = row.start if row.start.tzinfo else row.start.replace(tzinfo=UTC)
        return start + timedelta(days=round(365.25 * self.retention_years))

    async def _upload(self, row: Any) -> None:
        mp3 = self.layout.absolute(row.file)
        sha, size = await asyncio.to_thread(_sha256_file, mp3)
        if sha != row.sha256:
            raise RuntimeError("local file does not match the index (left for verify)")
        until = self._retain_until(row)
        hold = bool(row.legal_hold)
        companions: list[str] = []
        if row.sidecar:
            companions.append(row.sidecar)
        base = row.file[: -len(".mp3")]
        for name in sorted(os.listdir(mp3.parent)):
            rel = f"{os.path.dirname(row.file)}/{name}"
            if rel.startswith(base + ".leg") and rel.endswith(".pcap"):
                companions.append(rel)
        for rel in companions:
            path = self.layout.absolute(rel)
            if not path.is_file():
                continue  # uploaded and removed by an earlier, interrupted pass
            c_sha, c_size = await asyncio.to_thread(_sha256_file, path)
            await self.store.put_file(rel, path, sha256=c_sha, retain_until=until, legal_hold=hold)
            self.counters.objects += 1
            self.counters.bytes += c_size
        await self.store.put_file(row.file, mp3, sha256=sha, retain_until=until, legal_hold=hold)
        self.counters.objects += 1
        self.counters.bytes += size
        for rel in companions:
            self.layout.absolute(rel).unlink(missing_ok=True)
        mp3.unlink()
        self.counters.uploaded += 1
        self._prune(mp3.parent, row.start)

    def _prune(self, day_dir: Path, start: datetime) -> None:
        """Remove the emptied ``{number}/{YYYY}/{MM}/{DD}`` folders of past days, so that the
        queue's walk stays as small as the queue. Today's and yesterday's are kept: a call
        being finished right now may be about to write into them."""
        start = start if start.tzinfo else start.replace(tzinfo=UTC)
        if datetime.now(UTC) - start < timedelta(days=2):
            return
        root = self.layout.root.resolve()
        current = day_dir.resolve()
        for _ in range(4):
            if current == root or root not in current.parents:
                return
            try:
                current.rmdir()
            except OSError:
                return
            current = current.parent


async def sync_protection(
    db: Database, store: ObjectStore, rec_ids: list[str], *, retention_years: int = 5
) -> list[str]:
    """Give the stored objects of ``rec_ids`` the legal hold and retention their index rows
    have now (after a hold, a release or an extension); the errors, one line each. A recording
    not uploaded yet needs nothing: its upload reads the row."""
    errors: list[str] = []
    if store.is_local or not rec_ids:
        return errors
    helper = Uploader(db, Path("."), store, retention_years=retention_years)
    async with db.session() as session:
        rows = (
            await session.execute(
                select(
                    Recording.id,
                    Recording.file,
                    Recording.sidecar,
                    Recording.start,
                    Recording.retention_until,
                    Recording.legal_hold,
                ).where(Recording.id.in_(rec_ids))
            )
        ).all()
    for row in rows:
        until = helper._retain_until(row)
        for key in (row.file, row.sidecar):
            if not key:
                continue
            try:
                await store.protect(key, until, bool(row.legal_hold))
            except Exception as exc:  # noqa: BLE001 - reported; verify shows it too
                errors.append(f"{row.id}: {exc}")
    return errors
