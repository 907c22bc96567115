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
import hashlib
import json
import time
from typing import Any

import pytest

from siprec_recorder.replay.src import SrcOptions, replay_call

from .speech import have_espeak, speech_call

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not have_espeak(), reason="espeak-ng and sox are needed"),
]

faster_whisper = pytest.importorskip("faster_whisper")
engine = pytest.importorskip("siprec_recorder.transcription.engine")

TINY_EN_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
CALLER_SAYS = "please confirm the order for apple shares"
CALLEE_SAYS = "we will settle the swap on friday"
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
    rows = _wait_transcript(rec, "friday")
    assert len(rows) == 1
    row = rows[0]
    # The hit is on the callee's leg, within a second of when "friday" was said.
    (hit,) = row["hits"]
    assert hit["speaker"] == "+32470000002"
    said_at = CALLEE_AT + 2.0  # "friday" ends the sentence, about 2 s into it at 150 wpm
    assert abs(hit["at_s"] - said_at) < 1.5, hit
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
    for w in ("swap", "friday"):
        assert w in callee_text and w not in caller_text, (w, legs)
    # Timestamps are positions in the MP3: the caller spoke first.
    starts = {leg["speaker"]: leg["segments"][0]["start_s"] for leg in doc["legs"]}
    assert starts["+32470000001"] < 2.0 < CALLEE_AT - 0.5 < starts["+32470000002"], starts
    # Phrase and prefix search; a word nobody said finds nothing.
    assert [r["id"] for r in rec.search("--text", '"confirm the order"')] == [row["id"]]
    assert [r["id"] for r in rec.search("--text", "appl*")] == [row["id"]]
    assert rec.search("--text", "apple friday") != []
    assert rec.search("--text", "zebra") == []
    assert rec.search("--text", '"order confirm"') == []
    # A record like the recording: hashed, in the ledger, verified, and the leg audio gone.
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    out = rec.cli("verify")
    assert out.returncode == 0, out.stdout
    assert not list((rec.recordings / ".transcribe").iterdir())
    path.write_bytes(path.read_bytes().replace(b"friday", b"monday"))
    bad = rec.cli("verify", check=False)
    assert bad.returncode == 1 and "transcript" in bad.stdout, bad.stdout
    assert sha in (rec.recordings / "index.sqlite3").read_bytes().decode("latin-1")
