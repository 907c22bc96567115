from pathlib import Path

import pytest

from siprec_recorder.errors import RemoteProtocolError
from siprec_recorder.rtp.errors import RtcpParseError, RtpParseError
from siprec_recorder.rtp.packet import RtpPacket, is_rtcp, payload_bounds
from siprec_recorder.rtp.rtcp import (
    RtcpBye,
    RtcpReceiverReport,
    RtcpSdes,
    RtcpSenderReport,
    parse_rtcp,
)

TOO_LONG = "RTP header, extension or padding longer than the packet"
V = Path(__file__).parents[1] / "vectors" / "rtp"


@pytest.mark.parametrize(
    ("name", "pt", "marker", "seq", "ts", "ssrc", "payload_len"),
    [
        ("rtp_pcmu_marker.bin", 0, False, 0x52B7, 0x430, 0x12CC6BF4, 160),
        ("rtp_telephone_event.bin", 101, True, 0x55C7, 0x1EE80, 0x12CC6BF4, 4),
        ("rtp_g722.bin", 9, False, 0x5C67, 0x430, 0x45495EB7, 160),
        ("rtp_g729.bin", 18, False, 0x7700, 0x430, 0x4ADC1838, 20),
        ("rtp_opus.bin", 99, True, 0x5D25, 0x3C0, 0x043EEE04, 82),
        ("srtp_pcma.bin", 8, True, 0, 0, 0xDEADBEEF, 170),
    ],
)
def test_vector_round_trip(
    name: str, pt: int, marker: bool, seq: int, ts: int, ssrc: int, payload_len: int
) -> None:
    data = (V / name).read_bytes()
    p = RtpPacket.parse(data)
    assert (p.payload_type, p.marker, p.sequence_number, p.timestamp, p.ssrc) == (
        pt,
        marker,
        seq,
        ts,
        ssrc,
    )
    assert len(p.payload) == payload_len
    assert p.csrc == () and p.extension is None and p.padding == 0
    assert p.serialize() == data
    assert not is_rtcp(data)


def test_csrc_extension_padding_vector() -> None:
    data = (V / "rtp_csrc_ext_padding.bin").read_bytes()
    p = RtpPacket.parse(data)
    assert p.csrc == (1, 2, 3)
    assert p.extension == (0xBEDE, bytes.fromhex("10ff0000"))
    assert p.padding == 4
    assert p.payload == bytes(range(20))
    assert p.marker and p.payload_type == 96
    assert p.sequence_number == 0xFFFF and p.timestamp == 0xFFFFFFF0
    assert p.serialize() == data
    assert payload_bounds(data) == (32, len(data) - 4)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x80\x00", "RTP packet too short (2 bytes)"),
        (bytes([0x40]) + bytes(11), "RTP version 1 is not 2"),
        (bytes([0x90]) + bytes(11), "RTP extension header truncated"),
        (bytes([0xA0]) + bytes(11), "RTP padding count is zero"),
        (bytes([0xA0]) + bytes(10) + b"\x20", TOO_LONG),
        (bytes([0x8F]) + bytes(11), TOO_LONG),
    ],
)
def test_invalid_packets(data: bytes, message: str) -> None:
    with pytest.raises(RtpParseError) as info:
        RtpPacket.parse(data)
    assert info.value.message == message
    assert isinstance(info.value, RemoteProtocolError)
    assert info.value.status_hint is None


def test_is_rtcp_demux() -> None:
    for pt in (200, 201, 202, 203, 204):
        assert is_rtcp(bytes([0x80, pt, 0, 1]))
    assert not is_rtcp(bytes([0x80, 0x08]))  # PCMA
    assert not is_rtcp(bytes([0x80, 0x80 | 101]))  # marker + 101
    assert not is_rtcp(b"\x80")


def test_rtcp_sr_sdes_bye_vector() -> None:
    packets = parse_rtcp((V / "rtcp_sr_sdes_bye.bin").read_bytes())
    assert [type(p) for p in packets] == [RtcpSenderReport, RtcpSdes, RtcpBye]
    sr = packets[0]
    assert isinstance(sr, RtcpSenderReport)
    assert sr.ssrc == 0x3796CB71
    assert sr.reports == ()
    assert sr.ntp_timestamp == 4812386242580366851
    assert (sr.rtp_timestamp, sr.packet_count, sr.octet_count) == (9411, 9, 1548)
    sdes = packets[1]
    assert isinstance(sdes, RtcpSdes)
    assert sdes.chunks[0][0] == 0x3796CB71
    assert sdes.chunks[0][1][0][0] == 1  # CNAME
    bye = packets[2]
    assert isinstance(bye, RtcpBye) and bye.sources == (0x3796CB71,)


def test_rtcp_report_block_vector() -> None:
    packets = parse_rtcp((V / "rtcp_sr_rb_sdes.bin").read_bytes())
    sr = packets[0]
    assert isinstance(sr, RtcpSenderReport)
    assert sr.ssrc == 0x5A3361B3
    assert len(sr.reports) == 1
    assert sr.reports[0].ssrc == 0x42F433D4
    assert isinstance(packets[1], RtcpSdes)
    plain = parse_rtcp((V / "rtcp_sr_sdes.bin").read_bytes())
    assert isinstance(plain[0], RtcpSenderReport) and plain[0].reports == ()


def test_rtcp_receiver_report_and_errors() -> None:
    rr = (
        bytes.fromhex("81c90007")
        + bytes.fromhex("01020304")
        + bytes.fromhex("0a0b0c0d40fffffe00010203000000100000000000000000")
    )
    (p,) = parse_rtcp(rr)
    assert isinstance(p, RtcpReceiverReport)
    assert p.reports[0].fraction_lost == 0x40
    assert p.reports[0].packets_lost == -2
    with pytest.raises(RtcpParseError, match="RTCP length exceeds the datagram"):
        parse_rtcp(rr[:-4])
    with pytest.raises(RtcpParseError, match="RTCP packet too short"):
        parse_rtcp(b"\x80")
    with pytest.raises(RtcpParseError, match="RTCP version 0 is not 2"):
        parse_rtcp(bytes(8))
