"""Integrity check of the whole store: files against the index, and the ledger chain.

Theory of operation
-------------------
:func:`verify` walks the index and the recordings tree and reports every :class:`Problem`:

* ``missing``: a finished recording's file (or its sidecar, or a raw-RTP capture its sidecar
  names) is not on disk (rows in state ``purged``, disposed of after retention, are expected
  to have none);
* ``modified``: a file's SHA-256 (or size) differs from the one indexed when it was written;
  for the raw RTP of a leg whose codec could not be decoded (``<mp3>.leg<n>.pcap``), from the
  one its sidecar stream records under ``raw_rtp``;
* ``unknown``: an ``.mp3`` in the tree (the spool excluded) that no index row points to;
* ``chain``: the audit ledger's hash chain is broken (see :mod:`.ledger`);
* ``unprotected``: (object store with Object Lock) an object's retention, as the store
  reports it, ends before the recording's ``retention_until``, or a held recording's object
  has no legal hold.

With an object store, a recording no longer in the local folder (uploaded) is checked in the
store instead: the SHA-256 and size the store reports for the object against the index.

Hashing is blocking I/O and runs in a worker thread, one file at a time, so the check can run
beside a live recorder. It reads only; repairing is a human decision.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import posixpath
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select

from siprec_recorder.errors import LocalProtocolError

from .db import Database
from .files import FileLayout
from .ledger import verify_chain
from .models import Recording

__all__ = ["Problem", "ProblemKind", "sha256_file", "verify"]

ProblemKind = Literal["modified", "missing", "unknown", "chain", "unprotected"]
_BLOCK = 1 << 20


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the store: ``subject`` is a relative path or ``ledger``."""

    kind: ProblemKind
    subject: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.subject}: {self.detail}"


def sha256_file(path: Path | str) -> tuple[str, int]:
    """``(sha256 hex, size in bytes)`` of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _check_file(layout: FileLayout, rel: str, sha: str | None, size: int | None) -> Problem | None:
    try:
        path = layout.absolute(rel)
    except LocalProtocolError as exc:
        return Problem("modified", rel, f"indexed path is not inside the store: {exc}")
    try:
        actual_sha, actual_size = sha256_file(path)
    except FileNotFoundError:
        return Problem("missing", rel, "file not found")
    except IsADirectoryError:
        return Problem("missing", rel, "a folder stands where the file should be")
    if sha is not None and actual_sha != sha:
        return Problem("modified", rel, f"sha256 {actual_sha} differs from indexed {sha}")
    if size is not None and actual_size != size:
        return Problem("modified", rel, f"size {actual_size} differs from indexed {size}")
    return None


def _is_local(layout: FileLayout, rel: str) -> bool:
    try:
        return layout.absolute(rel).is_file()
    except LocalProtocolError:
        return False


def _check_raw_rtp(layout: FileLayout, sidecar: str) -> list[Problem]:
    """The raw-RTP captures a sidecar names, against the hashes it gives for them."""
    try:
        doc = json.loads(layout.absolute(sidecar).read_bytes())
    except (OSError, ValueError):
        return [Problem("modified", sidecar, "sidecar is not readable JSON")]
    streams = doc.get("streams") if isinstance(doc, dict) else None
    problems: list[Problem] = []
    for stream in streams if isinstance(streams, list) else []:
        raw = stream.get("raw_rtp") if isinstance(stream, dict) else None
        if not isinstance(raw, dict):
            continue
        name = raw.get("file")
        if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
            problems.append(Problem("modified", sidecar, f"raw_rtp names no file: {name!r}"))
            continue
        rel = posixpath.join(posixpath.dirname(sidecar), name)
        sha, size = raw.get("sha256"), raw.get("size_bytes")
        problem = _check_file(
            layout,
            rel,
            sha if isinstance(sha, str) else None,
            size if isinstance(size, int) else None,
        )
        if problem is not None:
            problems.append(problem)
    return problems


async def _check_object(
    store: Any,
    rel: str,
    sha: str | None,
    size: int | None,
    retention_until: datetime | None = None,
    legal_hold: bool = False,
) -> Problem | None:
    from .objects import StoreError

    try:
        info = await store.head(rel)
    except StoreError as exc:
        return Problem("missing", rel, f"object store: {exc}")
    if info is None:
        return Problem("missing", rel, f"neither in the folder nor in {store.url}")
    if info.sha256 is None:
        return Problem("modified", rel, "the object store keeps no SHA-256 of this object")
    if sha is not None and info.sha256 != sha:
        return Problem("modified", rel, f"stored sha256 {info.sha256} differs from indexed {sha}")
    if size is not None and info.size != size:
        return Problem("modified", rel, f"stored size {info.size} differs from indexed {size}")
    if getattr(getattr(store, "settings", None), "object_lock", ""):
        if retention_until is not None:
            wanted = (
                retention_until if retention_until.tzinfo else retention_until.replace(tzinfo=UTC)
            )
            if info.retain_until is None or info.retain_until < wanted - timedelta(seconds=1):
                return Problem(
                    "unprotected", rel, f"store retention {info.retain_until} < {wanted}"
                )
        if legal_hold and not info.legal_hold:
            return Problem("unprotected", rel, "held, but the store has no legal hold on it")
    return None


async def verify(
    db: Database, layout: FileLayout, *, check_ledger: bool = True, store: Any = None
) -> list[Problem]:
    """Every problem found (``[]`` when the store is intact); ``store``: the object store
    finished recordings are uploaded to (None or a folder store: the folder only)."""
    remote = store is not None and not store.is_local
    problems: list[Problem] = []
    async with db.session() as session:
        rows = (
            await session.execute(
                select(
                    Recording.state,
                    Recording.file,
                    Recording.sidecar,
                    Recording.sha256,
                    Recording.size_bytes,
                    Recording.retention_until,
                    Recording.legal_hold,
                )
                .where(Recording.file.is_not(None))
                .order_by(Recording.start, Recording.id)
            )
        ).all()
        chain = await verify_chain(session) if check_ledger else []
    known: set[str] = set()
    for state, file, sidecar, sha, size, until, held in rows:
        if file is None:
            continue
        known.add(file)
        problem = await asyncio.to_thread(_check_file, layout, file, sha, size)
        if remote and problem is not None and problem.kind == "missing":
            problem = await _check_object(store, file, sha, size, until, bool(held))
            if state == "purged" and problem is not None and problem.kind == "missing":
                continue
            if sidecar and state != "purged" and not _is_local(layout, sidecar):
                if await store.head(sidecar) is None:
                    problems.append(Problem("missing", sidecar, "sidecar not in the store"))
                sidecar = None
        if state == "purged":
            # Disposed of after retention (in the ledger); a purge cut short by a crash
            # leaves the path in the row until it is resumed. Not a problem either way.
            if problem is not None and problem.kind == "missing":
                continue
        if problem is not None:
            problems.append(problem)
        if sidecar and state != "purged":
            try:
                if not layout.absolute(sidecar).is_file():
                    problems.append(Problem("missing", sidecar, "sidecar not found"))
                else:
                    problems += await asyncio.to_thread(_check_raw_rtp, layout, sidecar)
            except LocalProtocolError as exc:
                problems.append(Problem("modified", sidecar, f"sidecar path: {exc}"))
    on_disk = await asyncio.to_thread(lambda: list(layout.iter_recordings()))

    for rel in on_disk:
        if rel not in known:
            problems.append(Problem("unknown", rel, "not in the index"))
    problems.extend(Problem("chain", "ledger", message) for message in chain)
    return problems
