"""The replay tool against a fake SRS on loopback: SIPREC INVITE, RTP pacing, BYE."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import re
import socket
import struct
from pathlib import Path

import pytest

from siprec_recorder.replay import load_call, replay_call, replay_capture, replay_many
from siprec_recorder.replay.cli import add_arguments, parse_target, run
from siprec_recorder.replay.sipmini import parse_message, parse_sdp
from siprec_recorder.replay.src import ReplayResult, SrcOptions
from siprec_recorder.siprec.metadata import RecordingMetadata
from tests.replay.fake_srs import Arrival, FakeSrs

pytestmark = pytest.mark.integration

PCAPS = Path(__file__).resolve().parents[2] / "pcaps"


def _rtp_fields(data: bytes) -> tuple[int, bool, int, int, int, bytes]:
    b0, b1, seq, ts, ssrc = struct.unpack_from("!BBHII", data, 0)
    assert b0 == 0x80
    return b1 & 0x7F, bool(b1 & 0x80), seq, ts, ssrc, data[12:]


def _parts(invite: bytes) -> dict[str, tuple[str, bytes]]:
    """content-type -> (content-disposition, body) of the INVITE's multipart body."""
    message = parse_message(invite)
    assert message is not None
    ctype = message.header("content-type") or ""
    boundary = re.search(r"boundary=([^;]+)", ctype)
    assert ctype.startswith("multipart/mixed") and boundary is not None
    out = {}
    delimiter = b"\r\n--" + boundary.group(1).encode()
    body = b"\r\n" + message.body
    assert body.rstrip().endswith(delimiter + b"--")
    for piece in body.split(delimiter)[1:-1]:
        head, _, part_body = piece.partition(b"\r\n\r\n")
        headers = dict(
            (k.strip().lower(), v.strip())
            for k, _, v in (line.decode().partition(":") for line in head.split(b"\r\n") if line)
        )
        out[headers["content-type"]] = (headers.get("content-disposition", ""), part_body)
    return out


def _check_pacing(call_packets: list[float], arrivals: list[Arrival], speed: float) -> None:
    """Arrivals keep the capture's timing divided by speed, within 20 %."""
    expected = [(t - call_packets[0]) / speed for t in call_packets]
    got = [a.at - arrivals[0].at for a in arrivals]
    span = expected[-1]
    assert abs(got[-1] - span) <= 0.2 * span, (got[-1], span)
    worst = max(abs(g - e) for g, e in zip(got, expected, strict=True))
    assert worst <= 0.2 * span, worst


def _check_leg(result: ReplayResult, arrivals: list[Arrival], packets: list[object]) -> None:
    from siprec_recorder.replay.calls import RtpRecord

    records = [p for p in packets if isinstance(p, RtpRecord)]
    fields = [_rtp_fields(a.data) for a in arrivals]
    assert [f[2] for f in fields] == [p.sequence_number for p in records]  # all, in order
    assert [(f[0], f[1], f[3], f[4]) for f in fields] == [
        (p.payload_type, p.marker, p.timestamp, p.ssrc) for p in records
    ]
    assert [f[5] for f in fields] == [p.payload for p in records]


async def _run(srs: FakeSrs, capture: str, **kwargs: object) -> ReplayResult:
    to = await srs.start()
    try:
        result = await replay_capture(PCAPS / capture, to, **kwargs)  # type: ignore[arg-type]
        await asyncio.sleep(0.05)  # let the last datagrams land
        return result
    finally:
        await srs.stop()


async def test_speed_1_pacing_and_bye() -> None:
    srs = FakeSrs()
    result = await _run(srs, "sipp_g711a.pcap", speed=1.0)
    call = load_call(PCAPS / "sipp_g711a.pcap")
    (leg,) = call.legs
    assert result.status == 200 and result.bye_status == 200 and result.ok
    assert result.labels == {"1": "caller"}
    assert result.packets_sent == {"1": 236}
    assert srs.ack_received.is_set() and srs.bye_received.is_set()
    _check_leg(result, srs.rtp["1"], list(leg.packets))
    _check_pacing([p.time for p in leg.packets], srs.rtp["1"], 1.0)
    assert result.sent_payloads["1"] == [p.payload for p in leg.packets]
    assert result.duration >= leg.packets[-1].time - leg.packets[0].time


async def test_speed_4_both_directions() -> None:
    srs = FakeSrs()
    result = await _run(srs, "sipnab_SIP_DTMF2.cap", speed=4.0)
    call = load_call(PCAPS / "sipnab_SIP_DTMF2.cap")
    assert result.ok
    assert result.labels == {"1": "caller", "2": "callee"}
    assert result.packets_sent == {"1": 665, "2": 666}
    first = min(leg.packets[0].time for leg in call.legs)
    for label, role in result.labels.items():
        leg = call.leg(role)
        assert leg is not None
        _check_leg(result, srs.rtp[label], list(leg.packets))
        _check_pacing([p.time for p in leg.packets], srs.rtp[label], 4.0)
    # the two legs also keep their offset to each other
    offset_capture = (call.legs[1].packets[0].time - first) / 4.0
    offset_seen = srs.rtp["2"][0].at - min(srs.rtp["1"][0].at, srs.rtp["2"][0].at)
    assert abs(offset_seen - offset_capture) < 0.05


async def test_invite_is_valid_siprec() -> None:
    srs = FakeSrs()
    result = await _run(srs, "SIP_CALL_RTP_G711.pcap", speed=50.0)
    assert result.ok and result.packets_sent == {"1": 891, "2": 548}
    invite = srs.invites[0]
    message = parse_message(invite)
    assert message is not None and message.method == "INVITE"
    assert message.header("require") == "siprec"
    assert "+sip.src" in (message.header("contact") or "")
    assert message.call_id == result.call_id
    parts = _parts(invite)
    assert set(parts) == {"application/sdp", "application/rs-metadata+xml"}
    disposition, xml = parts["application/rs-metadata+xml"]
    assert disposition == "recording-session"
    sdp = parse_sdp(parts["application/sdp"][1])
    assert sdp is not None
    assert [(m.label, m.direction, m.proto, m.formats, m.rtpmap) for m in sdp.media] == [
        ("1", "sendonly", "RTP/AVP", ("8",), {8: "PCMA/8000"}),
        ("2", "sendonly", "RTP/AVP", ("8",), {8: "PCMA/8000"}),
    ]
    meta = RecordingMetadata.parse(xml)
    assert [p.aor for p in meta.participants] == [
        "sip:200.57.7.195:55061;user=phone",
        "sip:francisco@bestel.com:55060",
    ]
    assert {label: p.aor for label, p in meta.label_senders().items()} == {
        "1": "sip:200.57.7.195:55061;user=phone",
        "2": "sip:francisco@bestel.com:55060",
    }
    assert result.answer_sdp is not None and "a=recvonly" in result.answer_sdp
    bye = [r for r in srs.requests if r.method == "BYE"]
    assert len(bye) == 1 and bye[0].cseq == (2, "BYE")
    ack = [r for r in srs.requests if r.method == "ACK"]
    assert ack and "tag=srs1" in (ack[0].header("to") or "")


async def test_invite_parses_with_the_product_sip_stack() -> None:
    message_mod = pytest.importorskip("siprec_recorder.sip.message")
    multipart_mod = pytest.importorskip("siprec_recorder.sip.multipart")
    sdp_mod = pytest.importorskip("siprec_recorder.sip.sdp")
    srs = FakeSrs()
    result = await _run(srs, "pkts_sip_rtp.pcap", speed=50.0, srtp=True)
    assert result.ok
    request = message_mod.parse_message(srs.invites[0])
    parts = multipart_mod.split_body(request.content_type, request.body)
    by_type = {p.content_type: p for p in parts}
    offer = sdp_mod.SessionDescription.parse(by_type["application/sdp"].body)
    (m,) = offer.media
    assert (m.label, m.direction, m.proto) == ("1", "sendonly", "RTP/SAVP")
    assert m.crypto[0].suite == "AES_CM_128_HMAC_SHA1_80"
    meta = RecordingMetadata.parse(by_type["application/rs-metadata+xml"].body)
    assert meta.label_senders()["1"].aor == "sip:sipp@127.0.0.1:5061"


async def test_srtp_packets_decrypt_with_the_offered_key() -> None:
    from pylibsrtp import Policy, Session

    srs = FakeSrs()
    result = await _run(srs, "SIP_CALL_RTP_G711.pcap", speed=50.0, srtp=True)
    assert result.ok
    sdp = parse_sdp(_parts(srs.invites[0])["application/sdp"][1])
    assert sdp is not None
    for media in sdp.media:
        assert media.proto == "RTP/SAVP"
        (crypto,) = media.crypto
        tag, suite, key_params = crypto.split()
        assert (tag, suite) == ("1", "AES_CM_128_HMAC_SHA1_80")
        key = base64.b64decode(key_params.removeprefix("inline:"))
        assert len(key) == 30
        session = Session(policy=Policy(key=key, ssrc_type=Policy.SSRC_ANY_INBOUND))
        label = media.label
        assert label is not None
        plain = [session.unprotect(a.data) for a in srs.rtp[label]]
        assert [_rtp_fields(p)[5] for p in plain] == result.sent_payloads[label]
        assert all(len(a.data) == len(p) + 10 for a, p in zip(srs.rtp[label], plain, strict=True))


async def test_tcp_transport() -> None:
    srs = FakeSrs(transport="tcp")
    result = await _run(srs, "pkts_sip_rtp.pcap", speed=20.0, transport="tcp")
    assert result.ok and result.packets_sent == {"1": 501}
    assert len(srs.rtp["1"]) == 501
    message = parse_message(srs.invites[0])
    assert message is not None
    assert (message.header("via") or "").startswith("SIP/2.0/TCP ")
    assert srs.bye_received.is_set()


async def test_invite_retransmitted_until_answered() -> None:
    srs = FakeSrs(ignore_invites=2)
    to = await srs.start()
    try:
        call = load_call(PCAPS / "sipp_g711a.pcap")
        result = await replay_call(call, SrcOptions(to=to, speed=100.0, t1=0.05))
    finally:
        await srs.stop()
    assert result.ok
    assert len(srs.invites) == 3 and len(set(srs.invites)) == 1


async def test_no_answer_gives_up_after_timer_b() -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        call = load_call(PCAPS / "sipp_g711a.pcap")
        loop = asyncio.get_running_loop()
        started = loop.time()
        result = await replay_call(call, SrcOptions(to=silent.getsockname(), t1=0.01))
        assert result.status == 0 and not result.ok
        assert 0.6 <= loop.time() - started < 2.0
        assert result.reason == "no final response to INVITE"
        silent.setblocking(False)
        invites = 0
        while True:
            try:
                silent.recv(65536)
            except BlockingIOError:
                break
            invites += 1
        # sent at 0, 1, 3, 7, 15, 31, 63 x T1 (< 64 x T1); the last one may miss under load
        assert invites in (6, 7)
    finally:
        silent.close()


async def test_rejected_invite_is_acked() -> None:
    srs = FakeSrs(final_status=488)
    result = await _run(srs, "sipp_g711a.pcap", speed=100.0)
    assert result.status == 488 and not result.ok
    assert result.packets_sent == {} and srs.rtp == {}
    assert srs.ack_received.is_set()
    assert result.reason.startswith("INVITE answered 488")


async def test_recorder_hangs_up() -> None:
    srs = FakeSrs(bye_after_packets=20)
    result = await _run(srs, "sipp_g711a.pcap", speed=5.0)
    assert result.hung_up_by_recorder and result.ok
    assert result.bye_status is None
    assert 20 <= result.packets_sent["1"] < 236
    assert any(r.status == 200 and r.cseq == (1, "BYE") for r in srs.responses)


async def test_refused_stream_is_not_sent() -> None:
    srs = FakeSrs(refuse_labels=("2",))
    result = await _run(srs, "SIP_CALL_RTP_G711.pcap", speed=100.0)
    assert result.ok
    assert result.packets_sent == {"1": 891, "2": 0}


@pytest.mark.serial  # 1,503 packets in 0.5 s to one UDP socket: a loaded CPU drops some
async def test_concurrent_calls() -> None:
    srs = FakeSrs()
    to = await srs.start()
    try:
        results = await replay_many(PCAPS / "pkts_sip_rtp.pcap", to, 3, speed=20.0)
        await asyncio.sleep(0.05)
    finally:
        await srs.stop()
    assert len({r.call_id for r in results}) == 3
    assert all(r.ok and r.packets_sent == {"1": 501} for r in results)
    assert sorted(srs.by_call) == sorted(r.call_id for r in results)
    assert all(len(legs["1"]) == 501 for legs in srs.by_call.values())
    ports = {_parts(invite)["application/sdp"][1] for invite in srs.invites}
    assert len(ports) == 3


async def test_cli_runs_and_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    srs = FakeSrs()
    host, port = await srs.start()
    try:
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        args = parser.parse_args(
            [
                str(PCAPS / "SIP_CALL_RTP_G711.pcap"),
                "--to",
                f"{host}:{port}",
                "--speed",
                "100",
                "--stereo-labels",
                "--calls",
                "2",
            ]
        )
        assert await run(args) == 0
    finally:
        await srs.stop()
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 2
    assert lines[0]["labels"] == {"caller": "caller", "callee": "callee"}
    assert lines[0]["packets_sent"] == {"caller": 891, "callee": 548}
    assert lines[0]["status"] == 200 and lines[0]["bye_status"] == 200


async def test_cli_reports_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    bad = tmp_path / "x.pcap"
    bad.write_bytes(b"nope")
    assert await run(parser.parse_args([str(bad), "--to", "127.0.0.1:9"])) == 2
    assert "not a pcap or pcapng file" in capsys.readouterr().err
    args = parser.parse_args(
        [str(PCAPS / "sipp_g711a.pcap"), "--to", "127.0.0.1:9", "--call-index", "3"]
    )
    assert await run(args) == 2
    assert "call index 3 out of range (the capture has 1)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("value", "expected"),
    [("127.0.0.1:5060", ("127.0.0.1", 5060)), ("[::1]:5080", ("::1", 5080)), ("srs:1", ("srs", 1))],
)
def test_parse_target(value: str, expected: tuple[str, int]) -> None:
    assert parse_target(value) == expected


@pytest.mark.parametrize("value", ["127.0.0.1", ":5060", "h:0", "h:70000", "h:x"])
def test_parse_target_rejects(value: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_target(value)
