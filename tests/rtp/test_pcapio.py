import struct
from pathlib import Path

import pytest

from siprec_recorder.rtp.pcapio import PcapError, iter_udp, read_udp

V = Path(__file__).parents[1] / "vectors" / "rtp"


def test_classic_pcap() -> None:
    d = read_udp(V / "gteissier_marseillaise-srtp.pcap")
    assert len(d) == 11888
    assert (d[0].src, d[0].dst, d[0].sport, d[0].dport) == ("10.1.1.1", "10.2.2.2", 10000, 10000)
    assert d[1].timestamp >= d[0].timestamp > 1e9


def test_pcapng() -> None:
    d = read_udp(V / "sipnab_b2bua-asterisk.pcapng")
    rtp = [x for x in d if (x.src, x.sport, x.dport) == ("172.16.98.145", 8000, 8000)]
    assert len(rtp) == 355


def _ipv6_udp_frame(payload: bytes) -> bytes:
    udp = struct.pack("!HHHH", 4000, 5000, 8 + len(payload), 0) + payload
    addrs = bytes(15) + b"\x01" + bytes(15) + b"\x02"
    ip6 = struct.pack("!IHBB", 6 << 28, len(udp), 17, 64) + addrs
    return ip6 + udp


def _classic(linktype: int, frames: list[bytes]) -> bytes:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)
    for i, f in enumerate(frames):
        out += struct.pack("<IIII", 1700000000 + i, 500000, len(f), len(f)) + f
    return out


def test_raw_ipv6_and_linux_sll() -> None:
    frame = _ipv6_udp_frame(b"hello")
    (d,) = iter_udp(_classic(101, [frame]))
    assert (d.src, d.dst, d.sport, d.dport, d.payload) == ("::1", "::2", 4000, 5000, b"hello")
    assert d.timestamp == pytest.approx(1700000000.5)
    sll = bytes(14) + b"\x86\xdd" + frame
    (d2,) = iter_udp(_classic(113, [sll]))
    assert d2.payload == b"hello"
    eth_vlan = bytes(12) + b"\x81\x00\x00\x05\x86\xdd" + frame
    (d3,) = iter_udp(_classic(1, [eth_vlan]))
    assert d3.payload == b"hello"


def test_truncated_and_garbage() -> None:
    data = _classic(101, [_ipv6_udp_frame(b"x" * 10)] * 3)
    assert len(list(iter_udp(data[:-5]))) == 2
    with pytest.raises(PcapError):
        list(iter_udp(b"not a capture"))
