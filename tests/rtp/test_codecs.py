from pathlib import Path

import numpy as np
import pytest

from siprec_recorder.rtp.codecs import (
    ALAW_TABLE,
    ULAW_TABLE,
    TelephoneEvent,
    alaw_encode,
    cn_level_dbov,
    get_decoder,
    parse_telephone_event,
    ulaw_encode,
)
from siprec_recorder.rtp.codecs.amr import AMR_NB_BITS, AMR_WB_BITS, to_storage_frames
from siprec_recorder.rtp.errors import RtpParseError
from siprec_recorder.rtp.packet import RtpPacket
from siprec_recorder.rtp.pcapio import read_udp

from ._avref import av_decode, av_encode, dominant_hz

V = Path(__file__).parents[1] / "vectors" / "rtp"
PCAPS = Path(__file__).parents[2] / "pcaps"  # captures kept once, with their provenance


def sine(freq: float, seconds: float, rate: int, amp: float = 8000.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def rtp_payloads(pcap: Path, dport: int | None = None) -> list[bytes]:
    out = []
    for d in read_udp(pcap):
        if dport is not None and d.dport != dport:
            continue
        if len(d.payload) >= 12 and d.payload[0] >> 6 == 2:
            out.append(RtpPacket.parse(d.payload))
    out.sort(key=lambda p: p.sequence_number)
    return [p.payload for p in out]


# -- G.711 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "table", "ref"),
    [
        ("PCMU", ULAW_TABLE, "pcm_mulaw"),
        ("PCMA", ALAW_TABLE, "pcm_alaw"),
    ],
)
def test_g711_tables_match_ffmpeg(encoding: str, table: np.ndarray, ref: str) -> None:
    all_codes = bytes(range(256))
    expected = av_decode(ref, 8000, [all_codes])
    assert np.array_equal(table, expected)
    dec = get_decoder(encoding, 8000, None)
    assert dec is not None and dec.sample_rate == 8000
    assert np.array_equal(dec.decode(all_codes), expected)
    samples, lengths = dec.decode_run([all_codes[:100], b"", all_codes[100:]])
    assert np.array_equal(samples, expected) and lengths.tolist() == [100, 0, 156]


def test_g711_encoders_invert_tables() -> None:
    assert alaw_encode(ALAW_TABLE) == bytes(range(256))
    codes = ulaw_encode(ULAW_TABLE)
    assert np.array_equal(ULAW_TABLE[np.frombuffer(codes, np.uint8)], ULAW_TABLE)
    pcm = sine(1000, 0.1, 8000)
    for enc, table in ((alaw_encode, ALAW_TABLE), (ulaw_encode, ULAW_TABLE)):
        back = table[np.frombuffer(enc(pcm), np.uint8)].astype(np.int32)
        assert np.max(np.abs(back - pcm)) <= 256


# -- PyAV codecs -----------------------------------------------------------------------------


def test_g722_decodes_ffmpeg_encoded_payload() -> None:
    pcm = sine(440, 1.0, 16000)
    packets = av_encode("g722", 16000, pcm)
    dec = get_decoder("G722", 8000, None)
    assert dec is not None and dec.sample_rate == 16000 and dec.clock_rate == 8000
    out, lengths = dec.decode_run(packets)
    assert lengths.tolist() == [320] * len(packets)
    assert np.array_equal(out, av_decode("g722", 16000, packets))
    assert abs(dominant_hz(out[1600:], 16000) - 440) < 5


def test_g722_capture_decodes() -> None:
    payloads = rtp_payloads(PCAPS / "miarec_10a_g722.pcap")
    dec = get_decoder("G722", 8000, None)
    assert dec is not None
    out, lengths = dec.decode_run(payloads)
    assert len(out) == 2 * sum(len(p) for p in payloads)
    assert np.sqrt(np.mean(out.astype(np.float64) ** 2)) > 100


def test_g729_capture_decodes() -> None:
    payloads = rtp_payloads(PCAPS / "miarec_12a_g729.pcap")
    dec = get_decoder("G729", 8000, None)
    assert dec is not None
    out, lengths = dec.decode_run(payloads)
    # 10 octets per 10 ms frame -> 80 samples
    assert lengths.tolist() == [len(p) // 10 * 80 for p in payloads]
    assert np.sqrt(np.mean(out.astype(np.float64) ** 2)) > 100


def test_opus_decodes_ffmpeg_encoded_payload() -> None:
    pcm = sine(440, 1.0, 48000)
    packets = av_encode("opus", 48000, pcm, fmt="flt")
    dec = get_decoder("opus", 48000, "useinbandfec=1")
    assert dec is not None and dec.sample_rate == 48000
    out, lengths = dec.decode_run(packets)
    assert set(lengths.tolist()) == {960}
    assert abs(dominant_hz(out[4800:], 48000) - 440) < 5


def test_opus_capture_decodes() -> None:
    payloads = rtp_payloads(PCAPS / "drawmycall_sip-rtp-opus.pcap", dport=6000)
    dec = get_decoder("OPUS", 48000, None)
    assert dec is not None
    out, lengths = dec.decode_run(payloads)
    assert len(out) >= 960 * len(payloads) * 0.9


def test_gsm_capture_decodes() -> None:
    payloads = [
        p.payload
        for p in (
            RtpPacket.parse(d.payload)
            for d in read_udp(V / "drawmycall_sip-rtp-gsm.pcap")
            if d.dport == 6000 and d.payload[0] >> 6 == 2
        )
    ]
    assert len(payloads) == 425 and {len(p) for p in payloads} == {33}
    dec = get_decoder("GSM", 8000, None)
    assert dec is not None
    out, lengths = dec.decode_run(payloads)
    assert set(lengths.tolist()) == {160}
    assert np.sqrt(np.mean(out.astype(np.float64) ** 2)) > 100


# -- AMR ---------------------------------------------------------------------------------------


class BitWriter:
    def __init__(self) -> None:
        self.value = 0
        self.bits = 0

    def put(self, value: int, n: int) -> None:
        self.value = (self.value << n) | (value & ((1 << n) - 1))
        self.bits += n

    def put_bytes(self, data: bytes, nbits: int) -> None:
        self.put(int.from_bytes(data, "big") >> (len(data) * 8 - nbits), nbits)

    def to_bytes(self) -> bytes:
        pad = -self.bits % 8
        return (self.value << pad).to_bytes((self.bits + pad) // 8, "big")


def octet_aligned(frames: list[bytes], cmr: int = 15) -> bytes:
    last = len(frames) - 1
    toc = bytes(((0x80 if i < last else 0) | (f[0] & 0x7C)) for i, f in enumerate(frames))
    return bytes([cmr << 4]) + toc + b"".join(f[1:] for f in frames)


def bandwidth_efficient(frames: list[bytes], table: dict[int, int], cmr: int = 15) -> bytes:
    w = BitWriter()
    w.put(cmr, 4)
    for i, f in enumerate(frames):
        ft, q = (f[0] >> 3) & 0x0F, (f[0] >> 2) & 1
        w.put(1 if i < len(frames) - 1 else 0, 1)
        w.put(ft, 4)
        w.put(q, 1)
    for f in frames:
        ft = (f[0] >> 3) & 0x0F
        w.put_bytes(f[1:], table[ft])
    return w.to_bytes()


def test_amr_nb_both_packings_decode_like_storage_frames() -> None:
    pcm = sine(440, 1.0, 8000)
    frames = av_encode("libopencore_amrnb", 8000, pcm, bit_rate=12200)
    assert all(len(f) == 32 and (f[0] >> 3) & 0xF == 7 for f in frames)
    reference = av_decode("amrnb", 8000, frames)
    # two frames per RTP packet
    pairs = [frames[i : i + 2] for i in range(0, len(frames) - 1, 2)]
    for fmtp, pack in (
        ("octet-align=1", octet_aligned),
        ("mode-set=7", lambda fr: bandwidth_efficient(fr, AMR_NB_BITS)),
    ):
        payloads = [pack(p) for p in pairs]
        octet = fmtp == "octet-align=1"
        for p, fr in zip(payloads, pairs, strict=True):
            assert to_storage_frames(p, wideband=False, octet_aligned=octet) == fr
        dec = get_decoder("AMR", 8000, fmtp)
        assert dec is not None and dec.sample_rate == 8000
        out, lengths = dec.decode_run(payloads)
        assert lengths.tolist() == [320] * len(payloads)
        assert np.array_equal(out, reference[: len(out)])


def test_amr_wb_depacketizer_and_decoder_on_synthetic_frames() -> None:
    # No AMR-WB encoder here: any bit pattern of the right length is a decodable frame,
    # so random 23.85 kbit/s (FT 8, 477 bits) frames exercise both packings end to end.
    rng = np.random.default_rng(7)
    frames = []
    for _ in range(20):
        speech = bytearray(rng.integers(0, 256, 60, dtype=np.uint8).tobytes())
        speech[-1] &= 0xE0  # 477 bits = 59 octets + 5 bits
        frames.append(bytes([8 << 3 | 0x04]) + bytes(speech))
    oa = [octet_aligned([f]) for f in frames]
    be = [bandwidth_efficient([f], AMR_WB_BITS) for f in frames]
    assert len(be[0]) == 61  # 4 + 6 + 477 bits -> 487 -> 61 octets
    for p, f in zip(oa, frames, strict=True):
        assert to_storage_frames(p, wideband=True, octet_aligned=True) == [f]
    for p, f in zip(be, frames, strict=True):
        assert to_storage_frames(p, wideband=True, octet_aligned=False) == [f]
    d1 = get_decoder("AMR-WB", 16000, "octet-align=1")
    d2 = get_decoder("AMR-WB", 16000, None)
    assert d1 is not None and d2 is not None and d1.sample_rate == 16000
    out1, len1 = d1.decode_run(oa)
    out2, len2 = d2.decode_run(be)
    assert len1.tolist() == [320] * 20
    assert np.array_equal(out1, out2)
    assert np.array_equal(out1, av_decode("amrwb", 16000, frames))


def test_amr_errors_and_unsupported_options() -> None:
    with pytest.raises(RtpParseError, match="AMR speech frame truncated"):
        to_storage_frames(bytes([0xF0, 0x3C]) + bytes(5), wideband=False, octet_aligned=True)
    with pytest.raises(RtpParseError, match="frame type 12 is not valid"):
        to_storage_frames(bytes([0xF0, 12 << 3]), wideband=False, octet_aligned=True)
    assert to_storage_frames(bytes([0xF0, 15 << 3]), wideband=False, octet_aligned=True) == [
        bytes([15 << 3])
    ]
    assert get_decoder("AMR", 8000, "octet-align=1; crc=1") is None
    assert get_decoder("AMR-WB", 16000, "interleaving=4") is None


def test_unsupported_codecs() -> None:
    assert get_decoder("L16", 8000, None) is None
    assert get_decoder("telephone-event", 8000, "0-15") is None
    assert get_decoder("X-UNKNOWN", 8000, None) is None


# -- telephone-event, CN -------------------------------------------------------------------------


def test_telephone_event_parse() -> None:
    ev = parse_telephone_event(b"\x05\x8a\x03\x20")
    assert ev == TelephoneEvent(event=5, end=True, volume=10, duration=800)
    assert ev.digit == "5" and ev.serialize() == b"\x05\x8a\x03\x20"
    assert parse_telephone_event(b"\x0b\x0a\x00\xa0").digit == "#"
    assert parse_telephone_event(b"\x10\x00\x00\x00").digit == "flash"
    assert parse_telephone_event(b"\x40\x00\x00\x00").digit is None
    with pytest.raises(RtpParseError, match=r"telephone-event payload too short \(3 bytes\)"):
        parse_telephone_event(b"\x05\x8a\x03")


def test_telephone_event_capture() -> None:
    events = []
    for d in read_udp(V / "sipp_dtmf_2833_5.pcap"):
        p = RtpPacket.parse(d.payload)
        events.append(parse_telephone_event(p.payload))
    assert {e.event for e in events} == {5}
    assert events[-1].end and sum(e.end for e in events) >= 3


def test_cn_level() -> None:
    assert cn_level_dbov(b"\x40\x01\x02") == 64
    assert cn_level_dbov(b"") == 127
