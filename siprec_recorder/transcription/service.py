"""The transcription queue and its workers, beside the recorder but never in its way.

Theory of operation
-------------------
When a recording is indexed the SRS calls :meth:`TranscriptionService.enqueue`: if the
finaliser left per-leg audio for it and no exclusion applies (``exclude_numbers``, or a
policy template in ``exclude_templates``), a ``pending`` row goes into
``transcription_jobs``; otherwise the audio is deleted and the row says ``skipped``. The
queue is the table, so it survives restarts: on start, this node's ``running`` jobs go back
to ``pending``.

One asyncio task claims pending jobs of this node, oldest first, while fewer than
``max_workers`` run, and hands each to a process pool whose workers are niced and load the
model once (:mod:`.engine`). The recorder's own event loop only does the claim, the storing
of the result and the bookkeeping: a few statements per recording. Finalisation has its own
pool, so a long transcription backlog never delays a recording, and packet reception never
waits on either. A job that fails is retried up to ``max_attempts`` times, then ``failed``
with the error; its audio is deleted then too (the recording itself is unaffected).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import multiprocessing
import os
import socket
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ..storage.db import Database
from ..storage.files import FileLayout
from ..storage.models import utcnow
from .legaudio import LEGS_FILE, remove_leg_audio
from .models import TranscriptionJob
from .store import recording_with_participants

__all__ = ["AUDIO_DIR", "TranscriptionService", "TranscriptionSettings"]

log = logging.getLogger("siprec_recorder.transcription")

AUDIO_DIR = ".transcribe"  # under the recordings folder: per-leg audio awaiting transcription


@dataclass(frozen=True, slots=True)
class TranscriptionSettings:
    """What the service needs (built by app.py from ``[transcription]``)."""

    model_path: str
    model_sha256: str = ""
    languages: tuple[str, ...] = ()
    max_workers: int = 1
    threads_per_worker: int = 1
    nice: int = 10
    beam_size: int = 1
    max_attempts: int = 3
    exclude_numbers: tuple[str, ...] = ()
    exclude_templates: tuple[str, ...] = ()
    poll_interval: float = 2.0


def _excluded(numbers: Sequence[str], patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(n, p) for n in numbers for p in patterns)


class TranscriptionService:
    """Queue, claim, transcribe (in worker processes), store."""

    def __init__(
        self,
        db: Database,
        recordings_root: Path,
        settings: TranscriptionSettings,
        keyring: Any = None,
        *,
        node: str | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.db = db
        self.layout = FileLayout(recordings_root)
        self.audio_root = Path(recordings_root) / AUDIO_DIR
        self.settings = settings
        self.keyring = keyring
        self.node = node or socket.gethostname()
        self.executor = executor
        self.backlog = 0  # pending + running jobs of this node (a gauge for /metrics)
        self.done = 0
        self.failed = 0
        self.audio_seconds = 0.0
        self.cpu_seconds = 0.0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._model_checked = False

    # -- life cycle -------------------------------------------------------------------

    async def check_model(self) -> None:
        """Refuse a missing or unpinned model; ``serve`` calls this before it touches the index."""
        from .engine import check_model

        # A wrong model must stop the start with one line, not break every worker later.
        await asyncio.to_thread(check_model, self.settings.model_path, self.settings.model_sha256)
        self._model_checked = True

    async def start(self) -> None:
        from .engine import init_worker

        if not self._model_checked:
            await self.check_model()
        self.audio_root.mkdir(parents=True, exist_ok=True)
        async with self.db.session() as session:
            await session.execute(
                update(TranscriptionJob)
                .where(TranscriptionJob.state == "running", TranscriptionJob.node == self.node)
                .values(state="pending")
            )
            await session.commit()
        if self.executor is None:
            s = self.settings
            ctx = multiprocessing.get_context("spawn" if os.name != "posix" else "forkserver")
            self.executor = ProcessPoolExecutor(
                max_workers=s.max_workers,
                mp_context=ctx,
                initializer=init_worker,
                initargs=(s.model_path, s.model_sha256, s.threads_per_worker, s.nice, os.getpid()),
            )
        await self._count_backlog()
        self._task = asyncio.create_task(self._run(), name="transcription")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for t in list(self._running):
            t.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
        if self.executor is not None:
            # Running jobs are abandoned (they are 'running' rows: pending again at start).
            self.executor.shutdown(wait=False, cancel_futures=True)
            if isinstance(self.executor, ProcessPoolExecutor):
                for proc in list(getattr(self.executor, "_processes", {}).values()):
                    with contextlib.suppress(Exception):
                        proc.terminate()

    # -- the queue --------------------------------------------------------------------

    async def enqueue(self, rec_id: str) -> None:
        """Queue ``rec_id`` if the finaliser left its legs' audio (called once indexed)."""
        if not (self.audio_root / rec_id / LEGS_FILE).is_file():
            return
        skip = await self._exclusion(rec_id)
        values: dict[str, Any] = {"recording_id": rec_id, "node": self.node, "state": "pending"}
        if skip is not None:
            values.update(state="skipped", error=skip, finished_at=utcnow())
        async with self.db.session() as session:
            dialect = session.get_bind().dialect.name
            ins: Any = (postgresql if dialect == "postgresql" else sqlite).insert(TranscriptionJob)
            await session.execute(
                ins.values(enqueued_at=utcnow(), attempts=0, **values).on_conflict_do_nothing()
            )
            await session.commit()
        if skip is not None:
            await asyncio.to_thread(remove_leg_audio, self.audio_root, rec_id)
            return
        self.backlog += 1
        self._wake.set()

    async def _exclusion(self, rec_id: str) -> str | None:
        s = self.settings
        if not (s.exclude_numbers or s.exclude_templates):
            return None
        async with self.db.session() as session:
            rec = await recording_with_participants(session, rec_id)
            if rec is None:
                return "recording not found"
            numbers = [n for n in [rec.recorded_number, rec.other_number] if n]
            numbers += [p.number for p in rec.participants if p.number]
            if _excluded(numbers, s.exclude_numbers):
                return "number excluded from transcription"
            if s.exclude_templates and numbers:
                from ..policy.models import PolicyNumber, PolicyTemplate

                names = (
                    await session.scalars(
                        select(PolicyTemplate.name)
                        .join(PolicyNumber, PolicyNumber.template_id == PolicyTemplate.id)
                        .where(PolicyNumber.number.in_(numbers))
                    )
                ).all()
                if set(names) & set(s.exclude_templates):
                    return "policy template excluded from transcription"
        return None

    async def _count_backlog(self) -> None:
        async with self.db.session() as session:
            self.backlog = int(
                await session.scalar(
                    select(func.count())
                    .select_from(TranscriptionJob)
                    .where(
                        TranscriptionJob.node == self.node,
                        TranscriptionJob.state.in_(("pending", "running")),
                    )
                )
                or 0
            )

    async def _claim(self, limit: int) -> list[str]:
        async with self.db.session() as session:
            ids = list(
                (
                    await session.scalars(
                        select(TranscriptionJob.recording_id)
                        .where(
                            TranscriptionJob.node == self.node,
                            TranscriptionJob.state == "pending",
                        )
                        .order_by(TranscriptionJob.enqueued_at, TranscriptionJob.recording_id)
                        .limit(limit)
                    )
                ).all()
            )
            claimed = []
            for rec_id in ids:
                result = await session.execute(
                    update(TranscriptionJob)
                    .where(
                        TranscriptionJob.recording_id == rec_id,
                        TranscriptionJob.state == "pending",
                    )
                    .values(state="running", attempts=TranscriptionJob.attempts + 1)
                )
                if getattr(result, "rowcount", 0) == 1:
                    claimed.append(rec_id)
            await session.commit()
        return claimed

    async def _run(self) -> None:
        while not self._stopping:
            free = self.settings.max_workers - len(self._running)
            if free > 0:
                try:
                    for rec_id in await self._claim(free):
                        task = asyncio.create_task(self._do(rec_id), name=f"transcribe-{rec_id}")
                        self._running.add(task)
                        task.add_done_callback(self._job_done)
                    await self._count_backlog()
                except Exception:
                    log.exception("transcription queue: cannot claim jobs")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_interval)

    def _job_done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._wake.set()

    async def _do(self, rec_id: str) -> None:
        from .engine import transcribe_recording
        from .store import store_transcript

        s = self.settings
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(
                self.executor,
                transcribe_recording,
                str(self.audio_root),
                rec_id,
                list(s.languages),
                s.beam_size,
                self.keyring,
            )
            rel = await store_transcript(self.db, self.layout, rec_id, result, self.keyring)
            if rel is None:
                await self._set_state(rec_id, "skipped", "recording has no file any more")
            self.audio_seconds += float(result.get("audio_s") or 0)
            self.cpu_seconds += float(result.get("cpu_s") or 0)
            self.done += 1
            await asyncio.to_thread(remove_leg_audio, self.audio_root, rec_id)
            log.info(
                "recording %s: transcript stored (%s, %.1f s of audio in %.1f CPU s)",
                rec_id,
                rel,
                result.get("audio_s", 0.0),
                result.get("cpu_s", 0.0),
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._failed(rec_id, exc)

    async def _failed(self, rec_id: str, exc: BaseException) -> None:
        async with self.db.session() as session:
            attempts = int(
                await session.scalar(
                    select(TranscriptionJob.attempts).where(TranscriptionJob.recording_id == rec_id)
                )
                or 0
            )
        final = attempts >= self.settings.max_attempts
        log.warning("recording %s: transcription failed (attempt %d): %s", rec_id, attempts, exc)
        await self._set_state(rec_id, "failed" if final else "pending", str(exc)[:2000])
        if final:
            self.failed += 1
            await asyncio.to_thread(remove_leg_audio, self.audio_root, rec_id)

    async def _set_state(self, rec_id: str, state: str, error: str | None) -> None:
        values: dict[str, Any] = {"state": state, "error": error}
        if state in ("failed", "skipped", "done"):
            values["finished_at"] = utcnow()
        async with self.db.session() as session:
            await session.execute(
                update(TranscriptionJob)
                .where(TranscriptionJob.recording_id == rec_id)
                .values(**values)
            )
            await session.commit()
