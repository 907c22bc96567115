"""The miarec harness itself, without sockets: jobs, scenario preparation, log reading,
expectations and the SDP answer check."""

from __future__ import annotations

from .miarec import (
    MEDIA_FILES,
    SentMessage,
    all_jobs,
    check_sdp_answers,
    parse_message_log,
    prepare_scenario,
    scale_pause,
    streams_media,
)

OFFER = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 6000 RTP/AVP 8\r\na=label:1\r\na=sendonly\r\n"
    b"m=audio 6002 RTP/AVP 8\r\na=label:2\r\na=sendonly\r\n"
)


def _answer(*lines: str) -> SentMessage:
    body = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" + "".join(lines)).encode()
    return SentMessage("200", "c1", "1 INVITE", "application/sdp", body)


def test_every_file_in_exactly_one_job() -> None:
    jobs = all_jobs()
    files = [p.scenario for j in jobs for p in j.parts]
    assert len(files) == len(set(files)) == 87
    assert {j.mode for j in jobs} == {"single", "3pcc", "ext"}
    assert all(
        p.role in ("b", "slave1", "slave2") for j in jobs if j.mode != "single" for p in j.parts[:1]
    )


def test_prepare_points_media_here_and_shortens_pauses() -> None:
    text = (
        '<nop><action><exec rtp_stream="audio_alaw.wav,-1,8,PCMA/8000"/></action></nop>'
        '<pause milliseconds="10000"/><pause milliseconds="20"/>'
        '<pause distribution="normal" mean="180000" stdev="60000"/>'
        '<exec play_pcap_audio="10a_g722.pcap"/><timewait milliseconds="4000"/>'
    )
    out = prepare_scenario(text)
    assert f'rtp_stream="{MEDIA_FILES["audio_alaw.wav"]},-1,8,PCMA/8000"' in out
    assert f'play_pcap_audio="{MEDIA_FILES["10a_g722.pcap"]}"' in out
    assert '<pause milliseconds="1500"/>' in out and '<pause milliseconds="20"/>' in out
    assert '<pause milliseconds="3000"/>' in out and "distribution" not in out
    assert '<timewait milliseconds="500"/>' in out
    assert scale_pause(50) == 50 and scale_pause(200) == 100
    assert streams_media(text)
    assert not streams_media('<exec rtp_stream="pause"/><!-- <exec rtp_stream="x.wav"/> -->')


def test_message_log_reading() -> None:
    log = (
        "----------------------------------------------- 2026-11-28 17:00:00.000000\n"
        "TCP message sent (100 bytes):\n\n"
        "INVITE sip:srs@127.0.0.1 SIP/2.0\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n"
        "Content-Type: application/sdp\r\n\r\nv=0\r\n\n"
        "----------------------------------------------- 2026-11-28 17:00:00.100000\n"
        "TCP message received [50] bytes :\n\n"
        "SIP/2.0 200 OK\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n\r\n\n"
    )
    sent, statuses = parse_message_log(log)
    assert [(m.method, m.call_id, m.cseq) for m in sent] == [("INVITE", "c1", "1 INVITE")]
    assert statuses == {"c1": [200]}


def test_sdp_answer_check() -> None:
    offer = [SentMessage("INVITE", "c1", "1 INVITE", "application/sdp", OFFER)]
    good = _answer(
        "m=audio 7000 RTP/AVP 8\r\na=label:1\r\na=recvonly\r\n",
        "m=audio 7002 RTP/AVP 8\r\na=label:2\r\na=recvonly\r\n",
    )
    assert check_sdp_answers(offer, [good]) == []
    no_label = _answer(
        "m=audio 7000 RTP/AVP 8\r\na=label:1\r\na=recvonly\r\n",
        "m=audio 7002 RTP/AVP 8\r\na=recvonly\r\n",
    )
    assert check_sdp_answers(offer, [no_label]) == ["1 INVITE: m-line 1 label '2' answered as None"]
    sendrecv = _answer(
        "m=audio 7000 RTP/AVP 8\r\na=label:1\r\n", "m=audio 0 RTP/AVP 8\r\na=label:2\r\n"
    )
    assert check_sdp_answers(offer, [sendrecv]) == [
        "1 INVITE: m-line 0 offered sendonly, answered sendrecv"
    ]
    short = _answer("m=audio 7000 RTP/AVP 8\r\na=label:1\r\na=recvonly\r\n")
    assert check_sdp_answers(offer, [short]) == ["1 INVITE: 2 m-lines offered, 1 answered"]
