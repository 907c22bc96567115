"""Codecs through the recorder: a call whose audio is known, recorded and decoded back.

Each test sends one call through a real recorder process over loopback sockets with the
replay tool as the SRC, then checks the finished recording against an independent decode
of what was sent:

* the decoded MP3's envelope correlates (>= 0.9) with a PyAV/FFmpeg decode of the sent
  payloads laid at their send times, and both the indexed duration and the MP3's length
  are within 2 % of the sent audio's;
* the index row's stream names the codec, and the MP3 is 16 kHz when a leg is wideband
  (G.722, AMR-WB, Opus) and 8 kHz otherwise.

G.722, G.729 and Opus come from corpus captures. AMR and AMR-WB have no capture, so a
speech-like signal is encoded here (opencore-amrnb through PyAV, vo-amrwbenc through ctypes),
packed into RFC 4867 payloads by this module (octet-aligned and bandwidth-efficient, one or
two frames a packet) and sent as an in-memory call; the reference decodes the encoder's
storage-format frames with opencore's decoders, so neither the recorder's depacketiser nor
its (FFmpeg native) AMR decoders take part in it. Opus is referenced with libopus, the
recorder decodes with FFmpeg's own decoder.

iLBC is a codec the recorder cannot decode: the call is still recorded, the stream says
``unsupported_codec`` with its packets counted, and the leg's RTP is kept beside the MP3
as a pcap that the sidecar names.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import hashlib
import json
import shutil
import subprocess
from collections.abc import Callable, Sequence
from typing import Any

import av
import numpy as np
import pytest

from siprec_recorder.replay.api import load_call, replay_capture
from siprec_recorder.replay.calls import CapturedCall, Leg, RtpRecord
from siprec_recorder.replay.src import ReplayResult, SrcOptions, replay_call

from .audio import decode_mp3, envelope_match
from .conftest import PCAPS
from .test_replay_g711 import check_common

pytestmark = [pytest.mark.integration]

WIDEBAND = {"G722", "AMR-WB", "OPUS"}


# -- independent reference decoding -----------------------------------------------------------


def av_decoder(codec: str, rate: int) -> Callable[[bytes], np.ndarray]:
    """A stateful FFmpeg decoder (one context for the whole leg): payload -> float mono."""
    ctx: Any = av.CodecContext.create(codec, "r")
    ctx.sample_rate = rate
    ctx.layout = "mono"

    def decode(payload: bytes) -> np.ndarray:
        out: list[np.ndarray] = []
        for frame in ctx.decode(av.Packet(payload)):
            a = frame.to_ndarray()
            a = a[0] if a.ndim == 2 and a.shape[0] > 1 and frame.format.is_planar else a
            a = a.reshape(-1)
            out.append(a.astype(np.float32) / 32768.0 if a.dtype == np.int16 else a)
        return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)

    return decode


def lay_out(pieces: Sequence[tuple[float, np.ndarray]], rate: int) -> np.ndarray:
    """Decoded pieces (offset seconds, samples) on one timeline."""
    if not pieces:
        return np.zeros(0, np.float32)
    end = max(int(round(t * rate)) + len(s) for t, s in pieces)
    out = np.zeros(end, np.float32)
    for t, s in pieces:
        start = int(round(t * rate))
        out[start : start + len(s)] = s
    return out


def sent_window(call: CapturedCall, max_seconds: float | None) -> tuple[float, float]:
    """The replay tool's media window on the capture clock (see replay/src.py)."""
    start = min(leg.packets[0].time for leg in call.legs if leg.packets)
    return start, start + max_seconds if max_seconds is not None else float("inf")


def check_recording(
    rec: Any,
    result: ReplayResult,
    expected: np.ndarray,
    exp_rate: int,
    codec: str,
) -> dict[str, Any]:
    """The shared assertions: row, codec, sample rate, envelope and duration."""
    assert result.ok, result
    row = rec.wait_for_recordings(1)[0]
    mp3 = check_common(rec, row, result)
    audio = [s for s in row["streams"] if s["packets_received"]]
    assert audio, row["streams"]
    for stream in audio:
        assert stream["codec"].upper() == codec, stream
        assert stream["status"] == "ok", stream
    rate = 16000 if codec in WIDEBAND else 8000
    assert row["sample_rate"] == rate, row["sample_rate"]
    got, mp3_rate = decode_mp3(mp3)
    assert mp3_rate == rate
    corr, lag = envelope_match(got[:, 0], mp3_rate, expected, exp_rate)
    assert corr >= 0.9, (corr, lag)
    sent_s = len(expected) / exp_rate
    assert abs(row["duration_s"] - sent_s) / sent_s < 0.02, (row["duration_s"], sent_s)
    assert abs(len(got) / mp3_rate - sent_s) / sent_s < 0.02, (len(got) / mp3_rate, sent_s)
    return row  # type: ignore[no-any-return]


# -- corpus captures: G.722, G.729, Opus --------------------------------------------------------

# (capture, codec as the row names it, FFmpeg reference decoder, its rate, transport, seconds)
CORPUS = [
    pytest.param("drawmycall_sip-rtp-g722.pcap", "G722", "g722", 16000, "udp", None, id="g722-sip"),
    pytest.param("miarec_10a_g722.pcap", "G722", "g722", 16000, "tcp", 10.0, id="g722-rtp-only"),
    pytest.param(
        "drawmycall_sip-rtp-g729a.pcap", "G729", "g729", 8000, "tcp", None, id="g729a-sip"
    ),
    pytest.param("miarec_12a_g729.pcap", "G729", "g729", 8000, "udp", 10.0, id="g729-rtp-only"),
    # libopus as the reference: the recorder decodes with FFmpeg's native Opus decoder.
    pytest.param(
        "drawmycall_sip-rtp-opus.pcap", "OPUS", "libopus", 48000, "udp", None, id="opus-sip"
    ),
]


@pytest.mark.parametrize(("pcap", "codec", "decoder", "rate", "transport", "seconds"), CORPUS)
def test_corpus_codec_recorded_and_decoded(
    recorder_factory: Any,
    pcap: str,
    codec: str,
    decoder: str,
    rate: int,
    transport: str,
    seconds: float | None,
) -> None:
    path = PCAPS / pcap
    rec = recorder_factory()
    result = asyncio.run(
        replay_capture(path, rec.listeners[transport], transport=transport, max_seconds=seconds)
    )
    call = load_call(path)
    start, end = sent_window(call, seconds)
    legs: list[np.ndarray] = []
    for leg in call.legs:
        sent = [p for p in leg.packets if start <= p.time < end]
        assert {leg.rtpmap[p.payload_type].split("/")[0].upper() for p in sent} == {codec}
        decode = av_decoder(decoder, rate)
        legs.append(lay_out([(p.time - start, decode(p.payload)) for p in sent], rate))
    expected = np.zeros(max(len(x) for x in legs), np.float32)
    for x in legs:
        expected[: len(x)] += x
    row = check_recording(rec, result, expected, rate, codec)
    decoded_rate = {"G722": 16000, "G729": 8000, "OPUS": 48000}[codec]
    assert {s["sample_rate"] for s in row["streams"] if s["packets_received"]} == {decoded_rate}


# -- AMR and AMR-WB, synthesised -------------------------------------------------------------

# Speech bits per frame type, 3GPP TS 26.101 table 1a (AMR) and TS 26.201 table 1a (AMR-WB).
AMR_BITS = {0: 95, 1: 103, 2: 118, 3: 134, 4: 148, 5: 159, 6: 204, 7: 244, 8: 39}
AMR_WB_BITS = {0: 132, 1: 177, 2: 253, 3: 285, 4: 317, 5: 365, 6: 397, 7: 461, 8: 477, 9: 40}
NO_MODE_REQUEST = 15  # CMR value: no mode request (RFC 4867 section 4.3.1)


def speech_like(seconds: float, rate: int, seed: int = 4867) -> np.ndarray:
    """Voiced 'syllables' (a gliding harmonic tone) of varying length and level, with pauses."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    out = np.zeros(n, np.float64)
    pos = int(0.2 * rate)
    while pos < n:
        length = int(rng.uniform(0.15, 0.45) * rate)
        level = 10 ** (rng.uniform(-26, -8) / 20)
        t = np.arange(min(length, n - pos)) / rate
        f0 = rng.uniform(110, 220) * (1 + 0.3 * t)
        phase = 2 * np.pi * np.cumsum(f0) / rate
        voiced = sum(np.sin(k * phase) / k for k in range(1, 8))
        gate = np.sin(np.pi * np.arange(len(t)) / max(len(t), 1)) ** 0.5
        out[pos : pos + len(t)] = level * voiced * gate
        pos += length + int(rng.uniform(0.08, 0.35) * rate)
    out /= max(1.0, np.abs(out).max() / 0.9)
    return np.asarray(np.round(out * 32767), np.int16)


def av_encode(
    codec: str, pcm: np.ndarray, rate: int, frame_samples: int, bit_rate: int | None = None
) -> list[bytes]:
    """The packets a PyAV (FFmpeg) encoder makes of 16-bit mono ``pcm``, fed in frames."""
    ctx: Any = av.CodecContext.create(codec, "w")
    ctx.sample_rate = rate
    ctx.layout = "mono"
    ctx.format = "s16"
    if bit_rate is not None:
        ctx.bit_rate = bit_rate
    ctx.open()
    out: list[bytes] = []
    for i in range(0, len(pcm) - frame_samples + 1, frame_samples):
        chunk = pcm[None, i : i + frame_samples]
        frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="mono")
        frame.sample_rate = rate
        frame.pts = i
        out += [bytes(p) for p in ctx.encode(frame)]
    out += [bytes(p) for p in ctx.encode(None)]
    return out


def encode_amr_nb(pcm: np.ndarray, bit_rate: int) -> list[bytes]:
    """Storage-format frames (RFC 4867 section 5.3) from opencore-amrnb via PyAV."""
    return av_encode("libopencore_amrnb", pcm, 8000, 160, bit_rate)[: len(pcm) // 160]


def encode_amr_wb(pcm: np.ndarray, mode: int) -> list[bytes]:
    """Storage-format frames from VisualOn's AMR-WB encoder (libvo-amrwbenc, Debian
    ``libvo-amrwbenc0``) through its E_IF_* interface: PyAV wheels have no AMR-WB encoder."""
    name = ctypes.util.find_library("vo-amrwbenc") or "libvo-amrwbenc.so.0"
    try:
        lib = ctypes.CDLL(name)
    except OSError as exc:  # scripts/run-tests installs it
        pytest.fail(f"AMR-WB encoder library missing (apt-get install libvo-amrwbenc0): {exc}")
    lib.E_IF_init.restype = ctypes.c_void_p
    lib.E_IF_encode.argtypes = [
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.POINTER(ctypes.c_short),
        ctypes.POINTER(ctypes.c_ubyte),
        ctypes.c_int,
    ]
    lib.E_IF_encode.restype = ctypes.c_int
    lib.E_IF_exit.argtypes = [ctypes.c_void_p]
    state = lib.E_IF_init()
    out = (ctypes.c_ubyte * 64)()
    frames: list[bytes] = []
    try:
        for i in range(0, len(pcm) - 319, 320):
            block = np.ascontiguousarray(pcm[i : i + 320], dtype=np.int16)
            n = lib.E_IF_encode(
                state, mode, block.ctypes.data_as(ctypes.POINTER(ctypes.c_short)), out, 0
            )
            frames.append(bytes(out[:n]))
    finally:
        lib.E_IF_exit(state)
    return frames


def _frame_type(frame: bytes) -> tuple[int, int]:
    """(FT, Q) of a storage-format frame's header octet ``P FT(4) Q P P``."""
    return (frame[0] >> 3) & 0x0F, (frame[0] >> 2) & 1


def pack_octet_aligned(frames: Sequence[bytes]) -> bytes:
    """RFC 4867 section 4.4: CMR octet, one ToC octet per frame (F FT Q P P), the frames."""
    toc = b""
    for i, frame in enumerate(frames):
        ft, q = _frame_type(frame)
        more = 1 if i < len(frames) - 1 else 0
        toc += bytes([more << 7 | ft << 3 | q << 2])
    return bytes([NO_MODE_REQUEST << 4]) + toc + b"".join(f[1:] for f in frames)


def pack_bandwidth_efficient(frames: Sequence[bytes], bits_of: dict[int, int]) -> bytes:
    """RFC 4867 section 4.3: CMR(4), 6-bit ToC entries (F FT Q), the speech bits back to
    back (each frame exactly as many bits as its type has), zero padding to an octet."""
    bits = format(NO_MODE_REQUEST, "04b")
    for i, frame in enumerate(frames):
        ft, q = _frame_type(frame)
        bits += ("1" if i < len(frames) - 1 else "0") + format(ft, "04b") + str(q)
    for frame in frames:
        speech = "".join(format(b, "08b") for b in frame[1:])
        bits += speech[: bits_of[_frame_type(frame)[0]]]
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


AMR_CASES = [
    # (encoding, octet-aligned, frames per packet)
    pytest.param("AMR", True, 1, id="amr-nb-octet-aligned"),
    pytest.param("AMR", False, 2, id="amr-nb-bandwidth-efficient-2-frames"),
    pytest.param("AMR-WB", True, 2, id="amr-wb-octet-aligned-2-frames"),
    pytest.param("AMR-WB", False, 1, id="amr-wb-bandwidth-efficient"),
]


@pytest.mark.parametrize(("encoding", "octet_aligned", "per_packet"), AMR_CASES)
def test_amr_both_packings_recorded_and_decoded(
    recorder_factory: Any, encoding: str, octet_aligned: bool, per_packet: int
) -> None:
    wideband = encoding == "AMR-WB"
    rate = 16000 if wideband else 8000
    spf = rate // 50  # samples (and RTP clock ticks) per 20 ms frame
    signal = speech_like(6.0, rate)
    if wideband:
        frames = encode_amr_wb(signal, mode=8)  # 23.85 kbit/s, frame type 8
        bits_of = AMR_WB_BITS
    else:
        frames = encode_amr_nb(signal, bit_rate=12200)  # 12.2 kbit/s, frame type 7
        bits_of = AMR_BITS
    assert {_frame_type(f)[0] for f in frames} == {8 if wideband else 7}
    assert all(len(f) == 1 + (bits_of[_frame_type(f)[0]] + 7) // 8 for f in frames)

    # The reference: the storage frames through opencore's decoder, each at its send time.
    decode = av_decoder("libopencore_amrwb" if wideband else "libopencore_amrnb", rate)
    expected = lay_out([(k * 0.02, decode(f)) for k, f in enumerate(frames)], rate)
    # The material itself is sound: the codec kept the signal's envelope.
    assert envelope_match(expected, rate, signal.astype(np.float32) / 32768, rate)[0] >= 0.95

    pt = 97 if wideband else 96
    packets = []
    for n, k in enumerate(range(0, len(frames), per_packet)):
        group = frames[k : k + per_packet]
        payload = (
            pack_octet_aligned(group) if octet_aligned else pack_bandwidth_efficient(group, bits_of)
        )
        packets.append(
            RtpRecord(
                time=k * 0.02,
                payload_type=pt,
                marker=n == 0,
                sequence_number=(4000 + n) & 0xFFFF,
                timestamp=(123456 + k * spf) & 0xFFFFFFFF,
                ssrc=0x4867AB01,
                payload=payload,
            )
        )
    fmtp = "octet-align=1" if octet_aligned else "mode-change-capability=2"
    leg = Leg(
        role="caller",
        aor="sip:+32470000001@src.example",
        src=None,
        dst=None,
        packets=tuple(packets),
        rtpmap={pt: f"{encoding}/{rate}"},
        fmtp={pt: fmtp},
    )
    call = CapturedCall(
        None, leg.aor, "sip:+32470000002@src.example", (leg,), 0.0, packets[-1].time
    )
    rec = recorder_factory()
    result = asyncio.run(replay_call(call, SrcOptions(to=rec.listeners["udp"])))
    # The answer takes the offered codec and, RFC 4867 section 8.3, the same packing.
    answer = set((result.answer_sdp or "").splitlines())
    assert f"a=rtpmap:{pt} {encoding}/{rate}" in answer, answer
    assert (f"a=fmtp:{pt} octet-align=1" in answer) == octet_aligned, answer
    row = check_recording(rec, result, expected, rate, encoding)
    assert [s["sample_rate"] for s in row["streams"]] == [rate]
    assert row["streams"][0]["packets_received"] == len(packets)


# -- an unsupported codec: iLBC ---------------------------------------------------------------


def test_unsupported_codec_recorded_counted_and_kept(recorder_factory: Any) -> None:
    path = PCAPS / "drawmycall_sip-rtp-ilbc.pcap"
    rec = recorder_factory()
    result = asyncio.run(replay_capture(path, rec.listeners["udp"]))
    assert result.ok, result
    row = rec.wait_for_recordings(1)[0]
    mp3 = check_common(rec, row, result)  # packets counted, none lost
    (stream,) = row["streams"]
    assert stream["codec"] == "iLBC"
    assert stream["status"] == "unsupported_codec"
    assert stream["packets_received"] == result.packets_sent[stream["label"]] == 284
    assert row["sample_rate"] == 8000 and stream["sample_rate"] is None  # nothing decoded
    # The call is on the timeline (silence where the leg could not be decoded).
    call = load_call(path)
    (leg,) = call.legs
    span = leg.packets[-1].time - leg.packets[0].time + 0.03
    assert abs(row["duration_s"] - span) / span < 0.02, (row["duration_s"], span)

    # The packets themselves are kept beside the MP3, named by the sidecar.
    sidecar = json.loads(mp3.with_suffix(".json").read_text())
    (side_stream,) = sidecar["streams"]
    assert side_stream["status"] == "unsupported_codec"
    raw = side_stream["raw_rtp"]
    assert raw["format"] == "pcap" and raw["packets"] == 284, raw
    kept = mp3.parent / raw["file"]
    assert kept.parent == mp3.parent and kept.suffix == ".pcap"
    assert hashlib.sha256(kept.read_bytes()).hexdigest() == raw["sha256"]
    assert kept.stat().st_size == raw["size_bytes"]
    # Read back with the replay tool's capture reader: one RTP-only leg.
    (kept_leg,) = load_call(kept).legs
    records = kept_leg.packets
    assert kept_leg.dst is not None
    assert [r.payload for r in records] == [p.payload for p in leg.packets]
    assert [(r.payload_type, r.sequence_number, r.timestamp, r.ssrc) for r in records] == [
        (p.payload_type, p.sequence_number, p.timestamp, p.ssrc) for p in leg.packets
    ]
    # Arrival times, relative to the first packet, follow the capture's pacing.
    arrived = np.array([r.time for r in records]) - records[0].time
    captured = np.array([p.time for p in leg.packets]) - leg.packets[0].time
    assert np.abs(arrived - captured).max() < 0.5
    # Wireshark reads it too (IPv4 checksums checked), as RTP on the leg's port.
    if shutil.which("tshark"):
        fields = subprocess.run(
            ["tshark", "-r", str(kept), "-o", "ip.check_checksum:TRUE"]
            + ["-d", f"udp.port=={kept_leg.dst[1]},rtp", "-T", "fields"]
            + ["-e", "ip.checksum.status", "-e", "rtp.seq", "-e", "rtp.ssrc"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.split("\n")
        rows = [line.split("\t") for line in fields if line]
        assert [(st, int(seq)) for st, seq, _ssrc in rows] == [
            ("1", p.sequence_number) for p in leg.packets
        ]
        assert {int(ssrc, 16) for _st, _seq, ssrc in rows} == {leg.packets[0].ssrc}
