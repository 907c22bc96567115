"""E-discovery export: a case of 100 recordings, checked offline; any flipped byte is caught."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from siprec_recorder.compliance.bundle_verify import verify_bundle
from siprec_recorder.storage.cases import Case, Label, RecordingLabel
from siprec_recorder.storage.db import Database, default_sqlite_url
from siprec_recorder.storage.files import FileLayout
from siprec_recorder.storage.models import LedgerEntry
from siprec_recorder.transcription.store import store_transcript
from tests.web.fixtures import BOB_NUMBER, FAR_END, T0, World, record_call

TRANSCRIBED = (0, 1, 50)  # the recordings of the case that have a transcript (and one outside)


def _transcript_result(i: int) -> dict[str, object]:
    """What the engine hands over for recording ``i``: both legs, each with its speaker."""
    return {
        "model": "tiny.en",
        "legs": [
            {
                "label": "1",
                "participant_id": "a",
                "language": "en",
                "segments": [
                    {"start_s": 0.1, "end_s": 0.4, "text": f"price {i} agreed", "confidence": 0.9}
                ],
            },
            {
                "label": "2",
                "participant_id": "b",
                "language": "en",
                "segments": [
                    {"start_s": 0.2, "end_s": 0.5, "text": "confirmed", "confidence": 0.8}
                ],
            },
        ],
    }


async def _world(root: Path, n: int) -> list[str]:
    db = Database(default_sqlite_url(root))
    await db.open()
    world = World(db, FileLayout(root))
    ids = []
    for i in range(n + 3):
        ids.append(
            await record_call(
                world,
                recorded=BOB_NUMBER,
                other=FAR_END,
                start=T0 + timedelta(minutes=7 * i),
                seconds=0.5 + 0.02 * i,  # distinct files
                direction="out" if i % 2 else "in",
            )
        )
    async with db.session() as s:
        label = Label(title="Case 7", colour="#112233", created_by="alice", created_at=T0)
        s.add(label)
        await s.flush()
        s.add(Case(title="Case 7", label_id=label.id, owner="alice", created_at=T0))
        for rid in ids[:n]:
            s.add(
                RecordingLabel(recording_id=rid, label_id=label.id, added_by="alice", added_at=T0)
            )
        await s.commit()
    for i in (*TRANSCRIBED, n):
        await store_transcript(db, world.layout, ids[i], _transcript_result(i))
    await db.close()
    return ids[:n]


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIPREC__")}
    return subprocess.run(
        [sys.executable, "-m", "siprec_recorder", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=config.parent,
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    tmp = tmp_path_factory.mktemp("export")
    root = tmp / "recordings"
    root.mkdir()
    ids = asyncio.run(_world(root, 100))
    config = tmp / "recorder.toml"
    config.write_text(f'[storage]\nrecordings_dir = "{root}"\n', encoding="utf-8")
    res = _cli(config, "export", "--case", "Case 7", "--to", str(tmp / "case7.zip"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "ok: 100 recording(s) exported" in res.stdout
    return tmp, config, ids


def test_case_of_100_recordings_verifies_offline(exported: tuple[Path, Path, list[str]]) -> None:
    tmp, config, ids = exported
    bundle = tmp / "case7.zip"
    res = subprocess.run(
        [sys.executable, "-m", "siprec_recorder", "verify-export", str(bundle)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.startswith("ok: 100 recording(s)")
    # On "another machine": the bundle alone, its own verifier, no siprec_recorder importable.
    elsewhere = tmp / "elsewhere"
    with zipfile.ZipFile(bundle) as zf:
        zf.extractall(elsewhere)
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONNOUSERSITE": "1"}
    res = subprocess.run(
        [sys.executable, "-I", str(elsewhere / "verify_bundle.py")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd="/",
    )
    assert res.returncode == 0, res.stdout + res.stderr
    names = set(zipfile.ZipFile(bundle).namelist())
    assert {f"audio/{i}.mp3" for i in ids} <= names
    assert {"manifest.csv", "manifest.json", "ledger.jsonl", "chain_head.json"} <= names
    import json

    manifest = json.loads((elsewhere / "manifest.json").read_text())
    row = manifest["recordings"][0]
    assert row["labels"] == ["Case 7"] and row["timezone"] == "Europe/Brussels"
    assert row["start_utc"].endswith("Z") and row["start_local"].endswith(("+01:00", "+02:00"))
    assert any(BOB_NUMBER in p for p in row["participants"])
    for r in manifest["recordings"]:
        data = (elsewhere / r["audio_file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == r["stored_sha256"]


def test_export_is_audited(exported: tuple[Path, Path, list[str]]) -> None:
    tmp, _config, ids = exported

    async def go() -> list[LedgerEntry]:
        db = Database(default_sqlite_url(tmp / "recordings"))
        await db.open()
        async with db.session() as s:
            rows = list(
                await s.scalars(select(LedgerEntry).where(LedgerEntry.action == "export.created"))
            )
        await db.close()
        return rows

    (event,) = asyncio.run(go())
    import json

    details = json.loads(event.details)
    assert details["recordings"] == ids and details["selection"] == {"case": "Case 7"}
    sums = zipfile.ZipFile(tmp / "case7.zip").read("SHA256SUMS")
    assert details["sha256sums_sha256"] == hashlib.sha256(sums).hexdigest()


def test_a_flipped_byte_in_any_file_is_caught(exported: tuple[Path, Path, list[str]]) -> None:
    tmp, _config, _ids = exported
    clean = tmp / "clean"
    if not clean.exists():
        with zipfile.ZipFile(tmp / "case7.zip") as zf:
            zf.extractall(clean)
    assert verify_bundle(clean)[0] == []
    names = sorted(p.relative_to(clean).as_posix() for p in clean.rglob("*") if p.is_file())
    # The fixture's calls are indexed without sidecars: 100 MP3s, 3 transcripts and 6 bundle
    # files.
    assert len(names) == 100 + len(TRANSCRIBED) + 6
    assert sum(n.startswith("transcripts/") for n in names) == len(TRANSCRIBED)
    for name in names:
        path = clean / name
        original = path.read_bytes()
        at = len(original) // 2
        path.write_bytes(original[:at] + bytes([original[at] ^ 0x01]) + original[at + 1 :])
        try:
            problems, _ = verify_bundle(clean)
        finally:
            path.write_bytes(original)
        assert problems, f"a flipped byte in {name} went unnoticed"
    assert verify_bundle(clean)[0] == []


def test_transcripts_are_exported_and_verified(exported: tuple[Path, Path, list[str]]) -> None:
    import csv
    import io
    import json

    tmp, _config, ids = exported
    with zipfile.ZipFile(tmp / "case7.zip") as zf:
        manifest = json.loads(zf.read("manifest.json"))
        rows = {r["id"]: r for r in manifest["recordings"]}
        sums = dict(
            reversed(line.split("  ", 1)) for line in zf.read("SHA256SUMS").decode().splitlines()
        )
        csv_rows = {
            r["id"]: r for r in csv.DictReader(io.StringIO(zf.read("manifest.csv").decode()))
        }
        for i in TRANSCRIBED:
            row = rows[ids[i]]
            assert row["transcript_file"] == f"transcripts/{ids[i]}.json"
            data = zf.read(row["transcript_file"])
            # in clear, the file stored beside the MP3: its hash is the ledger's
            assert hashlib.sha256(data).hexdigest() == row["transcript_sha256"]
            assert row["transcript_sha256"] == row["transcript_stored_sha256"]
            assert sums[row["transcript_file"]] == row["transcript_sha256"]
            assert csv_rows[ids[i]]["transcript_file"] == row["transcript_file"]
            doc = json.loads(data)
            assert doc["id"] == ids[i]
            assert [leg["speaker"] for leg in doc["legs"]] == [BOB_NUMBER, FAR_END]
            assert doc["legs"][0]["segments"][0]["text"] == f"price {i} agreed"
        # a recording without a transcript exports as before
        plain = rows[ids[2]]
        assert "transcript_file" not in plain and csv_rows[ids[2]]["transcript_file"] == ""
        names = zf.namelist()
        assert f"transcripts/{ids[2]}.json" not in names

    async def ledger_sha(rec_id: str) -> str:
        db = Database(default_sqlite_url(tmp / "recordings"))
        await db.open()
        async with db.session() as s:
            entry = await s.scalar(
                select(LedgerEntry).where(
                    LedgerEntry.action == "transcript.stored", LedgerEntry.subject == rec_id
                )
            )
        await db.close()
        assert entry is not None
        return str(json.loads(entry.details)["sha256"])

    assert asyncio.run(ledger_sha(ids[0])) == rows[ids[0]]["transcript_stored_sha256"]


def test_a_flipped_byte_in_a_transcript_is_caught(exported: tuple[Path, Path, list[str]]) -> None:
    import json

    tmp, _config, ids = exported
    bundle = tmp / "transcript-flip"
    shutil.rmtree(bundle, ignore_errors=True)
    with zipfile.ZipFile(tmp / "case7.zip") as zf:
        zf.extractall(bundle)
    name = f"transcripts/{ids[1]}.json"
    path = bundle / name
    original = path.read_bytes()
    at = original.index(b"price 1 agreed")
    path.write_bytes(original[:at] + b"q" + original[at + 1 :])  # "price" -> "qrice"
    problems, _ = verify_bundle(bundle)
    assert problems == [f"{name}: SHA-256 differs from SHA256SUMS (modified)"]
    # the bundle's own script says the same
    res = subprocess.run(
        [sys.executable, "-I", str(bundle / "verify_bundle.py")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
    )
    assert res.returncode == 1 and f"problem: {name}: SHA-256 differs" in res.stdout

    # A forger who also rewrites SHA256SUMS and the manifests: the ledger still disagrees.
    m = json.loads((bundle / "manifest.json").read_text())
    row = next(r for r in m["recordings"] if r["id"] == ids[1])
    row["transcript_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    _rewrite_manifests(bundle, m)
    problems, _ = verify_bundle(bundle)
    assert problems == [f"{ids[1]}: {name} is not the stored transcript of the ledger"], problems

    # ... and one who drops the transcript from the bundle is caught as well.
    path.unlink()
    for key in ("transcript_file", "transcript_sha256", "transcript_stored_sha256"):
        del row[key]
    _rewrite_manifests(bundle, m)
    problems, _ = verify_bundle(bundle)
    assert problems == [f"{ids[1]}: the ledger records a transcript the bundle does not hold"]


def _rewrite_manifests(bundle: Path, manifest: dict[str, Any]) -> None:
    """Write ``manifest`` as manifest.json and manifest.csv, then new SHA256SUMS."""
    import csv
    import io
    import json

    from siprec_recorder.compliance.bundle_verify import CSV_FIELDS, csv_row

    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2))
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=list(CSV_FIELDS), lineterminator="\n")
    w.writeheader()
    for r in manifest["recordings"]:
        w.writerow(csv_row(r))
    (bundle / "manifest.csv").write_text(out.getvalue())
    _resum(bundle)


async def test_an_encrypted_transcript_is_exported_decrypted(tmp_path: Path) -> None:
    """As the MP3: decrypted in the bundle, the stored bytes beside it for the ledger."""
    import json

    from siprec_recorder.compliance.crypto import (
        EncryptionKey,
        KeyRing,
        encrypt_bytes,
        is_encrypted,
    )
    from siprec_recorder.compliance.export import ExportError, export_bundle
    from siprec_recorder.storage.index import FinishedRecording, NewRecording, SqlIndex

    key = EncryptionKey.generate()
    ring = KeyRing.of([key])
    root = tmp_path / "recordings"
    db = Database(default_sqlite_url(root))
    await db.open()
    try:
        layout = FileLayout(root)
        index = SqlIndex(db)
        rec_id = await index.create_recording(
            NewRecording(call_id="c1", start=T0, recorded_number=BOB_NUMBER, key_id=key.key_id)
        )
        rel = layout.relative_path(BOB_NUMBER, T0, "out", None, rec_id)
        blob, _ = encrypt_bytes(b"ID3 stands in for an mp3", key)
        sha, size = layout.write_atomic(rel, blob)
        await index.finish_recording(
            rec_id,
            FinishedRecording(
                end=T0 + timedelta(seconds=5), duration_s=5, file=rel, sha256=sha, size_bytes=size
            ),
        )
        await store_transcript(db, layout, rec_id, _transcript_result(7), ring)
        with pytest.raises(ExportError, match="encrypted"):
            await export_bundle(db, layout, [rec_id], tmp_path / "nokey.zip")
        target = tmp_path / "bundle"
        await export_bundle(db, layout, [rec_id], target, keyring=ring)
    finally:
        await db.close()
    assert verify_bundle(target)[0] == []
    (row,) = json.loads((target / "manifest.json").read_text())["recordings"]
    assert row["transcript_stored_file"] == f"stored/{rec_id}.transcript.enc"
    stored = (target / row["transcript_stored_file"]).read_bytes()
    assert is_encrypted(stored)
    assert hashlib.sha256(stored).hexdigest() == row["transcript_stored_sha256"]
    doc = json.loads((target / row["transcript_file"]).read_text())
    assert doc["id"] == rec_id and doc["legs"][0]["segments"][0]["text"] == "price 7 agreed"
    # the stored copy swapped for another blob, sums made to agree: the ledger says no
    (target / row["transcript_stored_file"]).write_bytes(encrypt_bytes(b"{}", key)[0])
    _resum(target)
    problems, _ = verify_bundle(target)
    assert problems == [f"{rec_id}: stored (encrypted) transcript differs from the ledger's"]


def _resum(bundle: Path) -> None:
    """What a forger would do next: make SHA256SUMS agree with the altered files."""
    lines = []
    for p in sorted(bundle.rglob("*")):
        rel = p.relative_to(bundle).as_posix()
        if p.is_file() and rel != "SHA256SUMS":
            lines.append(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {rel}\n")
    (bundle / "SHA256SUMS").write_text("".join(lines))


def test_a_rewritten_manifest_row_is_caught_even_with_new_sums(
    exported: tuple[Path, Path, list[str]],
) -> None:
    tmp, _config, _ids = exported
    forged = tmp / "forged"
    shutil.rmtree(forged, ignore_errors=True)
    with zipfile.ZipFile(tmp / "case7.zip") as zf:
        zf.extractall(forged)
    csv_path = forged / "manifest.csv"
    lines = csv_path.read_text().splitlines(keepends=True)
    lines[5] = lines[5].replace(BOB_NUMBER, "+32470999999", 1)
    csv_path.write_text("".join(lines))
    _resum(forged)
    problems, _ = verify_bundle(forged)
    assert any("manifest.csv row 5" in p for p in problems), problems

    # Both manifests rewritten alike, and the audio swapped: the ledger still disagrees.
    with zipfile.ZipFile(tmp / "case7.zip") as zf:
        shutil.rmtree(forged)
        zf.extractall(forged)
    import json

    m = json.loads((forged / "manifest.json").read_text())
    victim = m["recordings"][3]
    other = m["recordings"][4]
    shutil.copy(forged / other["audio_file"], forged / victim["audio_file"])
    victim["audio_sha256"] = victim["stored_sha256"] = other["stored_sha256"]
    (forged / "manifest.json").write_text(json.dumps(m, indent=2))
    import csv
    import io

    from siprec_recorder.compliance.bundle_verify import CSV_FIELDS, csv_row

    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=list(CSV_FIELDS), lineterminator="\n")
    w.writeheader()
    for r in m["recordings"]:
        w.writerow(csv_row(r))
    (forged / "manifest.csv").write_text(out.getvalue())
    _resum(forged)
    problems, _ = verify_bundle(forged)
    assert any(victim["id"] in p and "ledger" in p for p in problems), problems


def test_export_selection_errors_are_one_line(exported: tuple[Path, Path, list[str]]) -> None:
    tmp, config, _ids = exported
    res = _cli(config, "export", "--case", "no such case", "--to", str(tmp / "x"))
    assert res.returncode == 1 and res.stdout.strip() == "error: no case 'no such case'"
    res = _cli(config, "export", "--case", "Case 7", "--to", str(tmp / "case7.zip"))
    assert res.returncode == 1 and "exists" in res.stdout
    ids = tmp / "ids.txt"
    ids.write_text("nope\n")
    res = _cli(config, "export", "--ids-file", str(ids), "--to", str(tmp / "y"))
    assert res.returncode == 1 and "nope" in res.stdout
