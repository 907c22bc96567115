"""Where finished recordings live on disk, and how they get there without ever being torn.

Theory of operation
-------------------
Layout (DESIGN.md section 5)::

    {root}/{number}/{YYYY}/{MM}/{DD}/{start:%Y%m%dT%H%M%SZ}_{direction}_{other}_{id}.mp3
    {root}/{number}/{YYYY}/{MM}/{DD}/{start:%Y%m%dT%H%M%SZ}_{direction}_{other}_{id}.json
    {root}/{number}/{YYYY}/{MM}/{DD}/{start:%Y%m%dT%H%M%SZ}_{direction}_{other}_{id}.leg{n}.pcap

The ``.leg{n}.pcap`` files (n: the leg's position in the call, from 1) exist only for legs
whose codec could not be decoded: their RTP as received, kept because the MP3 has silence
there (the sidecar names them; retention deletes them with the MP3).

``number`` is the recorded party, ``other`` the far end. Every path part is built from digits
(:func:`path_safe`: only ``0-9`` survive, ``unknown`` when none do), a UTC timestamp, a
direction from a fixed set, and the generated recording id (checked against a strict
pattern). No string from SIP or XML reaches the file system as-is, and every path is
checked, after resolution, to lie inside ``root``.

Writes are atomic: the data goes to ``<name>.part`` in the target folder, is fsync'd, renamed
over the final name with ``os.replace`` and the folder is fsync'd, so a reader (or a crash)
sees either nothing or the whole file. :meth:`FileLayout.cleanup_parts` removes ``.part`` files
left by a crash; ``.spool`` (the live spool) is never touched by it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from siprec_recorder.errors import LocalProtocolError

__all__ = ["FileLayout", "PART_SUFFIX", "SPOOL_DIR", "fsync_dir", "path_safe"]

PART_SUFFIX = ".part"
SPOOL_DIR = ".spool"
_MAX_DIGITS = 32
_ID_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]{0,63}")
_DIRECTIONS = frozenset({"in", "out", "unknown"})


def path_safe(number: str | None) -> str:
    """Only the digits of ``number`` (at most 32); ``unknown`` when there are none.

    Same contract as ``siprec_recorder.phone.path_safe_digits`` (kept here so that storage
    imports nothing above it).
    """
    if not number:
        return "unknown"
    digits = "".join(ch for ch in number if "0" <= ch <= "9")[:_MAX_DIGITS]
    return digits or "unknown"


def fsync_dir(path: Path) -> None:
    """fsync a folder so that a rename inside it is durable (no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class FileLayout:
    """The recordings tree under ``root``."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._resolved_root = self.root.resolve()

    # -- naming -------------------------------------------------------------------------

    def relative_path(
        self,
        recorded_number: str | None,
        start: datetime,
        direction: str,
        other_number: str | None,
        rec_id: str,
    ) -> str:
        """The ``/``-separated path of a recording's MP3, relative to ``root``.

        ``start`` is converted to UTC (a naive value is taken as UTC already). ``direction``
        outside ``in``/``out``/``unknown`` becomes ``unknown``. ``rec_id`` must be a generated
        id (letters, digits, ``_``, ``-``; at most 64), else :class:`LocalProtocolError`.
        """
        if not _ID_RE.fullmatch(rec_id):
            raise LocalProtocolError(f"not a recording id: {rec_id!r}")
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        start = start.astimezone(UTC)
        direction = direction if direction in _DIRECTIONS else "unknown"
        number = path_safe(recorded_number)
        name = f"{start:%Y%m%dT%H%M%SZ}_{direction}_{path_safe(other_number)}_{rec_id}.mp3"
        rel = f"{number}/{start:%Y}/{start:%m}/{start:%d}/{name}"
        self.absolute(rel)  # asserts containment
        return rel

    @staticmethod
    def sidecar_of(rel_mp3: str) -> str:
        """The sidecar path of an MP3 path (same name, ``.json``)."""
        base = rel_mp3[: -len(".mp3")] if rel_mp3.endswith(".mp3") else rel_mp3
        return base + ".json"

    @staticmethod
    def raw_rtp_of(rel_mp3: str, leg_number: int) -> str:
        """The path of leg ``leg_number``'s kept RTP (a pcap) beside an MP3 path."""
        if leg_number < 1:
            raise LocalProtocolError(f"leg numbers start at 1, not {leg_number}")
        base = rel_mp3[: -len(".mp3")] if rel_mp3.endswith(".mp3") else rel_mp3
        return f"{base}.leg{leg_number}.pcap"

    def raw_rtp_files(self, rel_mp3: str) -> list[str]:
        """The kept-RTP files of an MP3 path that are on disk, sorted."""
        path = self.absolute(rel_mp3)
        base = path.name[: -len(".mp3")] if path.name.endswith(".mp3") else path.name
        pattern = re.compile(re.escape(base) + r"\.leg[1-9][0-9]*\.pcap")
        try:
            names = os.listdir(path.parent)
        except FileNotFoundError:
            return []
        folder = rel_mp3.rsplit("/", 1)[0] + "/" if "/" in rel_mp3 else ""
        return sorted(folder + name for name in names if pattern.fullmatch(name))

    def absolute(self, rel: str) -> Path:
        """``root / rel``, refusing any path that resolves outside ``root``."""
        if not rel or rel.startswith(("/", "\\")) or "\x00" in rel:
            raise LocalProtocolError(f"not a relative recording path: {rel!r}")
        path = (self._resolved_root / rel).resolve()
        if path == self._resolved_root or not path.is_relative_to(self._resolved_root):
            raise LocalProtocolError(f"path escapes the recordings folder: {rel!r}")
        return path

    # -- writing ------------------------------------------------------------------------

    def write_atomic(self, rel: str, data: bytes) -> tuple[str, int]:
        """Write ``data`` to ``rel`` atomically; returns ``(sha256 hex, size)``."""
        final = self.absolute(rel)
        final.parent.mkdir(parents=True, exist_ok=True)
        part = final.with_name(final.name + PART_SUFFIX)
        digest = hashlib.sha256(data).hexdigest()
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            part.unlink(missing_ok=True)
            raise
        os.close(fd)
        os.replace(part, final)
        fsync_dir(final.parent)
        return digest, len(data)

    def write_sidecar(self, rel_mp3: str, doc: dict[str, Any]) -> str:
        """Write the JSON sidecar of ``rel_mp3`` atomically; returns the sidecar's path."""
        rel = self.sidecar_of(rel_mp3)
        data = json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False).encode("utf-8")
        self.write_atomic(rel, data + b"\n")
        return rel

    # -- maintenance ----------------------------------------------------------------------

    def iter_recordings(self) -> Iterator[str]:
        """Relative paths of every ``.mp3`` in the tree (the spool excluded), sorted."""
        found: list[str] = []
        for dirpath, dirnames, filenames in os.walk(self._resolved_root):
            if Path(dirpath) == self._resolved_root and SPOOL_DIR in dirnames:
                dirnames.remove(SPOOL_DIR)
            for name in filenames:
                if name.endswith(".mp3"):
                    full = Path(dirpath) / name
                    found.append(full.relative_to(self._resolved_root).as_posix())
        yield from sorted(found)

    def cleanup_parts(self, *, min_age_s: float = 0.0, now: float | None = None) -> list[str]:
        """Remove ``.part`` files older than ``min_age_s`` (crash leftovers); returns them.

        At start-up, before any writer runs, every ``.part`` is stale (``min_age_s=0``).
        """
        now = time.time() if now is None else now
        removed: list[str] = []
        for dirpath, dirnames, filenames in os.walk(self._resolved_root):
            if Path(dirpath) == self._resolved_root and SPOOL_DIR in dirnames:
                dirnames.remove(SPOOL_DIR)
            for name in filenames:
                if not name.endswith(PART_SUFFIX):
                    continue
                full = Path(dirpath) / name
                try:
                    if now - full.stat().st_mtime < min_age_s:
                        continue
                    full.unlink()
                except FileNotFoundError:
                    continue
                removed.append(full.relative_to(self._resolved_root).as_posix())
        return sorted(removed)
