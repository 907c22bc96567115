"""Nobody can put audio into a recording (the audit's "audio injection" finding).

A live call (the SRC streams a 440 Hz tone whose level changes every 100 ms, from the port
its offer names) is attacked while it runs:

* from another address (127.0.0.2) with a new SSRC, and with the call's own SSRC one
  sequence number ahead (so that the injected packets would win the jitter buffer);
* from the SRC's own address with a second SSRC, interleaved with the real stream.

The injected audio is a loud 1,200 Hz tone. The recording must be the SRC's audio only:
its envelope follows the sent levels, it holds no 1,200 Hz energy, and the index counts the
rejected packets of the stream.
"""

from __future__ import annotations

import secrets
import socket
import sqlite3
import threading
import time
from typing import Any

import numpy as np
import pytest

from tests.compliance.srcdriver import PTIME, SAMPLES, SrcCall, levels, lin2alaw
from tests.compliance.test_crash import audio_extent
from tests.integration.audio import decode_mp3

pytestmark = [pytest.mark.integration, pytest.mark.slow]

INJECT_HZ = 1200.0


def _inject(sock: socket.socket, dest: tuple[str, int], ssrc: int, seq0: int, count: int) -> None:
    t = np.arange(count * SAMPLES) / 8000
    payload = lin2alaw((np.sin(2 * np.pi * INJECT_HZ * t) * 0.95 * 32767).astype(np.int16))
    t0 = time.perf_counter()
    for i in range(count):
        delay = t0 + i * PTIME - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        header = (
            bytes([0x80, 0x08])
            + ((seq0 + i) & 0xFFFF).to_bytes(2, "big")
            + ((seq0 + i - 1000) * SAMPLES & 0xFFFFFFFF).to_bytes(4, "big")
            + ssrc.to_bytes(4, "big")
        )
        sock.sendto(header + payload[i * SAMPLES : (i + 1) * SAMPLES], dest)


def _band_energy(pcm: np.ndarray, rate: int, hz: float) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    freqs = np.fft.rfftfreq(len(pcm), 1 / rate)
    band = (freqs > hz - 30) & (freqs < hz + 30)
    return float(spectrum[band].sum())


def test_injected_rtp_never_reaches_the_recording(recorder: Any) -> None:
    call = SrcCall(recorder.listeners["udp"], seed=21, caller="+32470000521")
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.bind(("127.0.0.2", 0))
    try:
        assert call.invite().status == 200
        call.start_audio(5.0)
        time.sleep(0.5)  # the SRC's stream is established
        dest = call.media[0]
        attacks = [
            # another address, a new SSRC
            (stranger, int.from_bytes(secrets.token_bytes(4), "big"), 5000, 50),
            # another address, the call's SSRC one packet ahead of it
            (stranger, call.ssrc, call.seq0 + call.packets_sent + 1, 50),
            # the SRC's own address, a second SSRC beside the live one
            (call.rtp, int.from_bytes(secrets.token_bytes(4), "big"), 9000, 50),
        ]
        for sock, ssrc, seq0, count in attacks:
            worker = threading.Thread(target=_inject, args=(sock, dest, ssrc, seq0, count))
            worker.start()
            worker.join(10)
        call.wait_audio(10)
        sent = call.packets_sent
        assert call.bye().status == 200
    finally:
        call.close()
        stranger.close()

    (row,) = recorder.wait_for_recordings(1)
    assert row["state"] == "complete", row
    mp3 = recorder.recordings / row["file"]
    start, end, blocks, _rate = audio_extent(mp3)
    assert abs((end - start) - sent * PTIME) < 0.2
    expected = levels(21, 5.0)[: len(blocks)] * 32767 / np.sqrt(2) / 32768
    k = min(len(blocks), len(expected)) - 1
    corr = float(np.corrcoef(blocks[:k], expected[:k])[0, 1])
    assert corr > 0.95, f"the recorded envelope is not the SRC's (corr {corr:.3f})"
    pcm, rate = decode_mp3(mp3)
    x = pcm[:, 0]
    injected, own = _band_energy(x, rate, INJECT_HZ), _band_energy(x, rate, 440.0)
    assert injected < own * 0.01, f"injected tone in the recording ({injected / own:.3f})"
    print(f"envelope corr {corr:.3f}, injected/own energy {injected / own:.5f}")

    db = recorder.recordings / "index.sqlite3"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        counts = dict(
            conn.execute(
                "SELECT label, rejected_source || '/' || rejected_ssrc FROM recording_streams "
                "WHERE recording_id = ?",
                (row["id"],),
            ).fetchall()
        )
    finally:
        conn.close()
    src_rejected, ssrc_rejected = (int(v) for v in counts["1"].split("/"))
    assert src_rejected == 100, counts  # both attacks from 127.0.0.2, every packet
    assert ssrc_rejected == 50, counts  # the second sender on the SRC's own address
