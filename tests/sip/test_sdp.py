"""SDP parsing on real SIPREC offers from vendor SRCs, plus round trips."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from siprec_recorder.sip import SdpError, SessionDescription, split_body
from siprec_recorder.sip.sdp import MAX_MEDIA, Crypto, RtpMap

SDP_DIR = Path(__file__).parent.parent / "vectors" / "sdp"


def sdp_of(path: Path) -> SessionDescription:
    """The SDP part of a vendor offer file (boundary taken from the first delimiter)."""
    data = path.read_bytes()
    if data.startswith(b"# SOURCE"):
        data = data.split(b"\n", 1)[1]
    # SIPp keywords in scenario-derived files
    data = re.sub(rb"\[auto_media_port\]|\[media_port\]", b"6000", data)
    data = re.sub(rb"\[[a-z_0-9]+\]", b"127.0.0.1", data)
    delim = next(ln for ln in data.splitlines() if re.match(rb"^--[^-\s]", ln))
    boundary = delim[2:].strip().decode()
    parts = split_body(f'multipart/mixed;boundary="{boundary}"', data)
    [sdp] = [p for p in parts if p.media_type == "application/sdp"]
    return SessionDescription.parse(sdp.body)


#: file -> [(label, direction, {pt: encoding})]
EXPECTED = {
    "drachtio_vendor_offers/acme-siprec-offer.txt": [
        ("16777227", "sendonly", {0: "PCMU"}),
        ("16777228", "sendonly", {0: "PCMU"}),
    ],
    "drachtio_vendor_offers/cisco-siprec-offer.txt": [
        ("1", "sendonly", {0: "PCMU", 101: "telephone-event"}),
        ("2", "sendonly", {0: "PCMU", 101: "telephone-event"}),
    ],
    "drachtio_vendor_offers/inactive-sdp-offer.txt": [
        ("1", "inactive", {0: "PCMU", 101: "telephone-event", 19: "CN"}),
        ("2", "inactive", {0: "PCMU", 101: "telephone-event", 19: "CN"}),
    ],
    "drachtio_vendor_offers/broadworks-offer.txt": [
        ("1", "sendonly", {0: "PCMU", 9: "G722", 8: "PCMA", 18: "G729", 101: "telephone-event"}),
    ],
    "drachtio_vendor_offers/procomm-siprec-offer.txt": [
        ("a_leg", "sendonly", {8: "PCMA"}),
        ("b_leg", "sendonly", {8: "PCMA"}),
    ],
    "drachtio_vendor_offers/sonus-siprec-offer.txt": [
        ("1", "sendonly", {0: "PCMU"}),
        ("2", "sendonly", {0: "PCMU"}),
    ],
    "drachtio_vendor_offers/connectel-offer.txt": [
        ("1", "sendonly", {0: "PCMU", 8: "PCMA", 3: "GSM", 101: "telephone-event"}),
        ("2", "sendonly", {8: "PCMA", 0: "PCMU", 101: "telephone-event"}),
    ],
    "vendor_offers_annotated/audiocodes_mediant_sbc.txt": [
        ("1", "sendonly", {0: "PCMU", 101: "telephone-event"}),
        ("2", "sendonly", {0: "PCMU", 101: "telephone-event"}),
    ],
}

OFFERS = sorted(
    p.relative_to(SDP_DIR).as_posix()
    for p in SDP_DIR.glob("*/*.txt")
    if b"\n--" in p.read_bytes() and "parser.test" not in p.name
)


@pytest.mark.parametrize("name", OFFERS)
def test_every_offer_parses_with_labels(name: str) -> None:
    sdp = sdp_of(SDP_DIR / name)
    assert 1 <= len(sdp.media) <= 4
    for m in sdp.media:
        assert m.label, name
        assert m.direction in ("sendonly", "inactive", "sendrecv", "recvonly")
        assert m.rtpmaps, name
        assert all(str(pt) in m.formats for pt in m.rtpmaps)
    again = SessionDescription.parse(sdp.serialize())
    assert again == sdp


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_expected_labels_directions_codecs(name: str) -> None:
    sdp = sdp_of(SDP_DIR / name)
    got = [
        (m.label, m.direction, {pt: r.encoding for pt, r in m.rtpmaps.items()}) for m in sdp.media
    ]
    assert got == EXPECTED[name]


def test_session_connection_inherited_and_fields() -> None:
    sdp = sdp_of(SDP_DIR / "drachtio_vendor_offers/acme-siprec-offer.txt")
    assert sdp.connection == "IN IP4 192.168.50.140"
    m = sdp.media[0]
    assert m.connection_address == "192.168.50.140" and m.port == 20106
    assert m.rtpmaps[0] == RtpMap(0, "PCMU", 8000)
    cisco = sdp_of(SDP_DIR / "drachtio_vendor_offers/cisco-siprec-offer.txt")
    assert cisco.media[0].fmtp == {101: "0-16"} and cisco.media[0].ptime == 20


def test_plain_sdp_samples() -> None:
    for path in sorted((SDP_DIR / "drachtio_vendor_offers").glob("sample-sdp*.txt")):
        for chunk in path.read_text().split("__split_here__"):
            if chunk.strip():
                sdp = SessionDescription.parse(chunk)
                assert sdp.media


def test_crypto_session_direction_unknown_lines() -> None:
    text = (
        "v=0\no=- 1 2 IN IP4 10.0.0.1\ns=x   \ni=info\nc=IN IP4 10.0.0.1\nb=AS:64\nt=0 0\n"
        "a=sendonly\nm=audio 5000/2 RTP/SAVP 0 96\nb=TIAS:64000\nx=unknown\n"
        "a=rtpmap:96 opus/48000/2\na=crypto:1 AES_CM_128_HMAC_SHA1_80 "
        "inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4 KDR=1\na=ptime:20.0\n"
    )
    sdp = SessionDescription.parse(text)
    m = sdp.media[0]
    assert m.direction == "sendonly"  # inherited from the session level
    assert m.port_count == 2 and m.rtpmaps[96] == RtpMap(96, "opus", 48000, 2)
    assert m.crypto == [
        Crypto(
            1,
            "AES_CM_128_HMAC_SHA1_80",
            "inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4",
            ("KDR=1",),
        )
    ]
    assert m.ptime == 20 and m.label is None
    out = sdp.serialize().decode()
    assert "i=info\r\n" in out and "b=TIAS:64000\r\n" in out and "x=unknown\r\n" in out
    assert SessionDescription.parse(out) == sdp


def test_errors() -> None:
    with pytest.raises(SdpError) as info:
        SessionDescription.parse("hello world")
    assert info.value.message == "malformed SDP line (expected <type>=<value>)"
    with pytest.raises(SdpError):
        SessionDescription.parse("v=0\nm=audio x RTP/AVP 0\n")
    with pytest.raises(SdpError) as info:
        SessionDescription.parse("v=0\n" + "m=audio 1 RTP/AVP 0\n" * (MAX_MEDIA + 1))
    assert info.value.message == f"SDP has more than {MAX_MEDIA} media descriptions"
    with pytest.raises(SdpError):
        SessionDescription.parse("")


def test_garbage_after_a_good_document_is_dropped() -> None:
    text = (
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
        "m=audio 4000 RTP/AVP 8\r\na=label:16777227\r\na=sendonly\r\n\r\n"
        "--metaswitch-boundary \r\nContent-Type: application/sdp\r\n\r\nv=0\r\n"
        "m=audio 4002 RTP/AVP 8\r\n"
    )
    sdp = SessionDescription.parse(text)
    assert [m.label for m in sdp.media] == ["16777227"]
    assert sdp.media[0].port == 4000
