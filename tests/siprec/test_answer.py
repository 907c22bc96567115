"""The SRS's SDP answer: one m-line per offered m-line, recvonly, labels echoed."""

from __future__ import annotations

from siprec_recorder.siprec.answer import AcceptedStream, build_answer, choose_codec

STATIC = {0: ("PCMU", 8000, 1), 8: ("PCMA", 8000, 1), 9: ("G722", 8000, 1), 18: ("G729", 8000, 1)}


def test_choose_prefers_wideband_and_keeps_telephone_event() -> None:
    rtpmaps = {**STATIC, 101: ("telephone-event", 8000, 1), 13: ("CN", 8000, 1)}
    c = choose_codec(["0", "8", "9", "101", "13"], rtpmaps, {101: "0-16"})
    assert c is not None
    assert (c.payload_type, c.encoding) == (9, "G722")
    assert c.dtmf == ((101, 8000, "0-16"),)
    assert c.comfort_noise == (13,)


def test_choose_only_from_the_offer() -> None:
    c = choose_codec(["8"], STATIC, {})
    assert c is not None and c.payload_type == 8


def test_unknown_codec_is_still_chosen_so_its_payload_is_kept() -> None:
    c = choose_codec(["97"], {97: ("iLBC", 8000, 1)}, {97: "mode=30"})
    assert c is not None and (c.payload_type, c.encoding, c.fmtp) == (97, "iLBC", "mode=30")


def test_only_dtmf_offered_is_refused() -> None:
    assert choose_codec(["101"], {101: ("telephone-event", 8000, 1)}, {}) is None


def test_answer_has_one_mline_per_offer_in_order_with_labels() -> None:
    c = choose_codec(["8"], STATIC, {})
    body = build_answer(
        origin_host="127.0.0.1",
        session_id=5,
        session_version=2,
        connection_address="127.0.0.1",
        streams=[
            AcceptedStream(port=20000, proto="RTP/AVP", codec=c, label="1", direction="recvonly"),
            AcceptedStream(
                port=0,
                proto="RTP/AVP",
                codec=None,
                label="v",
                direction="inactive",
                media="video",
                refused_format="96",
            ),
            AcceptedStream(
                port=20002,
                proto="RTP/SAVP",
                codec=c,
                label="2",
                direction="inactive",
                crypto="1 AES_CM_128_HMAC_SHA1_80 inline:QUJD",
            ),
        ],
    ).decode()
    lines = body.split("\r\n")
    mlines = [line for line in lines if line.startswith("m=")]
    assert mlines == ["m=audio 20000 RTP/AVP 8", "m=video 0 RTP/AVP 96", "m=audio 20002 RTP/SAVP 8"]
    assert lines.count("a=label:1") == 1 and lines.count("a=label:2") == 1
    assert "a=label:v" in lines
    assert "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:QUJD" in lines
    assert lines[1] == "o=siprec-recorder 5 2 IN IP4 127.0.0.1"
    # The accepted leg is recvonly, the held one inactive, and nothing says sendrecv.
    assert "a=recvonly" in lines and "a=inactive" in lines and "a=sendrecv" not in lines
    assert body.endswith("\r\n")
