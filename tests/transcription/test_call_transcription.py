"""A real call with known speech, recorded by a real ``serve``, transcribed per leg.

espeak-ng says one sentence per leg (a different voice on each); the replay tool sends the
call as a SIPREC SRC over loopback; the recorder (transcription on, the packaged tiny.en
model pinned by SHA-256) finalises it, then its niced worker transcribes each leg. Checked:
each leg's transcript has that leg's words and not the other's, attributed to the
participant who sends on it; ``search --text`` finds the call and places the hit within a
second of when the word was said; the transcript is a record (hashed, in the ledger,
checked by ``verify``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import sqlite3
import time
from typing import Any

import pytest

from siprec_recorder.replay.src import SrcOptions, replay_call

from .speech import have_espeak, speak_ulaw, speech_call

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not have_espeak(), reason="espeak-ng and sox are needed"),
]

faster_whisper = pytest.importorskip("faster_whisper")
engine = pytest.importorskip("siprec_recorder.transcription.engine")

TINY_EN_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
CALLER_SAYS = "please confirm the order for apple shares"
CALLEE_SAYS = "thank you for the coffee in london"
CALLEE_AT = 4.5


def _wait_transcript(rec: Any, text: str, timeout: float = 120.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = rec.search("--text", text)
        if rows:
            return rows
        time.sleep(1.0)
    raise AssertionError(f"no transcript matched {text!r}:\n{rec.log()[-4000:]}")


def test_each_leg_transcribed_attributed_and_searchable(recorder_factory: Any) -> None:
    call, _said = speech_call(
        [
            ("caller", "en-us", CALLER_SAYS, 0.5),
            ("callee", "en-gb", CALLEE_SAYS, CALLEE_AT),
        ]
    )
    rec = recorder_factory(
        transcription={"enabled": True, "model_sha256": TINY_EN_SHA256, "languages": ["en"]}
    )
    result = asyncio.run(replay_call(call, SrcOptions(to=rec.listeners["udp"])))
    assert result.ok, result
    rows = _wait_transcript(rec, "coffee")
    assert len(rows) == 1
    row = rows[0]
    # The hit is on the callee's leg, within a second of when "coffee" was said: its
    # onset is where espeak-ng's rendering of the words before it ends.
    (hit,) = row["hits"]
    assert hit["speaker"] == "+32470000002"
    said_at = CALLEE_AT + len(speak_ulaw("thank you for the", "en-gb")) / 8000
    assert abs(hit["at_s"] - said_at) < 1.0, (hit, said_at)
    # The stored transcript: per leg, the right words and speaker, none of the other leg's.
    path = rec.recordings / row["file"].replace(".mp3", ".transcript.json")
    doc = json.loads(path.read_text())
    legs = {
        leg["speaker"]: " ".join(s["text"] for s in leg["segments"]).lower() for leg in doc["legs"]
    }
    assert set(legs) == {"+32470000001", "+32470000002"}, legs
    caller_text, callee_text = legs["+32470000001"], legs["+32470000002"]
    for w in ("confirm", "order", "apple"):
        assert w in caller_text and w not in callee_text, (w, legs)
    for w in ("thank", "coffee", "london"):
        assert w in callee_text and w not in caller_text, (w, legs)
    # Timestamps are positions in the MP3: the caller spoke first.
    starts = {leg["speaker"]: leg["segments"][0]["start_s"] for leg in doc["legs"]}
    assert starts["+32470000001"] < 2.0 < CALLEE_AT - 0.5 < starts["+32470000002"], starts
    # Phrase and prefix search; a word nobody said finds nothing.
    assert [r["id"] for r in rec.search("--text", '"confirm the order"')] == [row["id"]]
    assert [r["id"] for r in rec.search("--text", "appl*")] == [row["id"]]
    assert rec.search("--text", "apple london") != []
    assert rec.search("--text", "zebra") == []
    assert rec.search("--text", '"order confirm"') == []
    # A record like the recording: hashed, in the ledger, verified, and the leg audio gone.
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    out = rec.cli("verify")
    assert out.returncode == 0, out.stdout
    assert not list((rec.recordings / ".transcribe").iterdir())
    path.write_bytes(path.read_bytes().replace(b"coffee", b"cocoa!"))
    bad = rec.cli("verify", check=False)
    assert bad.returncode == 1 and "transcript" in bad.stdout, bad.stdout
    with contextlib.closing(sqlite3.connect(rec.recordings / "index.sqlite3")) as conn:
        (details,) = conn.execute(
            "SELECT details FROM ledger WHERE action = 'transcript.stored' AND subject = ?",
            (row["id"],),
        ).fetchone()
    assert json.loads(details)["sha256"] == sha
