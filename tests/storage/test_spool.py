"""The spool of calls in progress: buffered appends, fsync'd flushes, crash leftovers."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from siprec_recorder.errors import LocalProtocolError
from siprec_recorder.storage.spool import SpoolStore, leg_file_name, leg_label

MANIFEST = {"call_id": "c1@sbc", "started_at": 1767225600.25, "legs": [{"label": "1"}]}


def test_append_flush_read(tmp_path: Path) -> None:
    store = SpoolStore(tmp_path)
    spool = store.open_session("rec1", MANIFEST)
    assert (tmp_path / ".spool" / "rec1" / "manifest.json").is_file()
    spool.append("1", b"abc")
    spool.append("2", b"xy")
    spool.append("1", b"def")
    # Nothing on disk before a flush, but read_leg sees the buffer too.
    assert not list((tmp_path / ".spool" / "rec1").glob("leg-*"))
    assert spool.pending_bytes() == 8
    assert spool.read_leg("1") == b"abcdef"
    assert spool.flush() == 8
    assert spool.pending_bytes() == 0
    spool.append("1", b"ghi")
    spool.flush()
    assert spool.flush() == 0
    assert spool.legs() == ["1", "2"]
    # A second process (the finaliser) sees the same data.
    again = store.get("rec1")
    assert again.read_leg("1") == b"abcdefghi"
    assert again.read_leg("2") == b"xy"
    assert again.read_leg("3") == b""
    assert again.manifest == MANIFEST
    spool.close()


def test_manifest_updates_are_atomic_merges(tmp_path: Path) -> None:
    spool = SpoolStore(tmp_path).open_session("rec1", MANIFEST)
    spool.update_manifest({"participants": [{"id": "p1"}]})
    spool.update_manifest({"call_id": "c2"})
    reread = SpoolStore(tmp_path).get("rec1").manifest
    assert reread["participants"] == [{"id": "p1"}]
    assert reread["call_id"] == "c2" and reread["started_at"] == MANIFEST["started_at"]
    assert not list(spool.path.glob("*.part"))


def test_truncated_trailing_data_is_read_as_is(tmp_path: Path) -> None:
    spool = SpoolStore(tmp_path).open_session("rec1", MANIFEST)
    spool.append("1", b"R" * 100)
    spool.flush()
    spool.close()
    leg = spool.path / leg_file_name("1")
    with open(leg, "r+b") as f:  # a crash in the middle of a write
        f.truncate(57)
    assert SpoolStore(tmp_path).get("rec1").read_leg("1") == b"R" * 57


def test_orphans_and_remove(tmp_path: Path) -> None:
    store = SpoolStore(tmp_path)
    assert store.orphans() == []
    a = store.open_session("aaa", MANIFEST)
    a.append("1", b"x")
    a.flush()
    store.open_session("bbb", {**MANIFEST, "call_id": "c2"})
    (tmp_path / ".spool" / "ccc").mkdir()  # crash right after mkdir: no manifest
    (tmp_path / ".spool" / "not an id!").mkdir()
    # After a "crash" (new store object), every folder is an orphan.
    orphans = SpoolStore(tmp_path).orphans()
    assert [o.rec_id for o in orphans] == ["aaa", "bbb", "ccc"]
    assert orphans[0].read_leg("1") == b"x"
    assert orphans[1].manifest["call_id"] == "c2"
    assert orphans[2].manifest == {} and not orphans[2].has_manifest
    for o in orphans:
        o.remove()
    assert [o.rec_id for o in store.orphans()] == []
    with pytest.raises(LocalProtocolError):
        store.get("aaa")


def test_closed_spool_refuses_appends(tmp_path: Path) -> None:
    spool = SpoolStore(tmp_path).open_session("rec1", MANIFEST)
    spool.remove()
    with pytest.raises(LocalProtocolError):
        spool.append("1", b"x")


def test_bad_ids_and_labels(tmp_path: Path) -> None:
    store = SpoolStore(tmp_path)
    with pytest.raises(LocalProtocolError):
        store.open_session("../evil", MANIFEST)
    store.open_session("rec1", MANIFEST)
    with pytest.raises(FileExistsError):
        store.open_session("rec1", MANIFEST)


@given(st.text(max_size=30))
def test_leg_file_names_are_safe_and_reversible(label: str) -> None:
    name = leg_file_name(label)
    assert "/" not in name and "\\" not in name and name not in (".", "..")
    assert leg_label(name) == label


def test_flush_from_a_thread_while_appending(tmp_path: Path) -> None:
    spool = SpoolStore(tmp_path).open_session("rec1", MANIFEST)
    chunks = [bytes([i % 256]) * 10 for i in range(2000)]
    stop = threading.Event()

    def flusher() -> None:
        while not stop.is_set():
            spool.flush()

    thread = threading.Thread(target=flusher)
    thread.start()
    for c in chunks:
        spool.append("1", c)
    stop.set()
    thread.join()
    spool.flush()
    assert spool.read_leg("1") == b"".join(chunks)


def test_flush_sessions_group_commit(tmp_path: Path) -> None:
    """Many sessions flushed together: everything written, buffers emptied, a failing
    session keeps its buffer while the others are still flushed, and the error surfaces."""
    store = SpoolStore(tmp_path)
    sessions = [store.open_session(f"r{i}", {"legs": []}) for i in range(3)]
    for i, s in enumerate(sessions):
        s.append("1", bytes([i]) * 10)
        s.append("2", bytes([i]) * 5)
    assert store.flush_sessions(sessions) == 45
    for i, s in enumerate(sessions):
        assert (s.path / leg_file_name("1")).read_bytes() == bytes([i]) * 10
        assert s.pending_bytes() == 0
    assert store.flush_sessions(sessions) == 0

    for s in sessions:
        s.append("1", b"more")
    broken = sessions[1]
    broken.append("2", b"kept")  # not attempted once leg 1 fails: kept for the next flush
    (broken.path / leg_file_name("1")).unlink()
    (broken.path / leg_file_name("1")).mkdir()  # the next write to this leg fails
    with pytest.raises(OSError):
        store.flush_sessions(sessions)
    assert broken.pending_bytes() == 4
    for s in (sessions[0], sessions[2]):
        assert (s.path / leg_file_name("1")).read_bytes().endswith(b"more")
        assert s.pending_bytes() == 0

    # With a callback, each failure is reported against its session and nothing is raised.
    failed: list[str] = []
    for s in sessions:
        s.append("1", b"again")
    written = store.flush_sessions(sessions, on_error=lambda sp, exc: failed.append(sp.rec_id))
    assert failed == ["r1"] and written == 10
    assert sessions[2].read_leg("1").endswith(b"moreagain")


@given(st.text(min_size=1, max_size=300))
def test_any_label_has_a_leg_file(label: str) -> None:
    """A label of any length maps to a bounded, safe file name (long ones by hash)."""
    name = leg_file_name(label)
    assert len(name) <= 4 + 200 + 4 and "/" not in name
    if len(label.encode("utf-8", "surrogatepass")) > 100:
        assert leg_label(name) is None and name.startswith("leg-~")


def test_long_label_spools_and_reads_back(tmp_path: Path) -> None:
    """The 101-byte label of the audit: spooled, listed and read back like any other."""
    label = "L" * 101
    store = SpoolStore(tmp_path)
    spool = store.open_session("rec1", MANIFEST)
    spool.append(label, b"audio")
    spool.append("1", b"short")
    assert spool.flush() == 10
    again = store.get("rec1")
    assert again.legs() == sorted(["1", label])
    assert again.read_leg(label) == b"audio"
