"""Capture reading and call finding for every capture in pcaps/, plus synthetic formats."""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siprec_recorder.replay.calls import find_calls, is_rtp_like
from siprec_recorder.replay.capture import CaptureError, Datagram, read_capture
from siprec_recorder.replay.sipmini import StreamFramer, parse_message, parse_sdp, uri_of

PCAPS = Path(__file__).resolve().parents[2] / "pcaps"

# (file, frames, [(call_id, caller, callee, [(role, packets, payload types, codec, src, dst)])])
# Packet counts and addresses are those of PCAP_SUMMARY.md (tshark).
EXPECTED = {
    "SIP_CALL_RTP_G711.pcap": (
        4269,
        [
            (
                "12013223@200.57.7.195",
                "sip:200.57.7.195:55061;user=phone",
                "sip:francisco@bestel.com:55060",
                [
                    (
                        "caller",
                        891,
                        [8],
                        "PCMA/8000",
                        ("200.57.7.196", 40376),
                        ("200.57.7.204", 8000),
                    ),
                    (
                        "callee",
                        548,
                        [8],
                        "PCMA/8000",
                        ("200.57.7.204", 8000),
                        ("200.57.7.196", 40376),
                    ),
                ],
            )
        ],
    ),
    "sip-rtp-g711.pcap": (
        852,
        [
            (
                "1-1966@10.0.2.20",
                "sip:sipp@10.0.2.20:5060",
                "sip:test@10.0.2.15:5060",
                [("callee", 425, [0], "PCMU/8000", ("10.0.2.15", 27942), ("10.0.2.20", 6000))],
            ),
            (
                "1-1968@10.0.2.20",
                "sip:sipp@10.0.2.20:5060",
                "sip:test@10.0.2.15:5060",
                [("callee", 414, [8], "PCMA/8000", ("10.0.2.15", 28102), ("10.0.2.20", 6000))],
            ),
        ],
    ),
    "pkts_sip_rtp.pcap": (
        507,
        [
            (
                "1-7879@127.0.0.1",
                "sip:sipp@127.0.0.1:5061",
                "sip:service@127.0.0.1:5060",
                [("caller", 501, [0], "PCMU/8000", ("127.0.0.1", 6001), ("127.0.0.1", 6000))],
            )
        ],
    ),
    "drawmycall_sip-rtp-g722.pcap": (
        433,
        [
            (
                "1-2161@10.0.2.20",
                "sip:sipp@10.0.2.20:5060",
                "sip:test@10.0.2.15:5060",
                [("callee", 425, [9], "G722/8000", ("10.0.2.15", 17472), ("10.0.2.20", 6000))],
            )
        ],
    ),
    "drawmycall_sip-rtp-opus.pcap": (
        433,
        [
            (
                "1-4237@10.0.2.20",
                "sip:sipp@10.0.2.20:5060",
                "sip:test@10.0.2.15:5060",
                [("callee", 425, [99], "opus/48000/2", ("10.0.2.15", 24196), ("10.0.2.20", 6000))],
            )
        ],
    ),
    "drawmycall_sip-rtp-g729a.pcap": (
        433,
        [
            (
                "1-24411@10.0.2.20",
                "sip:sipp@10.0.2.20:5060",
                "sip:test@10.0.2.15:5060",
                [("callee", 425, [18], "G729/8000", ("10.0.2.15", 28120), ("10.0.2.20", 6000))],
            )
        ],
    ),
    "sipp_g711a.pcap": (
        236,
        [
            (
                None,
                "sip:caller@10.1.3.143",
                "sip:callee@10.1.6.18",
                [("caller", 236, [8], "PCMA/8000", ("10.1.3.143", 5000), ("10.1.6.18", 2006))],
            )
        ],
    ),
    "miarec_g711a.pcap": (
        5535,
        [
            (
                None,
                "sip:caller@81.23.228.146",
                "sip:callee@192.168.99.53",
                [
                    (
                        "caller",
                        5535,
                        [8],
                        "PCMA/8000",
                        ("81.23.228.146", 52024),
                        ("192.168.99.53", 35886),
                    )
                ],
            )
        ],
    ),
    "sipnab_SIP_DTMF2.cap": (
        1360,
        [
            (
                "25672@192.168.105.110",
                "sip:2502@192.168.105.105",
                "sip:2504@192.168.105.105",
                [
                    (
                        "caller",
                        665,
                        [8],
                        "PCMA/8000",
                        ("192.168.105.110", 4374),
                        ("192.168.105.172", 4376),
                    ),
                    (
                        "callee",
                        666,
                        [8, 96],
                        "PCMA/8000",
                        ("192.168.105.172", 4376),
                        ("192.168.105.110", 4376),
                    ),
                ],
            )
        ],
    ),
    "gteissier_marseillaise-srtp.pcap": (
        11888,
        [
            (
                None,
                "sip:caller@10.1.1.1",
                "sip:callee@10.2.2.2",
                [("caller", 11888, [8], "PCMA/8000", ("10.1.1.1", 10000), ("10.2.2.2", 10000))],
            )
        ],
    ),
    "miarec_10a_g722.pcap": (
        972,
        [
            (
                None,
                "sip:caller@192.91.191.186",
                "sip:callee@192.168.1.40",
                [
                    (
                        "caller",
                        969,
                        [9],
                        "G722/8000",
                        ("192.91.191.186", 16506),
                        ("192.168.1.40", 22000),
                    )
                ],
            )
        ],
    ),
    "miarec_12a_g729.pcap": (
        1073,
        [
            (
                None,
                "sip:caller@192.91.191.186",
                "sip:callee@192.168.1.40",
                [
                    (
                        "caller",
                        1071,
                        [18],
                        "G729/8000",
                        ("192.91.191.186", 16842),
                        ("192.168.1.40", 22000),
                    )
                ],
            )
        ],
    ),
    "miarec_09a_2833_dtmf.pcap": (
        2167,
        [
            (
                None,
                "sip:caller@192.91.191.186",
                "sip:callee@192.168.1.40",
                [
                    (
                        "caller",
                        2165,
                        [0, 101],
                        "PCMU/8000",
                        ("192.91.191.186", 20014),
                        ("192.168.1.40", 22130),
                    )
                ],
            )
        ],
    ),
    "drawmycall_sip-rtp-ilbc.pcap": (
        292,
        [
            (
                "1-4269@10.0.2.20",
                "sip:sipp@10.0.2.20:5060",
                "sip:test@10.0.2.15:5060",
                [
                    (
                        "callee",
                        284,
                        [99],
                        "iLBC/8000",
                        ("10.0.2.15", 25256),
                        ("10.0.2.20", 6000),
                    )
                ],
            )
        ],
    ),
}


def test_every_capture_is_covered() -> None:
    assert {p.name for p in PCAPS.iterdir() if p.suffix in (".pcap", ".cap", ".pcapng")} == set(
        EXPECTED
    )


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_capture_calls(name: str) -> None:
    frames, expected_calls = EXPECTED[name]
    capture = read_capture(PCAPS / name)
    assert capture.file_format == "pcap"
    assert capture.frames == frames
    calls = find_calls(capture)
    got = [
        (
            c.call_id,
            c.caller,
            c.callee,
            [
                (leg.role, len(leg.packets), leg.payload_types, leg.codec, leg.src, leg.dst)
                for leg in c.legs
            ],
        )
        for c in calls
    ]
    assert got == expected_calls
    for call in calls:
        for leg in call.legs:
            times = [p.time for p in leg.packets]
            assert times == sorted(times)
            assert len({p.ssrc for p in leg.packets}) == 1


def test_dtmf_capture_names_the_event_type() -> None:
    (call,) = find_calls(read_capture(PCAPS / "sipnab_SIP_DTMF2.cap"))
    callee = call.leg("callee")
    assert callee is not None
    assert callee.rtpmap[96] == "telephone-event/8000"
    events = [p for p in callee.packets if p.payload_type == 96]
    assert events and all(len(p.payload) == 4 for p in events)


def test_srtp_capture_header_fields() -> None:
    (call,) = find_calls(read_capture(PCAPS / "gteissier_marseillaise-srtp.pcap"))
    (leg,) = call.legs
    assert leg.packets[0].ssrc == 0xDEADBEEF
    assert call.callee == "sip:callee@10.2.2.2"


# -- synthetic encapsulations -------------------------------------------------------------


def _udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def _ipv4(src: str, dst: str, proto: int, payload: bytes, ident: int = 1, frag: int = 0) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(payload),
        ident,
        frag,
        64,
        proto,
        0,
        ipaddress.IPv4Address(src).packed,
        ipaddress.IPv4Address(dst).packed,
    )
    return header + payload


def _ipv4_fragments(src: str, dst: str, udp: bytes, ident: int, size: int = 512) -> list[bytes]:
    out = []
    for offset in range(0, len(udp), size):
        chunk = udp[offset : offset + size]
        more = offset + size < len(udp)
        out.append(_ipv4(src, dst, 17, chunk, ident, (0x2000 if more else 0) | (offset // 8)))
    return out


def _v6(addr: str) -> bytes:
    return ipaddress.IPv6Address((0x20010DB8 << 96) | int(ipaddress.IPv4Address(addr))).packed


def _ipv6(src: str, dst: str, udp: bytes) -> bytes:
    hop_by_hop = bytes([17, 0]) + b"\x01\x04\x00\x00\x00\x00"  # next=UDP, len 0, PadN
    payload = hop_by_hop + udp
    return struct.pack("!IHBB", 0x60000000, len(payload), 0, 64) + _v6(src) + _v6(dst) + payload


def _ether(ethertype: int, payload: bytes, vlan: bool = False) -> bytes:
    macs = b"\x02" * 6 + b"\x04" * 6
    if vlan:
        return macs + struct.pack("!HHH", 0x8100, 7, ethertype) + payload
    return macs + struct.pack("!H", ethertype) + payload


def _sll(ethertype: int, payload: bytes) -> bytes:
    return struct.pack("!HHH8sH", 0, 1, 6, b"\x02" * 6 + b"\0\0", ethertype) + payload


def _sll2(ethertype: int, payload: bytes) -> bytes:
    return struct.pack("!HHIHBB8s", ethertype, 0, 1, 1, 0, 6, b"\x02" * 8) + payload


def _pcap(
    frames: list[tuple[float, bytes]], linktype: int, *, nanos: bool = False, big: bool = False
) -> bytes:
    e = ">" if big else "<"
    magic = 0xA1B23C4D if nanos else 0xA1B2C3D4
    out = struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)
    for t, frame in frames:
        sec = int(t)
        frac = round((t - sec) * (1e9 if nanos else 1e6))
        out += struct.pack(e + "IIII", sec, frac, len(frame), len(frame)) + frame
    return out


def _pcapng(frames: list[tuple[float, bytes]], linktype: int) -> bytes:
    def block(kind: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        length = 12 + len(body)
        return struct.pack("<II", kind, length) + body + struct.pack("<I", length)

    shb = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    tsresol = struct.pack("<HHB3x", 9, 1, 9) + struct.pack("<HH", 0, 0)  # nanoseconds
    idb = block(1, struct.pack("<HHI", linktype, 0, 0) + tsresol)
    out = shb + idb
    for t, frame in frames:
        ticks = round(t * 1e9)
        out += block(
            6,
            struct.pack("<IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF, len(frame), len(frame))
            + frame,
        )
    return out


def _source_datagrams() -> list[Datagram]:
    return read_capture(PCAPS / "pkts_sip_rtp.pcap").udp


def _summary(path: Path) -> list[tuple[object, ...]]:
    return [
        (
            c.call_id,
            c.caller,
            c.callee,
            [(leg.role, [p.payload for p in leg.packets]) for leg in c.legs],
        )
        for c in find_calls(read_capture(path))
    ]


def _frames(kind: str) -> tuple[list[tuple[float, bytes]], int]:
    frames: list[tuple[float, bytes]] = []
    for i, d in enumerate(_source_datagrams()):
        udp = _udp(d.src[1], d.dst[1], d.payload)
        src, dst = d.src[0], d.dst[0]
        if kind == "ipv6":
            frames.append((d.time, _ether(0x86DD, _ipv6(src, dst, udp))))
        elif kind == "fragments":
            if len(udp) > 600:
                for piece in reversed(_ipv4_fragments(src, dst, udp, ident=i)):  # out of order
                    frames.append((d.time, _ether(0x0800, piece)))
            else:
                frames.append((d.time, _ether(0x0800, _ipv4(src, dst, 17, udp, ident=i))))
        else:
            frames.append((d.time, _ipv4(src, dst, 17, udp, ident=i)))
    wrap: dict[str, tuple[Callable[[bytes], bytes], int]] = {
        "vlan": (lambda f: _ether(0x0800, f, vlan=True), 1),
        "sll": (lambda f: _sll(0x0800, f), 113),
        "sll2": (lambda f: _sll2(0x0800, f), 276),
        "raw": (lambda f: f, 101),
        "ipv4": (lambda f: f, 228),
    }
    if kind in wrap:
        fn, linktype = wrap[kind]
        return [(t, fn(f)) for t, f in frames], linktype
    return frames, 1


@pytest.mark.parametrize("kind", ["vlan", "sll", "sll2", "raw", "ipv4", "ipv6", "fragments"])
@pytest.mark.parametrize("container", ["pcap", "pcap-ns-be", "pcapng"])
def test_synthetic_encapsulations(tmp_path: Path, kind: str, container: str) -> None:
    frames, linktype = _frames(kind)
    if container == "pcapng":
        data = _pcapng(frames, linktype)
    else:
        data = _pcap(frames, linktype, nanos=container != "pcap", big=container != "pcap")
    path = tmp_path / f"x.{container}"
    path.write_bytes(data)
    capture = read_capture(path)
    assert capture.file_format == ("pcapng" if container == "pcapng" else "pcap")
    source = _source_datagrams()
    assert [(d.src[1], d.dst[1], d.payload) for d in capture.udp] == [
        (d.src[1], d.dst[1], d.payload) for d in source
    ]
    if kind == "ipv6":
        assert capture.udp[0].src[0] == "2001:db8::7f00:1"
    else:  # same addresses: the same call comes out
        assert _summary(path) == _summary(PCAPS / "pkts_sip_rtp.pcap")
    times = [d.time for d in capture.udp]
    assert abs(times[0] - _source_datagrams()[0].time) < 1e-6


def test_fragmented_sip_is_reassembled(tmp_path: Path) -> None:
    big = (
        b"INVITE sip:a@b SIP/2.0\r\nCall-ID: frag\r\nCSeq: 1 INVITE\r\n"
        + b"X-Pad: "
        + b"p" * 3000
        + b"\r\n\r\n"
    )
    frames = [
        (1.0, _ether(0x0800, f))
        for f in _ipv4_fragments("10.0.0.1", "10.0.0.2", _udp(5060, 5060, big), 77)
    ]
    path = tmp_path / "frag.pcap"
    path.write_bytes(_pcap(frames, 1))
    capture = read_capture(path)
    (d,) = capture.udp
    assert d.payload == big
    message = parse_message(d.payload)
    assert message is not None and message.call_id == "frag"


def test_truncated_and_bad_files(tmp_path: Path) -> None:
    data = (PCAPS / "sipp_g711a.pcap").read_bytes()
    (tmp_path / "cut.pcap").write_bytes(data[: len(data) - 100])
    assert read_capture(tmp_path / "cut.pcap").frames == 235
    (tmp_path / "bad.pcap").write_bytes(b"not a capture at all")
    with pytest.raises(CaptureError):
        read_capture(tmp_path / "bad.pcap")
    (tmp_path / "empty.pcap").write_bytes(data[:24])
    assert find_calls(read_capture(tmp_path / "empty.pcap")) == []


def test_junk_frames_are_skipped(tmp_path: Path) -> None:
    frames = [
        (1.0, b"\x00" * 5),
        (1.1, _ether(0x0806, b"\x00" * 28)),  # ARP
        (1.2, _ether(0x0800, b"\x45" + b"\x00" * 10)),  # short IPv4
        (1.3, _ether(0x0800, _ipv4("1.1.1.1", "2.2.2.2", 17, _udp(1, 2, b"hi")))),
    ]
    path = tmp_path / "junk.pcap"
    path.write_bytes(_pcap(frames, 1))
    capture = read_capture(path)
    assert [d.payload for d in capture.udp] == [b"hi"]
    assert capture.skipped_frames == 3


# -- the small SIP/SDP helpers ----------------------------------------------------------


def test_minimal_sip_and_sdp_helpers() -> None:
    raw = (
        b"SIP/2.0 200 OK\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\ni: abc\r\nCSeq: 7 INVITE\r\n"
        b"t: <sip:b@h>;tag=9\r\nc: application/sdp\r\nl: 70\r\n\r\n"
        b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 8\r\na=label:x\r\na=recvonly\r\nEXTRA"
    )
    message = parse_message(raw)
    assert message is not None
    assert (message.status, message.call_id, message.cseq) == (200, "abc", (7, "INVITE"))
    sdp = parse_sdp(message.body)
    assert sdp is not None
    (m,) = sdp.media
    assert (m.connection, m.port, m.label, m.direction) == ("1.2.3.4", 4000, "x", "recvonly")
    assert uri_of('"A" <sip:a@h;x=1>;tag=2') == "sip:a@h;x=1"
    framer = StreamFramer()
    assert framer.feed(raw[:30]) == []
    assert framer.feed(raw[30:] + b"\r\n") == [raw[:-5]]
    assert not is_rtp_like(b"\x80\xc8" + b"\0" * 10)  # RTCP SR
    assert is_rtp_like(b"\x80\x08" + b"\0" * 10)


# -- robustness ----------------------------------------------------------------------------


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_fuzzed_captures_never_crash(tmp_path: Path, data: st.DataObject) -> None:
    source = data.draw(st.sampled_from(["pkts_sip_rtp.pcap", "sipnab_SIP_DTMF2.cap"]))
    buf = bytearray((PCAPS / source).read_bytes()[:20000])
    for _ in range(data.draw(st.integers(1, 30))):
        pos = data.draw(st.integers(24, len(buf) - 1))
        buf[pos] = data.draw(st.integers(0, 255))
    path = tmp_path / "fuzz.pcap"
    path.write_bytes(bytes(buf))
    find_calls(read_capture(path))


@given(st.binary(max_size=3000))
def test_fuzzed_pcapng_never_crashes(tail: bytes) -> None:
    import tempfile

    head = _pcapng([], 1)
    with tempfile.NamedTemporaryFile(suffix=".pcapng") as f:
        f.write(head + tail)
        f.flush()
        find_calls(read_capture(f.name))


@given(st.binary(max_size=2000))
def test_sip_and_sdp_helpers_never_crash(data: bytes) -> None:
    message = parse_message(b"INVITE sip:a@b SIP/2.0\r\n" + data)
    if message is not None:
        message.cseq  # noqa: B018
    parse_sdp(data)
    parse_sdp(data.decode("utf-8", "replace"))
    try:
        StreamFramer(max_message_size=4096).feed(data)
    except ValueError:
        pass
