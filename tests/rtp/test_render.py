from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siprec_recorder.rtp.codecs import alaw_encode
from siprec_recorder.rtp.leg import LegReceiver
from siprec_recorder.rtp.packet import RtpPacket
from siprec_recorder.rtp.pcapio import read_udp
from siprec_recorder.rtp.render import (
    LegMedia,
    clock_skew,
    render_call,
    resample_linear,
    upsample2,
)
from siprec_recorder.rtp.spoolfmt import SpoolRecord, iter_records

from ._avref import av_encode
from ._synth import envelope, sine, stream_packets, tone_bursts

V = Path(__file__).parents[1] / "vectors" / "rtp"
PCAPS = Path(__file__).parents[2] / "pcaps"  # captures kept once, with their provenance
PCMA = {8: ("PCMA", 8000, None)}
T0 = 1_700_000_000.0


def receive(packets: list[tuple[float, bytes]], label: str = "1", **kw: object) -> LegReceiver:
    leg = LegReceiver(label, **kw)  # type: ignore[arg-type]
    for wall, data in sorted(packets, key=lambda p: p[0]):
        leg.receive(data, wall)
    return leg


def media(
    leg: LegReceiver,
    rtpmaps: dict[int, tuple[str, int, str | None]] | None = None,
) -> LegMedia:
    data = leg.take_spool_bytes() + leg.finish()
    return LegMedia(leg.label, list(iter_records(data)), rtpmaps or PCMA)


def place(total_s: float, rate: int, parts: list[tuple[float, np.ndarray]]) -> np.ndarray:
    out = np.zeros(int(total_s * rate), np.float64)
    for at, pcm in parts:
        i = int(round(at * rate))
        seg = pcm[: max(0, len(out) - i)]
        out[i : i + len(seg)] += seg
    return out


def corr(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    return float(np.corrcoef(a[:n], b[:n])[0, 1])


def onsets(x: np.ndarray, rate: int, threshold: float = 1000.0) -> np.ndarray:
    env = envelope(x, rate, 0.005)
    on = np.concatenate([[False], env > threshold])
    starts = np.flatnonzero(on[1:] & ~on[:-1])
    return starts * 0.005


def test_two_legs_known_tones_align() -> None:
    rng = np.random.default_rng(3)
    a = tone_bursts(12.0, 1.5, 0.5, freq=440)
    b = tone_bursts(10.0, 1.0, 0.3, freq=1000)
    la = receive(
        list(
            stream_packets(
                a, start_wall=T0 + 0.5, ssrc=1, jitter=lambda i: float(rng.uniform(0, 0.04))
            )
        ),
        "a",
    )
    lb = receive(
        list(
            stream_packets(b, start_wall=T0 + 2.25, ssrc=2, seq0=65000, drop=lambda i: i % 17 == 5)
        ),
        "b",
    )
    out = render_call([media(la), media(lb)], channels="mono", session_start=T0)
    assert out.sample_rate == 8000
    assert out.pcm.dtype == np.int16 and out.pcm.shape[1] == 1
    expected_duration = 12.5
    assert abs(out.duration_s - expected_duration) / expected_duration < 0.02
    expected = place(expected_duration, 8000, [(0.5, a), (2.25, b)])
    assert corr(envelope(out.pcm[:, 0], 8000), envelope(expected, 8000)) >= 0.9
    st = render_call(
        [
            media(receive(list(stream_packets(a, start_wall=T0 + 0.5)), "a")),
            media(receive(list(stream_packets(b, start_wall=T0 + 2.25)), "b")),
        ],
        channels="stereo",
        session_start=T0,
    )
    assert st.pcm.shape[1] == 2
    assert corr(envelope(st.pcm[:, 0], 8000), envelope(place(12.5, 8000, [(0.5, a)]), 8000)) > 0.95
    assert corr(envelope(st.pcm[:, 1], 8000), envelope(place(12.5, 8000, [(2.25, b)]), 8000)) > 0.95
    info = out.per_leg["b"]
    assert info["status"] == "ok" and info["codec"] == "PCMA" and info["first_packet_at"] == 2.25
    assert info["packets_lost"] == 30  # every 17th packet of 500 dropped in the network
    assert out.per_leg["a"]["segments"] == 1


def test_one_hour_drift_and_bursty_loss_stay_aligned() -> None:
    """0.3 % fast RTP clock on leg a, 5 % bursty loss + jitter on leg b, 1 hour, fake clock."""
    hour = 3600.0
    ratio = 1.003
    rate_a = 8000 * ratio  # leg a's sender makes 8024 samples per wall second
    a = tone_bursts(hour, 10.0, 0.2, rate=int(round(rate_a)), freq=500)
    b = tone_bursts(hour, 10.0, 0.2, rate=8000, freq=700)
    rng = np.random.default_rng(11)
    # Gilbert-Elliott: bursts of mean length 4 packets, about 5 % of packets lost.
    lost = np.zeros(len(b) // 160, np.bool_)
    i = 0
    while i < len(lost):
        if rng.random() < 0.0131:
            n = int(rng.geometric(0.25))
            lost[i : i + n] = True
            i += n
        i += 1
    assert 0.04 < lost.mean() < 0.06
    jit = rng.uniform(0, 0.03, len(lost))
    la = receive(list(stream_packets(a, start_wall=T0 + 1.0, ssrc=1, clock_ratio=ratio)), "a")
    lb = receive(
        list(
            stream_packets(
                b,
                start_wall=T0 + 1.5,
                ssrc=2,
                drop=lambda k: lost[k],
                jitter=lambda k: float(jit[k]),
            )
        ),
        "b",
    )
    out = render_call([media(la), media(lb)], channels="stereo", session_start=T0)
    assert abs(out.duration_s - (hour + 1.5)) < 0.5
    assert abs(out.per_leg["a"]["drift_ppm"] + 2991) < 100  # 1/1.003 - 1 = -2991 ppm
    for ch, start in ((0, 1.0), (1, 1.5)):
        found = onsets(out.pcm[:, ch], 8000)
        late = found[found > hour - 60]
        assert len(late) >= 4
        expected = start + np.round((late - start) / 10.0) * 10.0
        err = np.median(np.abs(late - expected))
        assert err < 0.06, (ch, late - expected)


def test_drift_with_jitter_and_loss_on_the_same_leg() -> None:
    seconds = 600.0
    ratio = 0.997  # this sender's clock is slow
    a = tone_bursts(seconds, 10.0, 0.2, rate=int(round(8000 * ratio)), freq=500)
    rng = np.random.default_rng(5)
    n = len(a) // 160
    lost = rng.random(n) < 0.03
    jit = rng.exponential(0.01, n)  # long-tailed network delay
    leg = receive(
        list(
            stream_packets(
                a,
                start_wall=T0 + 2.0,
                clock_ratio=ratio,
                drop=lambda k: lost[k],
                jitter=lambda k: float(jit[k]),
            )
        )
    )
    out = render_call([media(leg)], channels="mono", session_start=T0)
    assert abs(out.per_leg["1"]["drift_ppm"] - 3009) < 150  # 1/0.997 - 1
    found = onsets(out.pcm[:, 0], 8000)
    late = found[found > seconds - 60]
    expected = 2.0 + np.round((late - 2.0) / 10.0) * 10.0
    assert np.median(np.abs(late - expected)) < 0.06


def _late_start(k: int) -> float:
    """A sender that falls behind while it starts its calls: packets of the first 15 s leave
    up to 80 ms late (every 25th still on time), the rest on time."""
    if k * 0.02 >= 15.0 or k % 25 == 0:
        return 0.0
    return 0.08 * ((k * 7919) % 101) / 100.0


def test_late_packets_at_the_start_are_not_read_as_drift() -> None:
    """Delay only makes packets late: a stretch of late ones is not a slower clock.

    A least-squares fit of arrival against timestamp reads this as -721 ppm and stretches
    the whole 60 s by 43 ms; the lower envelope sees no drift and leaves the audio alone."""
    pcm = tone_bursts(60.0, 2.0, 0.5, freq=500)
    leg = receive(list(stream_packets(pcm, start_wall=T0 + 1.0, jitter=_late_start)))
    out = render_call([media(leg)], channels="mono", session_start=T0)
    assert out.per_leg["1"]["drift_ppm"] == 0
    assert len(out.pcm) == 8000 + len(pcm)  # placed at 1.0 s, not one sample stretched
    expected = np.concatenate([np.zeros(8000), pcm.astype(np.float64)])
    assert corr(out.pcm[:, 0], expected) > 0.99


def test_a_step_in_delay_is_not_drift() -> None:
    """Every packet of the first 15 s 60 ms late (a sender that catches up, a route that
    changes): the envelope has a corner, and the slope is the one at the middle of the call,
    not the one of its first edge (which would be -4,000 ppm)."""
    pcm = tone_bursts(60.0, 2.0, 0.5, freq=500)

    def late(k: int) -> float:
        return 0.06 if k * 0.02 < 15.0 else 0.0

    leg = receive(list(stream_packets(pcm, start_wall=T0 + 1.0, jitter=late)))
    out = render_call([media(leg)], channels="mono", session_start=T0)
    assert out.per_leg["1"]["drift_ppm"] == 0
    assert len(out.pcm) == 8000 + len(pcm)


def test_real_drift_under_late_packets_is_measured() -> None:
    ratio = 1.001  # 0.1 % fast sender clock, and the same late start
    pcm = tone_bursts(120.0, 10.0, 0.2, rate=int(round(8000 * ratio)), freq=500)
    leg = receive(
        list(stream_packets(pcm, start_wall=T0 + 1.0, clock_ratio=ratio, jitter=_late_start))
    )
    out = render_call([media(leg)], channels="mono", session_start=T0)
    assert abs(out.per_leg["1"]["drift_ppm"] + 999) < 20  # 1/1.001 - 1 = -999 ppm


@settings(max_examples=200, deadline=None)
@given(
    skew_ppm=st.integers(-20000, 20000),
    seconds=st.floats(20.0, 4000.0),
    seed=st.integers(0, 2**32 - 1),
    offset=st.floats(-100.0, 100.0),
)
def test_clock_skew_follows_the_least_delayed_packets(
    skew_ppm: int, seconds: float, seed: int, offset: float
) -> None:
    """Any one-sided delays, as long as a packet now and then gets through undelayed."""
    rng = np.random.default_rng(seed)
    n = int(seconds / 0.02)
    t = np.arange(n) * 0.02
    # Delays of any scale: from half a millisecond (smaller than the clocks drift apart
    # between two packets at 2 %) to 200 ms; some packets on time, some not.
    scale = float(rng.choice([0.0005, 0.005, 0.2]))
    delay = rng.exponential(rng.uniform(0.0, scale), n) * (rng.random(n) < rng.uniform(0, 1))
    delay[::20] = 0.0  # one packet in 20 (0.4 s) is not delayed
    arrival = offset + t * (1 + skew_ppm / 1e6) + delay
    assert abs(clock_skew(t, arrival) - (1 + skew_ppm / 1e6)) < 1e-9


def test_ssrc_change_and_timestamp_jump_reanchor_by_arrival() -> None:
    tone = sine(600, 2.0)
    p1 = list(stream_packets(tone, start_wall=T0 + 1.0, ssrc=1, ts0=1000))
    # same SSRC continues after a 3 s hold but with the timestamp frozen (restarts at +160)
    p2 = [
        (
            w + 6.0,
            RtpPacket(
                8, (1000 + 100 + k) & 0xFFFF, 1000 + 160 * (100 + k), 1, RtpPacket.parse(d).payload
            ).serialize(),
        )
        for k, (w, d) in enumerate(stream_packets(tone, start_wall=0.0))
    ]
    # then a new SSRC with an unrelated timestamp base
    p3 = list(stream_packets(tone, start_wall=T0 + 9.0, ssrc=2, seq0=5, ts0=123_456_789))
    p2 = [(T0 + w, d) for w, d in p2]
    leg = receive(p1 + p2 + p3, "x")
    out = render_call([media(leg)], channels="mono", session_start=T0)
    assert out.per_leg["x"]["segments"] == 3
    found = onsets(out.pcm[:, 0], 8000)
    assert np.allclose(found, [1.0, 6.0, 9.0], atol=0.03)
    assert abs(out.duration_s - 11.0) < 0.05


def test_hold_with_running_timestamps_keeps_silence_in_place() -> None:
    tone = sine(600, 1.0)
    p1 = list(stream_packets(tone, start_wall=T0, ssrc=1, seq0=1, ts0=0))
    p2 = list(stream_packets(tone, start_wall=T0 + 11.0, ssrc=1, seq0=51, ts0=8000 * 11))
    leg = receive(p1 + p2, "h")
    out = render_call([media(leg)], channels="mono", session_start=T0)
    assert out.per_leg["h"]["segments"] == 1
    assert np.allclose(onsets(out.pcm[:, 0], 8000), [0.0, 11.0], atol=0.03)


def test_dtmf_events_deduplicated() -> None:
    leg = LegReceiver("1", rtpmaps={101: ("telephone-event", 8000, "0-16")})
    pkts = [RtpPacket.parse(d.payload) for d in read_udp(V / "sipp_dtmf_2833_5.pcap")]
    # put the event 2 s into a call with some audio first
    for k in range(50):
        leg.receive(
            RtpPacket(
                8,
                pkts[0].sequence_number - 50 + k,
                pkts[0].timestamp - 8000 + 160 * k,
                pkts[0].ssrc,
                b"\xd5" * 160,
            ).serialize(),
            T0 + 1.0 + 0.02 * k,
        )
    for k, p in enumerate(pkts):
        leg.receive(p.serialize(), T0 + 2.0 + 0.02 * k)
    rec = media(
        leg, {8: ("PCMA", 8000, None), pkts[0].payload_type: ("telephone-event", 8000, None)}
    )
    out = render_call([rec], channels="mono", session_start=T0)
    assert len(out.dtmf) == 1
    label, digit, at_s, duration_ms = out.dtmf[0]
    assert (label, digit) == ("1", "5")
    assert 1.9 < at_s < 2.05
    last = max(p.payload[2] << 8 | p.payload[3] for p in pkts)
    assert duration_ms == round(last / 8)


def test_dtmf_digits_from_a_siprec_capture() -> None:
    caps = read_udp(PCAPS / "miarec_09a_2833_dtmf.pcap")
    leg = LegReceiver("1", rtpmaps={101: ("telephone-event", 8000, "0-15")})
    for d in caps:
        leg.receive(d.payload, d.timestamp)
    rec = media(leg, {0: ("PCMU", 8000, None), 101: ("telephone-event", 8000, "0-15")})
    out = render_call([rec], channels="mono", session_start=caps[0].timestamp)
    assert "".join(d[1] for d in out.dtmf) == "123456789**0#"
    assert out.dtmf[0][2] == pytest.approx(15.682, abs=0.01)
    assert all(90 <= d[3] <= 130 for d in out.dtmf)
    info = out.per_leg["1"]
    assert info["segments"] == 1 and info["drift_ppm"] == 0 and info["dtmf"] == 13


def test_wideband_leg_sets_16k_and_g722_renders() -> None:
    pcm16 = sine(440, 2.0, rate=16000)
    g722 = av_encode("g722", 16000, pcm16)
    pk = [
        (T0 + 0.5 + 0.02 * k, RtpPacket(9, k, 160 * k, 5, p).serialize())
        for k, p in enumerate(g722)
    ]
    la = receive(pk, "wb")
    lb = receive(list(stream_packets(sine(440, 2.0), start_wall=T0 + 0.5)), "nb")
    out = render_call(
        [media(la, {9: ("G722", 8000, None)}), media(lb)], channels="stereo", session_start=T0
    )
    assert out.sample_rate == 16000
    assert abs(out.duration_s - 2.5) < 0.05
    for ch in (0, 1):
        x = out.pcm[int(0.7 * 16000) : int(2.3 * 16000), ch].astype(np.float64)
        spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
        assert abs(np.argmax(spec) * 16000 / len(x) - 440) < 5
    assert out.per_leg["wb"]["sample_rate"] == 16000


def test_unsupported_codec_is_silence_and_marked() -> None:
    pk = [
        (T0 + 1.0 + 0.02 * k, RtpPacket(3, k, 160 * k, 5, b"\x01" * 33).serialize())
        for k in range(100)
    ]
    leg = receive(pk, "u")
    out = render_call([media(leg, {3: ("X-FOO", 8000, None)})], channels="mono", session_start=T0)
    assert out.per_leg["u"]["status"] == "unsupported_codec"
    assert np.all(out.pcm == 0)
    assert abs(out.duration_s - 3.0) < 0.05


def test_comfort_noise_fills_at_level() -> None:
    recs = [
        SpoolRecord(
            T0 + 0.02 * k, 100 + k, 1000 + 160 * k, 8, False, 1, alaw_encode(sine(500, 0.02))
        )
        for k in range(10)
    ]
    recs.append(SpoolRecord(T0 + 0.2, 110, 1000 + 1600, 13, False, 1, b"\x28"))  # -40 dBov
    recs += [
        SpoolRecord(
            T0 + 1.2 + 0.02 * k,
            111 + k,
            1000 + 9600 + 160 * k,
            8,
            False,
            1,
            alaw_encode(sine(500, 0.02)),
        )
        for k in range(10)
    ]
    out = render_call(
        [LegMedia("c", recs, {**PCMA, 13: ("CN", 8000, None)})], channels="mono", session_start=T0
    )
    noise = out.pcm[int(0.3 * 8000) : int(1.1 * 8000), 0].astype(np.float64)
    rms_db = 20 * np.log10(np.sqrt(np.mean(noise**2)) / 32768)
    assert -43 < rms_db < -37


def test_mono_mix_clips_instead_of_wrapping() -> None:
    loud = np.full(8000, 30000, np.int16)
    legs = []
    for label in ("a", "b"):
        recs = [
            SpoolRecord(T0 + 0.02 * k, k, 160 * k, 0, False, 1, bytes([0x80]) * 160)
            for k in range(50)
        ]
        legs.append(LegMedia(label, recs, {0: ("PCMU", 8000, None)}))
    out = render_call(legs, channels="mono", session_start=T0)
    assert out.pcm.max() == 32767 and out.pcm.min() >= 0
    assert loud.size  # (u-law 0x80 is +32124)


def test_no_media() -> None:
    out = render_call([LegMedia("a", [], PCMA)], channels="stereo", session_start=T0)
    assert out.pcm.shape == (0, 2) and out.duration_s == 0.0
    assert out.per_leg["a"]["status"] == "no_media"
    assert render_call([], channels="mono", session_start=T0).pcm.shape == (0, 1)


def test_render_after_crash_with_truncated_spool() -> None:
    leg = receive(list(stream_packets(sine(440, 3.0), start_wall=T0 + 0.2)), "a")
    data = leg.take_spool_bytes() + leg.finish()
    recs = list(iter_records(data[:-50]))
    out = render_call([LegMedia("a", recs, PCMA)], channels="mono", session_start=T0)
    assert out.per_leg["a"]["packets_received"] == 149
    assert abs(out.duration_s - 3.18) < 0.03


@pytest.mark.parametrize(("n", "m"), [(10, 20), (20, 10), (1000, 1003), (5, 5)])
def test_resample_linear(n: int, m: int) -> None:
    x = np.linspace(0, 1, n).astype(np.float32)
    y = resample_linear(x, m)
    assert len(y) == m and y[0] == 0.0 and np.all(np.diff(y) >= -1e-6)


def test_upsample2_is_clean_for_a_tone() -> None:
    x = sine(1000, 0.5).astype(np.float64)
    y = upsample2(x)
    ref = sine(1000, 0.5, rate=16000).astype(np.float64)
    assert np.array_equal(y[0::2], x.astype(np.float32))
    err = y[200:-200] - ref[200:-200]
    assert np.sqrt(np.mean(err**2)) < 0.01 * np.sqrt(np.mean(ref**2))
    # the image at 7 kHz that linear interpolation leaves is strongly attenuated
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    f = np.fft.rfftfreq(len(y), 1 / 16000)
    assert spec[np.abs(f - 7000) < 50].max() < 1e-3 * spec.max()


def test_leg_that_never_decodes_is_marked_decode_failed() -> None:
    """AMR-WB declared, garbage sent (e.g. the wrong RFC 4867 packing): not 'ok' over silence."""
    pk = [
        (T0 + 0.02 * k, RtpPacket(97, k, 320 * k, 6, b"\xff\xff\xff").serialize())
        for k in range(50)
    ]
    leg = receive(pk, "w")
    out = render_call(
        [media(leg, {97: ("AMR-WB", 16000, None)})], channels="mono", session_start=T0
    )
    assert out.per_leg["w"]["status"] == "decode_failed"
    assert out.per_leg["w"]["undecoded_packets"] == 50
    assert np.all(out.pcm == 0)


def test_good_leg_counts_no_undecoded_packets() -> None:
    recs = [
        SpoolRecord(
            T0 + 0.02 * k, 100 + k, 1000 + 160 * k, 8, False, 1, alaw_encode(sine(500, 0.02))
        )
        for k in range(10)
    ]
    out = render_call([LegMedia("g", recs, PCMA)], channels="mono", session_start=T0)
    assert out.per_leg["g"]["status"] == "ok"
    assert out.per_leg["g"]["undecoded_packets"] == 0
