"""Encrypted recordings get encrypted transcripts and encrypted per-leg hand-over audio."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from siprec_recorder.compliance.crypto import EncryptionKey, KeyRing, is_encrypted
from siprec_recorder.storage.db import Database, default_sqlite_url
from siprec_recorder.storage.files import FileLayout
from siprec_recorder.storage.index import FinishedRecording, NewRecording, SqlIndex
from siprec_recorder.transcription.legaudio import read_leg_audio, write_leg_audio
from siprec_recorder.transcription.store import (
    load_transcript,
    store_transcript,
    transcript_files,
)

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
RESULT = {
    "model": "tiny.en",
    "legs": [
        {
            "label": "1",
            "participant_id": None,
            "language": "en",
            "segments": [
                {"start_s": 1.0, "end_s": 2.0, "text": "the secret price", "confidence": 0.9}
            ],
        }
    ],
}


def test_leg_audio_encrypted_and_read_back(tmp_path: Path) -> None:
    key = EncryptionKey.generate()
    track = (np.sin(np.arange(8000) / 5) * 9000).astype(np.int16)
    legs = [{"label": "a", "participant_id": "p1"}, {"label": "b", "participant_id": "p2"}]
    folder = write_leg_audio(tmp_path, "rec1", legs, {"a": track, "b": track[:0]}, 8000, key)
    assert folder is not None and sorted(p.name for p in folder.iterdir()) == [
        "leg1.pcm",
        "legs.json",
    ]  # a silent leg is not handed over
    assert is_encrypted((folder / "leg1.pcm").read_bytes())
    ((entry, pcm),) = read_leg_audio(tmp_path, "rec1", KeyRing.of([key]))
    assert entry["participant_id"] == "p1" and np.array_equal(pcm, track)
    with pytest.raises(ValueError):
        write_leg_audio(tmp_path, "../escape", legs, {"a": track}, 8000)


async def _encrypted_recording(db: Database, layout: FileLayout, key_id: str) -> str:
    index = SqlIndex(db)
    rec_id = await index.create_recording(
        NewRecording(call_id="c1", start=T0, recorded_number="+32470000001", key_id=key_id)
    )
    rel = layout.relative_path("+32470000001", T0, "out", None, rec_id)
    sha, size = layout.write_atomic(rel, b"SRENC\x00 stands in for an encrypted mp3")
    await index.finish_recording(
        rec_id,
        FinishedRecording(
            end=T0 + timedelta(seconds=5), duration_s=5, file=rel, sha256=sha, size_bytes=size
        ),
    )
    return rec_id


async def test_transcript_of_an_encrypted_recording_is_encrypted(tmp_path: Path) -> None:
    key = EncryptionKey.generate()
    db = Database(default_sqlite_url(tmp_path))
    await db.open()
    try:
        layout = FileLayout(tmp_path)
        rec_id = await _encrypted_recording(db, layout, key.key_id)
        with pytest.raises(RuntimeError, match="not configured"):
            await store_transcript(db, layout, rec_id, RESULT, keyring=None)
        assert await transcript_files(db, rec_id) == []  # nothing written in clear
        rel = await store_transcript(db, layout, rec_id, RESULT, KeyRing.of([key]))
        assert rel is not None
        blob = layout.absolute(rel).read_bytes()
        assert is_encrypted(blob) and b"secret" not in blob
        (f,) = await transcript_files(db, rec_id)
        assert f["key_id"] == key.key_id
        doc = await load_transcript(db, layout, rec_id, KeyRing.of([key]))
        assert doc is not None and doc["legs"][0]["segments"][0]["text"] == "the secret price"
    finally:
        await db.close()
