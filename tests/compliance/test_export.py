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

import pytest
from sqlalchemy import select

from siprec_recorder.compliance.bundle_verify import verify_bundle
from siprec_recorder.storage.db import Database, default_sqlite_url
from siprec_recorder.storage.files import FileLayout
from siprec_recorder.storage.models import LedgerEntry
from siprec_recorder.web.models import Case, Label, RecordingLabel
from tests.web.fixtures import BOB_NUMBER, FAR_END, T0, World, record_call


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
    # The fixture's calls are indexed without sidecars: 100 MP3s and 6 bundle files.
    assert len(names) == 100 + 6
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
