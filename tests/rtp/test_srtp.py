import base64
import logging
from pathlib import Path

import numpy as np
import pylibsrtp
import pytest

from siprec_recorder.rtp.codecs import get_decoder
from siprec_recorder.rtp.leg import LegReceiver
from siprec_recorder.rtp.packet import RtpPacket
from siprec_recorder.rtp.pcapio import read_udp
from siprec_recorder.rtp.spoolfmt import iter_records
from siprec_recorder.rtp.srtp import (
    SUPPORTED_SUITES,
    SrtpKeyError,
    SrtpReceiver,
    make_answer_crypto,
    parse_key_params,
)

from ._avref import av_decode

V = Path(__file__).parents[1] / "vectors" / "rtp"
PCAPS = Path(__file__).parents[2] / "pcaps"  # captures kept once, with their provenance
KEY = "inline:aSBrbm93IGFsbCB5b3VyIGxpdHRsZSBzZWNyZXRz"
SUITE = "AES_CM_128_HMAC_SHA1_80"


def capture() -> list[bytes]:
    return [d.payload for d in read_udp(PCAPS / "gteissier_marseillaise-srtp.pcap")]


def test_marseillaise_all_decrypt_to_alaw() -> None:
    packets = capture()
    assert len(packets) == 11888
    rx = SrtpReceiver(SUITE, KEY)
    plain = [rx.unprotect(p) for p in packets]
    assert rx.auth_failures == 0
    assert all(p is not None for p in plain)
    parsed = [RtpPacket.parse(p) for p in plain if p is not None]
    assert {p.payload_type for p in parsed} == {8}
    assert {p.ssrc for p in parsed} == {0xDEADBEEF}
    payloads = [p.payload for p in parsed]
    assert payloads[0][:2] == b"\xd5\x55"  # A-law silence
    dec = get_decoder("PCMA", 8000, None)
    assert dec is not None
    pcm, lengths = dec.decode_run(payloads)
    assert np.array_equal(pcm, av_decode("pcm_alaw", 8000, [b"".join(payloads)]))
    assert len(pcm) == 160 * 11888
    assert np.sqrt(np.mean(pcm.astype(np.float64) ** 2)) > 300  # music, not noise of a bad key


def test_marseillaise_through_leg_receiver() -> None:
    leg = LegReceiver("1", srtp=(SUITE, KEY))
    for i, p in enumerate(capture()):
        leg.receive(p, 1000.0 + i * 0.02)
    recs = list(iter_records(leg.finish()))
    assert len(recs) == 11888
    st = leg.stats.as_dict()
    assert st["srtp_auth_failures"] == 0 and st["packets_lost"] == 0


def test_wrong_key_all_fail_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    wrong = "inline:" + base64.b64encode(b"i know none of your secrets!!!").decode()
    leg = LegReceiver("1", srtp=SrtpReceiver(SUITE, wrong))
    packets = capture()
    with caplog.at_level(logging.WARNING):
        for i, p in enumerate(packets):
            leg.receive(p, float(i))
    assert leg.finish() == b""
    assert leg.stats.as_dict()["srtp_auth_failures"] == len(packets)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "aSBrbm93" not in caplog.text and wrong[7:] not in caplog.text
    assert "authentication failure" in warnings[0].getMessage()


@pytest.mark.parametrize("suite", sorted(SUPPORTED_SUITES))
def test_every_suite_round_trips_with_answer_key(suite: str) -> None:
    line, key_params = make_answer_crypto(3, suite)
    tag, s, kp = line.split(" ")
    assert (tag, s, kp) == ("3", suite, key_params)
    key = parse_key_params(suite, key_params)
    assert len(key) == SUPPORTED_SUITES[suite][1]
    assert make_answer_crypto(3, suite)[1] != key_params  # fresh randomness
    tx = pylibsrtp.Session(
        pylibsrtp.Policy(
            key=key,
            ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
            srtp_profile=SUPPORTED_SUITES[suite][0],
        )
    )
    rx = SrtpReceiver(suite, key_params)
    for seq in range(5):
        plain = RtpPacket(0, seq, seq * 160, 42, bytes([seq]) * 160).serialize()
        assert rx.unprotect(tx.protect(plain)) == plain
    rtcp = bytes.fromhex("80c80006") + (42).to_bytes(4, "big") + bytes(20)
    assert rx.unprotect_rtcp(tx.protect_rtcp(rtcp)) == rtcp
    # replay is not an authentication failure
    again = tx.protect(RtpPacket(0, 9, 0, 42, b"x").serialize())
    assert rx.unprotect(again) is not None and rx.unprotect(again) is None
    assert rx.replayed == 1 and rx.auth_failures == 0
    assert rx.unprotect(b"garbage-garbage-garbage") is None
    assert rx.auth_failures == 1


@pytest.mark.parametrize(
    ("suite", "params", "message"),
    [
        ("AES_256_CM_HMAC_SHA1_80", KEY, "unsupported SRTP suite AES_256_CM_HMAC_SHA1_80"),
        (SUITE, "uri:http://x", "SRTP key parameters must use the inline: method"),
        (SUITE, KEY + "|2^20|1:4", "SRTP MKI is not supported"),
        (SUITE, "inline:!!!!", "SRTP key is not valid base64"),
        (SUITE, "inline:AAAA", "SRTP key for AES_CM_128_HMAC_SHA1_80 must be 30 octets, got 3"),
    ],
)
def test_bad_crypto_attributes(suite: str, params: str, message: str) -> None:
    with pytest.raises(SrtpKeyError) as info:
        SrtpReceiver(suite, params)
    assert info.value.message == message
    assert info.value.status_hint == 488


def test_lifetime_accepted() -> None:
    assert len(parse_key_params(SUITE, KEY + "|2^31")) == 30
