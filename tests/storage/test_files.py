"""FileLayout: naming, containment, atomic writes, .part cleanup."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siprec_recorder.errors import LocalProtocolError
from siprec_recorder.storage.files import FileLayout, path_safe

START = datetime(2026, 7, 4, 8, 9, 10, tzinfo=UTC)
REC_ID = "0123456789abcdef0123456789abcdef"


def test_relative_path_layout(layout: FileLayout) -> None:
    rel = layout.relative_path("+32470000001", START, "out", "+3222334455", REC_ID)
    assert rel == f"32470000001/2026/07/04/20260704T080910Z_out_3222334455_{REC_ID}.mp3"
    assert layout.sidecar_of(rel).endswith(f"_{REC_ID}.json")


def test_raw_rtp_files_beside_an_mp3(layout: FileLayout) -> None:
    rel = layout.relative_path("+32470000001", START, "out", "+3222334455", REC_ID)
    base = rel[: -len(".mp3")]
    assert layout.raw_rtp_of(rel, 2) == base + ".leg2.pcap"
    with pytest.raises(LocalProtocolError, match="start at 1"):
        layout.raw_rtp_of(rel, 0)
    assert layout.raw_rtp_files(rel) == []  # no folder yet
    other = layout.relative_path("+32470000001", START, "out", "+3222334455", "other1")
    for name in (rel, layout.raw_rtp_of(rel, 1), layout.raw_rtp_of(rel, 12), other):
        layout.write_atomic(name, b"x")
    layout.write_atomic(layout.raw_rtp_of(other, 1), b"x")
    layout.write_atomic(base + ".leg1.pcap.part", b"x")
    assert layout.raw_rtp_files(rel) == [base + ".leg1.pcap", base + ".leg12.pcap"]


def test_relative_path_converts_to_utc_and_fills_unknowns(layout: FileLayout) -> None:
    brussels = START.astimezone(timezone(timedelta(hours=2)))
    rel = layout.relative_path(None, brussels, "sideways", "sip:alice@host", REC_ID)
    assert rel == f"unknown/2026/07/04/20260704T080910Z_unknown_unknown_{REC_ID}.mp3"
    naive = layout.relative_path("1", START.replace(tzinfo=None), "in", "2", REC_ID)
    assert naive.startswith("1/2026/07/04/20260704T080910Z_in_2_")


@pytest.mark.parametrize(
    "hostile",
    ["../../etc/passwd", "/etc/passwd", "..", "a/../../b", "\x00", "..\\..\\x", "~root", ""],
)
def test_hostile_numbers_stay_inside_root(layout: FileLayout, hostile: str) -> None:
    rel = layout.relative_path(hostile, START, "in", hostile, REC_ID)
    path = layout.absolute(rel)
    assert path.is_relative_to(layout.root.resolve())
    assert ".." not in rel.split("/")
    assert path.parent.parent.parent.parent.parent == layout.root.resolve()


@pytest.mark.parametrize("bad_id", ["../x", "a/b", "", "a" * 65, "-x", "x.y", "é"])
def test_bad_ids_refused(layout: FileLayout, bad_id: str) -> None:
    with pytest.raises(LocalProtocolError):
        layout.relative_path("1", START, "in", "2", bad_id)


@pytest.mark.parametrize("rel", ["../x.mp3", "/abs.mp3", "a/../../x.mp3", "", "."])
def test_absolute_refuses_escapes(layout: FileLayout, rel: str) -> None:
    with pytest.raises(LocalProtocolError):
        layout.absolute(rel)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    number=st.one_of(st.none(), st.text()),
    other=st.one_of(st.none(), st.text()),
    direction=st.text(max_size=10),
    start=st.datetimes(
        min_value=datetime(1971, 1, 1), max_value=datetime(9998, 1, 1), timezones=st.just(UTC)
    ),
)
def test_arbitrary_strings_never_escape(
    tmp_path: Path, number: str | None, other: str | None, direction: str, start: datetime
) -> None:
    layout = FileLayout(tmp_path)
    rel = layout.relative_path(number, start, direction, other, REC_ID)
    parts = rel.split("/")
    assert len(parts) == 5
    assert parts[0] == path_safe(number) and (parts[0].isdigit() or parts[0] == "unknown")
    assert all(p not in ("", ".", "..") for p in parts)
    assert layout.absolute(rel).is_relative_to(tmp_path.resolve())


def test_write_atomic_leaves_no_part_and_hashes(layout: FileLayout) -> None:
    rel = layout.relative_path("+32470000001", START, "in", "+32", REC_ID)
    data = os.urandom(300_000)
    sha, size = layout.write_atomic(rel, data)
    assert sha == hashlib.sha256(data).hexdigest() and size == len(data)
    path = layout.absolute(rel)
    assert path.read_bytes() == data
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    # Overwrite (a re-run of the finaliser) is atomic too.
    sha2, _ = layout.write_atomic(rel, b"new")
    assert path.read_bytes() == b"new" and sha2 == hashlib.sha256(b"new").hexdigest()
    side = layout.write_sidecar(rel, {"id": REC_ID, "name": "Zoë"})
    assert side == layout.sidecar_of(rel)
    assert json.loads(layout.absolute(side).read_text("utf-8")) == {"id": REC_ID, "name": "Zoë"}
    assert not list(layout.root.rglob("*.part"))
    assert list(layout.iter_recordings()) == [rel]


def test_cleanup_parts(layout: FileLayout, tmp_path: Path) -> None:
    stale = tmp_path / "1/2026/07/04/x.mp3.part"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half")
    fresh = tmp_path / "1/2026/07/04/y.mp3.part"
    fresh.write_bytes(b"half")
    spool_part = tmp_path / ".spool/abc/manifest.json.part"
    spool_part.parent.mkdir(parents=True)
    spool_part.write_bytes(b"{}")
    old = stale.stat().st_mtime - 3600
    os.utime(stale, (old, old))
    removed = layout.cleanup_parts(min_age_s=60, now=stale.stat().st_mtime + 3600)
    assert removed == ["1/2026/07/04/x.mp3.part"]
    assert fresh.exists() and spool_part.exists()
    assert layout.cleanup_parts() == ["1/2026/07/04/y.mp3.part"]
    assert spool_part.exists()


def test_iter_recordings_skips_spool(layout: FileLayout, tmp_path: Path) -> None:
    (tmp_path / ".spool/abc").mkdir(parents=True)
    (tmp_path / ".spool/abc/x.mp3").write_bytes(b"")
    (tmp_path / "1").mkdir()
    (tmp_path / "1/a.mp3").write_bytes(b"")
    (tmp_path / "1/a.json").write_bytes(b"")
    assert list(layout.iter_recordings()) == ["1/a.mp3"]
