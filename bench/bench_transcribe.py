"""Transcription benchmark: CPU seconds per audio second, and word error rate.

    python bench/bench_transcribe.py [--model PATH] [--threads 1] [--beam 1] [--languages en]

The generated set: eight sentences of trading-floor English said by espeak-ng in two voices
(en-us, en-gb), each passed through G.711 u-law at 8 kHz as a phone leg would carry it,
with a second of silence before and after (the other leg's turn). Each is transcribed by the
worker's own code (``siprec_recorder.transcription.engine.transcribe_audio``: VAD, greedy or
beam decoding, word times) with the model at ``--model`` (default: the packaged tiny.en,
checked against its pinned SHA-256). Printed: the process CPU time per second of audio
(what sizing multiplies by recorded hours; ``--threads`` cores per worker), the wall time
per audio second, and the word error rate against the sentences (numbers written as words
on both sides, punctuation and case ignored). Runs in about a minute; stops by itself.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from siprec_recorder.transcription.engine import (  # noqa: E402
    PACKAGED_MODEL_SHA256,
    _to_16k,
    check_model,
    shipped_model_path,
    transcribe_audio,
)
from tests.transcription.speech import speak_ulaw, wer  # noqa: E402

SENTENCES = [
    "the trader promised a price of forty two euros for the bond",
    "please confirm the order for five hundred shares of apple",
    "we will settle the swap on friday at the closing rate",
    "my client wants to sell the gold futures before noon",
    "thank you for the coffee in london",
    "buy ten thousand bonds at ninety nine",
    "the market opens at nine tomorrow morning",
    "can you call me back after the meeting",
]
VOICES = ["en-us", "en-gb"]
_NUMBERS = {"42": "forty two", "500": "five hundred", "10,000": "ten thousand", "99": "ninety nine"}


def _decode_ulaw(data: bytes) -> np.ndarray:
    ctx = av.CodecContext.create("pcm_mulaw", "r")
    ctx.sample_rate = 8000
    ctx.layout = "mono"
    frames = [f.to_ndarray().reshape(-1) for f in ctx.decode(av.Packet(data))]
    return np.concatenate(frames).astype(np.int16)


def _normalise(text: str) -> str:
    text = text.replace("$", "")
    for digits, words in _NUMBERS.items():
        text = text.replace(digits, words)
    return text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="", help="faster-whisper model folder")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--beam", type=int, default=1)
    ap.add_argument("--languages", default="en", help="comma-separated")
    args = ap.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    path = args.model or str(shipped_model_path())
    check_model(path, "" if args.model else PACKAGED_MODEL_SHA256)
    from faster_whisper import WhisperModel

    t0 = time.process_time()
    model = WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=args.threads)
    load_cpu = time.process_time() - t0
    languages = [x for x in args.languages.split(",") if x]
    clips = []
    for voice in VOICES:
        for sentence in SENTENCES:
            pcm = _decode_ulaw(speak_ulaw(sentence, voice))
            pad = np.zeros(8000, np.int16)
            clips.append((voice, sentence, _to_16k(np.concatenate([pad, pcm, pad]), 8000)))
    audio_s = sum(len(c[2]) for c in clips) / 16000
    errors = words = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for voice, sentence, audio in clips:
        _lang, segments = transcribe_audio(audio, languages, beam_size=args.beam, model=model)
        heard = _normalise(" ".join(s["text"] for s in segments))
        e, n = wer(sentence, heard)
        errors, words = errors + e, words + n
        print(f"  {voice:5}  {e}/{n}  {heard.strip()}")
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - wall0
    print(f"model {path}")
    print(f"threads {args.threads}  beam {args.beam}  model load {load_cpu:.2f} CPU s")
    print(f"audio {audio_s:.1f} s in {len(clips)} clips (8 kHz u-law, espeak-ng)")
    print(f"CPU seconds per audio second: {cpu / audio_s:.3f}")
    print(f"wall seconds per audio second: {wall / audio_s:.3f}")
    print(f"word error rate: {errors / words:.3f} ({errors}/{words} words)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
