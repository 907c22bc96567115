"""The crash-safe spool of calls in progress.

Theory of operation
-------------------
Each recording being made has a folder ``{root}/.spool/{rec_id}/`` holding

* ``manifest.json``: what the call is (call id, numbers, legs, codecs, start ...), written by
  the session layer and rewritten atomically (``.part`` + fsync + rename + folder fsync) on
  every :meth:`SpoolSession.update_manifest`;
* one append-only file per leg, ``leg-<hex of the UTF-8 label>.bin``: whatever bytes the
  media layer hands over (the record format belongs to ``rtp/spoolfmt``; to this module they
  are opaque). A label of any form maps to a safe, reversible file name; one longer than
  100 bytes maps to ``leg-~<sha256>.bin`` with the label kept in ``leg-~<sha256>.label``.

:meth:`SpoolSession.append` only buffers in memory and is cheap enough for the event loop.
:meth:`SpoolSession.flush` writes the buffers and fsyncs them; it is a plain blocking function
that the session layer calls about once a second, from a worker thread if it likes (appends
and flushes are guarded by a lock, flushes are serialised). :meth:`SpoolStore.flush_sessions`
does the same for every call in progress with one group commit (``syncfs``). So a crash
loses at most the data appended since the last flush; a crash in the middle of a write leaves
a partial last record, which readers of the record format ignore.

On start-up :meth:`SpoolStore.orphans` lists every spool folder: with no call running, each is
a call a crash interrupted, to be finalised and indexed as ``interrupted``; then
:meth:`SpoolSession.remove` deletes it.

Several nodes sharing one recordings folder each own a store of their own,
``{root}/.spool/@{node_id}/{rec_id}/`` (``@`` is never the first character of a recording id,
so a node's folder is never taken for a spool). A store only lists its own folders; the
folders straight under ``.spool`` are those of a recorder that ran before nodes had ids.
:meth:`SpoolStore.touch_alive` stamps ``.alive`` in the node's folder at every heartbeat: a
survivor leaves alone a store whose stamp is recent, even when the database says its owner
is gone (a node cut off from the database but still recording).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from siprec_recorder.errors import LocalProtocolError

from .files import PART_SUFFIX, SPOOL_DIR, fsync_dir

__all__ = [
    "ALIVE",
    "MANIFEST",
    "NODE_ID_RE",
    "SpoolSession",
    "SpoolStore",
    "leg_file_name",
    "leg_label",
]

MANIFEST = "manifest.json"
ALIVE = ".alive"
_ID_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]{0,63}")
#: What a ``[cluster] node_id`` may be (a host name fits).
NODE_ID_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,63}")
_LEG_RE = re.compile(r"leg-((?:[0-9a-f]{2})*)\.bin")
_LONG_LEG_RE = re.compile(r"leg-~([0-9a-f]{64})\.bin")
_LABEL_SUFFIX = ".label"
_MAX_LABEL_BYTES = 100


def _label_bytes(label: str) -> bytes:
    return label.encode("utf-8", "surrogatepass")


def leg_file_name(label: str) -> str:
    """``leg-<hex of the UTF-8 label>.bin``; a label longer than 100 bytes gets
    ``leg-~<SHA-256 of the label>.bin`` and its text in a ``.label`` file beside it.

    A label of any length and content is recordable: the offer was answered before the
    first flush, so refusing a label here would lose the call (and stop the flush of
    every call spooled after it).
    """
    raw = _label_bytes(label)
    if len(raw) > _MAX_LABEL_BYTES:
        return f"leg-~{hashlib.sha256(raw).hexdigest()}.bin"
    return f"leg-{raw.hex()}.bin"


def leg_label(file_name: str) -> str | None:
    """The label a (short-label) leg file name stands for, or ``None`` for any other name."""
    m = _LEG_RE.fullmatch(file_name)
    if m is None:
        return None
    try:
        return bytes.fromhex(m.group(1)).decode("utf-8", "surrogatepass")
    except (ValueError, UnicodeDecodeError):
        return None


def _write_json_atomic(path: Path, doc: Mapping[str, Any]) -> None:
    data = json.dumps(doc, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")
    part = path.with_name(path.name + PART_SUFFIX)
    try:
        with open(part, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(part, path)
    except BaseException:
        # A full disk fails the write; the old manifest stays whole and no torn
        # ``.part`` is left behind for the next start to trip over.
        part.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def _write_bytes_atomic(path: Path, data: bytes) -> None:
    part = path.with_name(path.name + PART_SUFFIX)
    with open(part, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(part, path)
    fsync_dir(path.parent)


def _fdatasync(fd: int) -> None:
    sync = getattr(os, "fdatasync", os.fsync)
    sync(fd)


def _load_syncfs() -> Callable[[int], None] | None:
    """``syncfs(2)`` (Linux): make everything written on one file system durable at once."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int

    def syncfs(fd: int) -> None:
        if fn(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"syncfs: {os.strerror(err)}")

    return syncfs


_SYNCFS = _load_syncfs()


class SpoolSession:
    """The spool folder of one recording."""

    def __init__(self, path: Path, rec_id: str) -> None:
        self.path = path
        self.rec_id = rec_id
        self._lock = threading.Lock()  # guards the buffers and the manifest
        self._flush_lock = threading.Lock()  # serialises flushes (writes stay in order)
        self._pending: dict[str, list[bytes]] = {}
        self._created: set[str] = set()  # legs whose file exists (folder fsync'd)
        self._manifest: dict[str, Any] | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"SpoolSession({str(self.path)!r})"

    # -- manifest -------------------------------------------------------------------------

    @property
    def manifest(self) -> dict[str, Any]:
        """The manifest (a copy); ``{}`` when the folder has none (crash right after mkdir)."""
        with self._lock:
            if self._manifest is None:
                try:
                    raw = (self.path / MANIFEST).read_bytes()
                    loaded = json.loads(raw)
                    self._manifest = loaded if isinstance(loaded, dict) else {}
                except (FileNotFoundError, ValueError):
                    self._manifest = {}
            return dict(self._manifest)

    @property
    def has_manifest(self) -> bool:
        return (self.path / MANIFEST).is_file()

    def write_manifest(self, manifest: Mapping[str, Any]) -> None:
        """Replace the manifest (atomic rewrite)."""
        with self._lock:
            self._manifest = dict(manifest)
            _write_json_atomic(self.path / MANIFEST, self._manifest)

    def update_manifest(self, changes: Mapping[str, Any]) -> None:
        """Merge ``changes`` into the manifest (top-level keys) and rewrite it atomically."""
        current = self.manifest
        current.update(changes)
        self.write_manifest(current)

    # -- legs -----------------------------------------------------------------------------

    def append(self, label: str, data: bytes) -> None:
        """Buffer ``data`` for leg ``label`` (no I/O; call :meth:`flush` to make it durable)."""
        if not data:
            return
        with self._lock:
            if self._closed:
                raise LocalProtocolError(f"spool {self.rec_id} is closed")
            self._pending.setdefault(label, []).append(bytes(data))

    def pending_bytes(self) -> int:
        """Bytes appended but not flushed yet."""
        with self._lock:
            return sum(len(c) for chunks in self._pending.values() for c in chunks)

    def flush(self, *, sync: bool = True) -> int:
        """Write every buffered chunk to its leg file and fsync it; returns bytes written.

        ``sync=False`` only writes: the caller makes the writes durable for many sessions
        at once (:meth:`SpoolStore.flush_sessions`). Blocking: run it in a worker thread
        when called from the event loop.
        """
        with self._flush_lock:
            with self._lock:
                pending, self._pending = self._pending, {}
            written = 0
            labels = list(pending)
            for i, label in enumerate(labels):
                try:
                    data = b"".join(pending[label])
                    self._append_durably(label, data, sync=sync)
                except BaseException:
                    # Keep what was not attempted for the next flush (the failed leg's
                    # chunk may be partly on disk; its reader drops a torn record).
                    with self._lock:
                        for later in labels[i + 1 :]:
                            self._pending[later] = pending[later] + self._pending.get(later, [])
                    raise
                written += len(data)
            return written

    def _append_durably(self, label: str, data: bytes, *, sync: bool = True) -> None:
        # Opened per flush, not kept open: a thousand calls with two legs each would
        # otherwise hold two thousand descriptors beside their RTP sockets.
        path = self.path / leg_file_name(label)
        created = label not in self._created
        if created and path.name.startswith("leg-~"):
            # The long label's text goes to disk (durably) before its first audio does.
            label_path = path.with_suffix(_LABEL_SUFFIX)
            if not label_path.exists():
                _write_bytes_atomic(label_path, _label_bytes(label))
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if sync:
                _fdatasync(fd)
        finally:
            os.close(fd)
        if created and sync:
            fsync_dir(self.path)
            self._created.add(label)

    def legs(self) -> list[str]:
        """Labels of every leg that has a file (sorted)."""
        labels = []
        for entry in os.listdir(self.path):
            label = leg_label(entry)
            if label is None and _LONG_LEG_RE.fullmatch(entry):
                try:
                    raw = (self.path / entry).with_suffix(_LABEL_SUFFIX).read_bytes()
                except FileNotFoundError:
                    continue  # a crash between the two writes: no audio was written yet
                if hashlib.sha256(raw).hexdigest() == entry[5:-4]:
                    label = raw.decode("utf-8", "surrogatepass")
            if label is not None:
                labels.append(label)
        return sorted(labels)

    def read_leg(self, label: str) -> bytes:
        """Everything spooled for ``label``: the file (possibly ending in a partial record
        after a crash) followed by what is still buffered. ``b""`` for an unknown leg."""
        try:
            data = (self.path / leg_file_name(label)).read_bytes()
        except FileNotFoundError:
            data = b""
        with self._lock:
            pending = b"".join(self._pending.get(label, []))
        return data + pending

    def close(self) -> None:
        """Flush, then refuse further appends (the folder stays)."""
        self.flush()
        with self._lock:
            self._closed = True

    def remove(self) -> None:
        """Delete the folder (after the recording is finished and indexed)."""
        with self._flush_lock:
            with self._lock:
                self._closed = True
                self._pending.clear()
            shutil.rmtree(self.path, ignore_errors=True)
            fsync_dir(self.path.parent)


class SpoolStore:
    """The spool folders of one node, under ``{root}/.spool/@{node_id}`` (``root`` is the
    recordings folder); with ``node_id`` empty, the folders straight under ``.spool``."""

    def __init__(self, root: Path | str, node_id: str = "") -> None:
        if node_id and not NODE_ID_RE.fullmatch(node_id):
            raise LocalProtocolError(f"not a node id: {node_id!r}")
        self.root = Path(root)
        self.node_id = node_id
        self.dir = self.root / SPOOL_DIR / f"@{node_id}" if node_id else self.root / SPOOL_DIR

    def touch_alive(self, now: float) -> None:
        """Stamp ``.alive`` with ``now`` (the owner's heartbeat, seen by the file system)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / ALIVE
        path.touch()
        os.utime(path, (now, now))

    def alive_at(self) -> float | None:
        """When the owner last stamped ``.alive`` (None: never)."""
        try:
            return (self.dir / ALIVE).stat().st_mtime
        except FileNotFoundError:
            return None

    def last_write_at(self) -> float | None:
        """The newest modification time of any spool file of this store (None: no spool)."""
        newest: float | None = None
        for sp in self.orphans():
            try:
                for entry in os.scandir(sp.path):
                    t = entry.stat().st_mtime
                    newest = t if newest is None else max(newest, t)
            except FileNotFoundError:
                continue
        return newest

    def _path(self, rec_id: str) -> Path:
        if not _ID_RE.fullmatch(rec_id):
            raise LocalProtocolError(f"not a recording id: {rec_id!r}")
        return self.dir / rec_id

    def open_session(self, rec_id: str, manifest: Mapping[str, Any]) -> SpoolSession:
        """Create the spool of a new recording and write its manifest."""
        path = self._path(rec_id)
        self.dir.mkdir(parents=True, exist_ok=True)
        path.mkdir(exist_ok=False)
        fsync_dir(self.dir)
        session = SpoolSession(path, rec_id)
        session.write_manifest(manifest)
        return session

    def get(self, rec_id: str) -> SpoolSession:
        """The existing spool of ``rec_id`` (:class:`LocalProtocolError` if there is none)."""
        path = self._path(rec_id)
        if not path.is_dir():
            raise LocalProtocolError(f"no spool for recording {rec_id!r}")
        return SpoolSession(path, rec_id)

    def flush_sessions(
        self,
        sessions: Iterable[SpoolSession],
        on_error: Callable[[SpoolSession, Exception], None] | None = None,
    ) -> int:
        """Flush many sessions with one group commit; returns bytes written.

        Where ``syncfs`` exists, every session's buffers are written first and then one
        ``syncfs`` on the spool's file system makes them durable together: one call a
        second instead of one ``fdatasync`` per leg (which costs about 130 us of CPU each
        and serialises on the file system journal). Elsewhere each session is fsync'd.
        A session whose write fails keeps its buffers and never stops the others: each
        failure goes to ``on_error``, or, without one, the first is raised once every
        other session is durable.
        """
        written = 0
        error: Exception | None = None
        for session in sessions:
            try:
                written += session.flush(sync=_SYNCFS is None)
            except Exception as exc:
                if on_error is not None:
                    on_error(session, exc)
                else:
                    error = error or exc
        if _SYNCFS is not None:
            fd = os.open(self.dir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            try:
                _SYNCFS(fd)
            finally:
                os.close(fd)
        if error is not None:
            raise error
        return written

    def orphans(self) -> list[SpoolSession]:
        """Every spool folder on disk (call at start-up: each is a call a crash cut off)."""
        if not self.dir.is_dir():
            return []
        found = []
        for entry in sorted(os.listdir(self.dir)):
            path = self.dir / entry
            if path.is_dir() and _ID_RE.fullmatch(entry):
                found.append(SpoolSession(path, entry))
        return found
