"""The answer lists every offered codec we decode, in the offer's order (rtpengine's
``subscribe answer`` refuses one that drops any: "Failed to process subscription answer")."""

from __future__ import annotations

from siprec_recorder.sip.sdp import SessionDescription
from siprec_recorder.siprec.answer import AcceptedStream, build_answer
from siprec_recorder.siprec.session import parse_offer

# The shape of the offer rtpengine's `subscribe request` produced for a PCMA/PCMU call.
OFFER = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 30020 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=label:1\r\na=sendonly\r\n"
    b"a=rtcp:30021\r\n"
)


def _answer(offer: bytes) -> str:
    (st,) = parse_offer(SessionDescription.parse(offer))
    assert st.codec is not None
    body = build_answer(
        origin_host="127.0.0.1",
        session_id=1,
        session_version=1,
        connection_address="127.0.0.1",
        streams=[
            AcceptedStream(
                port=45232, proto=st.proto, codec=st.codec, label=st.label, direction="recvonly"
            )
        ],
    )
    return body.decode()


def test_every_decodable_codec_in_offer_order() -> None:
    answer = _answer(OFFER)
    assert "m=audio 45232 RTP/AVP 8 0 101\r\n" in answer
    assert "a=rtpmap:0 PCMU/8000\r\n" in answer
    assert "a=fmtp:101 0-16\r\n" in answer


def test_codecs_we_cannot_decode_are_left_out() -> None:
    offer = OFFER.replace(b"RTP/AVP 8 0 101", b"RTP/AVP 96 8 101").replace(
        b"a=rtpmap:0 PCMU/8000", b"a=rtpmap:96 VP8/90000"
    )
    assert "m=audio 45232 RTP/AVP 8 101\r\n" in _answer(offer)


def test_offer_address_and_rtcp_port_are_kept_for_the_source_check() -> None:
    (st,) = parse_offer(SessionDescription.parse(OFFER))
    assert (st.address, st.port, st.rtcp_port) == ("127.0.0.1", 30020, 30021)
