"""verify(): modified, missing and unknown files, and a broken ledger, are all reported."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from siprec_recorder.storage.db import Database
from siprec_recorder.storage.files import FileLayout
from siprec_recorder.storage.index import FinishedRecording, NewRecording, SqlIndex
from siprec_recorder.storage.integrity import sha256_file, verify

T0 = datetime(2026, 9, 1, 10, 0, tzinfo=UTC)


async def _store_one(index: SqlIndex, layout: FileLayout, i: int, data: bytes) -> str:
    rec_id = await index.create_recording(
        NewRecording(call_id=f"c{i}", start=T0 + timedelta(minutes=i), recorded_number="+321")
    )
    rel = layout.relative_path("+321", T0 + timedelta(minutes=i), "in", "+322", rec_id)
    sha, size = layout.write_atomic(rel, data)
    side = layout.write_sidecar(rel, {"id": rec_id})
    await index.finish_recording(
        rec_id,
        FinishedRecording(
            end=T0 + timedelta(minutes=i, seconds=5),
            duration_s=5.0,
            file=rel,
            sidecar=side,
            sha256=sha,
            size_bytes=size,
        ),
    )
    return rel


def test_sha256_file(tmp_path: Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"abc" * 1_000_000)
    sha, size = sha256_file(p)
    assert size == 3_000_000
    import hashlib

    assert sha == hashlib.sha256(b"abc" * 1_000_000).hexdigest()


async def test_intact_store_has_no_problems(
    db: Database, index: SqlIndex, layout: FileLayout
) -> None:
    for i in range(3):
        await _store_one(index, layout, i, bytes([i]) * 1000)
    assert await verify(db, layout) == []


async def test_modified_missing_unknown_and_chain(
    db: Database, index: SqlIndex, layout: FileLayout, tmp_path: Path
) -> None:
    a = await _store_one(index, layout, 0, b"a" * 1000)
    b = await _store_one(index, layout, 1, b"b" * 1000)
    c = await _store_one(index, layout, 2, b"c" * 1000)
    # modified: same size, one byte changed
    with open(layout.absolute(a), "r+b") as f:
        f.seek(500)
        f.write(b"X")
    # missing: file and sidecar deleted
    layout.absolute(b).unlink()
    layout.absolute(layout.sidecar_of(b)).unlink()
    # unknown: an mp3 nobody indexed; spool files are not counted
    stray = tmp_path / "321/2026/09/01/stray.mp3"
    stray.write_bytes(b"?")
    (tmp_path / ".spool/x").mkdir(parents=True)
    (tmp_path / ".spool/x/y.mp3").write_bytes(b"?")
    # chain: an audit entry edited behind our back
    async with db.engine.begin() as conn:
        await conn.execute(text("UPDATE ledger SET actor = 'mallory' WHERE seq = 2"))

    problems = await verify(db, layout)
    got = {(p.kind, p.subject) for p in problems}
    assert got == {
        ("modified", a),
        ("missing", b),
        ("missing", layout.sidecar_of(b)),
        ("unknown", "321/2026/09/01/stray.mp3"),
        ("chain", "ledger"),
    }
    assert c not in {p.subject for p in problems}
    modified = next(p for p in problems if p.kind == "modified")
    assert "sha256" in modified.detail
    assert str(modified).startswith("modified: ")


async def test_purged_rows_are_not_missing(
    db: Database, index: SqlIndex, layout: FileLayout
) -> None:
    rel = await _store_one(index, layout, 0, b"gone" * 100)
    layout.absolute(rel).unlink()
    layout.absolute(layout.sidecar_of(rel)).unlink()
    async with db.engine.begin() as conn:  # a purge cut short before clearing the row
        await conn.execute(text("UPDATE recordings SET state = 'purged'"))
    assert await verify(db, layout) == []


async def test_raw_rtp_kept_beside_an_mp3_is_checked_against_its_sidecar(
    db: Database, index: SqlIndex, layout: FileLayout
) -> None:
    """A leg that could not be decoded keeps its packets as a pcap, hashed in the sidecar."""
    rels = []
    for i in range(3):
        rel = await _store_one(index, layout, i, bytes([i]) * 1000)
        pcap = rel[: -len(".mp3")] + ".leg1.pcap"
        sha, size = layout.write_atomic(pcap, bytes([i]) * 500)
        side = layout.sidecar_of(rel)
        raw = {"file": pcap.rsplit("/", 1)[1], "format": "pcap", "sha256": sha, "size_bytes": size}
        layout.write_sidecar(rel, {"streams": [{"label": "1"}, {"label": "2", "raw_rtp": raw}]})
        rels.append((rel, pcap, side))
    assert await verify(db, layout) == []

    (_, edited, _), (_, gone, _), (_, _, bad_side) = rels
    with open(layout.absolute(edited), "r+b") as f:
        f.write(b"X")
    layout.absolute(gone).unlink()
    layout.absolute(bad_side).write_text('{"streams": [{"raw_rtp": {"file": "../x.pcap"}}]}')
    got = {(p.kind, p.subject) for p in await verify(db, layout)}
    assert got == {("modified", edited), ("missing", gone), ("modified", bad_side)}
