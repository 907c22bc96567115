"""Speech with known words for transcription tests and the benchmark: espeak-ng, one voice
per leg, through G.711 u-law at 8 kHz as a phone would send it."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np

from siprec_recorder.replay.calls import CapturedCall, Leg, RtpRecord

__all__ = ["have_espeak", "speech_call", "speak_ulaw"]

SILENCE = b"\xff"  # u-law zero


def have_espeak() -> bool:
    return shutil.which("espeak-ng") is not None and shutil.which("sox") is not None


def speak_ulaw(text: str, voice: str) -> bytes:
    """``text`` said by espeak-ng ``voice``, as 8 kHz u-law bytes."""
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", "150", "--stdout", text], capture_output=True, check=True
    ).stdout
    return subprocess.run(
        ["sox", "-t", "wav", "-", "-r", "8000", "-c", "1", "-e", "mu-law", "-t", "raw", "-"],
        input=wav,
        capture_output=True,
        check=True,
    ).stdout


def _packets(audio: bytes, ssrc: int, pt: int = 0) -> tuple[RtpRecord, ...]:
    out = []
    for n in range(len(audio) // 160):
        out.append(
            RtpRecord(
                time=n * 0.02,
                payload_type=pt,
                marker=n == 0,
                sequence_number=(1000 + n) & 0xFFFF,
                timestamp=(5000 + n * 160) & 0xFFFFFFFF,
                ssrc=ssrc,
                payload=audio[n * 160 : (n + 1) * 160],
            )
        )
    return tuple(out)


def speech_call(
    turns: list[tuple[str, str, str, float]],
    caller: str = "sip:+32470000001@src.example",
    callee: str = "sip:+32470000002@src.example",
    tail_s: float = 1.0,
) -> tuple[CapturedCall, dict[str, list[tuple[str, float]]]]:
    """A two-leg call: ``turns`` are (role, voice, text, at seconds). Each leg carries only
    its own turns (silence elsewhere). Returns the call and, per role, (text, at)."""
    said: dict[str, list[tuple[str, float]]] = {"caller": [], "callee": []}
    clips = []
    for role, voice, text, at in turns:
        clip = speak_ulaw(text, voice)
        clips.append((role, clip, at))
        said[role].append((text, at))
    total = max(at + len(clip) / 8000 for _r, clip, at in clips) + tail_s
    n = int(total * 8000) // 160 * 160
    tracks = {r: bytearray(SILENCE * n) for r in ("caller", "callee")}
    for role, clip, at in clips:
        start = int(at * 8000)
        tracks[role][start : start + len(clip)] = clip[: n - start]
    legs = tuple(
        Leg(
            role=role,
            aor=aor,
            src=None,
            dst=None,
            packets=_packets(bytes(tracks[role]), ssrc),
            rtpmap={0: "PCMU/8000"},
        )
        for role, aor, ssrc in (("caller", caller, 0x1111), ("callee", callee, 0x2222))
    )
    return CapturedCall(None, caller, callee, legs, 0.0, n / 8000), said


def words(text: str) -> list[str]:
    import re

    return re.findall(r"[a-z0-9']+", text.lower())


def wer(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edit distance in words, reference length)."""
    r, h = words(reference), words(hypothesis)
    d = np.arange(len(h) + 1)
    for i in range(1, len(r) + 1):
        prev, d = d, d.copy()
        d[0] = i
        for j in range(1, len(h) + 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (r[i - 1] != h[j - 1]))
    return int(d[len(h)]), len(r)
