"""Integrity check of the whole store: files against the index, and the ledger chain.

Theory of operation
-------------------
:func:`verify` walks the index and the recordings tree and reports every :class:`Problem`:

* ``missing``: a finished recording's file (or its sidecar) is not on disk (rows in state
  ``purged``, disposed of after retention, are expected to have none);
* ``modified``: a file's SHA-256 (or size) differs from the one indexed when it was written;
* ``unknown``: an ``.mp3`` in the tree (the spool excluded) that no index row points to;
* ``chain``: the audit ledger's hash chain is broken (see :mod:`.ledger`).

Hashing is blocking I/O and runs in a worker thread, one file at a time, so the check can run
beside a live recorder. It reads only; repairing is a human decision.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sqlalchemy import select

from siprec_recorder.errors import LocalProtocolError

from .db import Database
from .files import FileLayout
from .ledger import verify_chain
from .models import Recording

__all__ = ["Problem", "ProblemKind", "sha256_file", "verify"]

ProblemKind = Literal["modified", "missing", "unknown", "chain"]
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


async def verify(db: Database, layout: FileLayout, *, check_ledger: bool = True) -> list[Problem]:
    """Every problem found (``[]`` when the store is intact)."""
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
                )
                .where(Recording.file.is_not(None))
                .order_by(Recording.start, Recording.id)
            )
        ).all()
        chain = await verify_chain(session) if check_ledger else []
    known: set[str] = set()
    for state, file, sidecar, sha, size in rows:
        if file is None:
            continue
        known.add(file)
        problem = await asyncio.to_thread(_check_file, layout, file, sha, size)
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
            except LocalProtocolError as exc:
                problems.append(Problem("modified", sidecar, f"sidecar path: {exc}"))
    on_disk = await asyncio.to_thread(lambda: list(layout.iter_recordings()))
    for rel in on_disk:
        if rel not in known:
            problems.append(Problem("unknown", rel, "not in the index"))
    problems.extend(Problem("chain", "ledger", message) for message in chain)
    return problems
