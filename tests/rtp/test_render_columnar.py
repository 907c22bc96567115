"""The renderer on spool columns: payload placement by runs, and every way to hand it a leg."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from siprec_recorder.rtp.codecs import alaw_encode, get_decoder
from siprec_recorder.rtp.leg import LegReceiver
from siprec_recorder.rtp.packet import RtpPacket
from siprec_recorder.rtp.render import LegMedia, _place, _place_scattered, render_call
from siprec_recorder.rtp.spoolfmt import RecordTable, iter_records

from ._synth import sine, stream_packets

T0 = 1_700_000_000.0
MAPS = {8: ("PCMA", 8000, None), 13: ("CN", 8000, None), 101: ("telephone-event", 8000, None)}


def _reference_place(
    total: int, samples: np.ndarray, pos: np.ndarray, lengths: np.ndarray
) -> np.ndarray:
    """One slice copy per payload, in order, clipped to the track."""
    out = np.zeros(total, np.int16)
    src = 0
    for at, width in zip(pos.tolist(), lengths.tolist(), strict=True):
        lo, hi = max(at, 0), min(at + width, total)
        if hi > lo:
            out[lo:hi] = samples[src + lo - at : src + hi - at]
        src += width
    return out


# A run: (gap before it, payload widths). Inside a run payloads follow each other without a
# gap; a gap may be negative (timestamps going back over earlier payloads) or 0 (adjacent).
_RUNS = st.lists(
    st.tuples(
        st.one_of(st.just(0), st.integers(-200, 400)),
        st.one_of(
            st.tuples(st.sampled_from([0, 1, 3, 160]), st.integers(1, 40)).map(
                lambda wc: [wc[0]] * wc[1]
            ),
            st.lists(st.integers(0, 50), min_size=1, max_size=12),
        ),
    ),
    max_size=12,
)


@settings(max_examples=400, deadline=None)
@given(_RUNS, st.integers(-300, 300), st.integers(0, 6000), st.integers(0, 2**32 - 1))
def test_place_matches_a_slice_per_payload(
    runs: list[tuple[int, list[int]]], first: int, total: int, seed: int
) -> None:
    pos_list: list[int] = []
    widths: list[int] = []
    at = first
    for gap, run in runs:
        at += gap
        for width in run:
            pos_list.append(at)
            widths.append(width)
            at += width
    pos = np.array(pos_list, np.int64)
    lengths = np.array(widths, np.int64)
    samples = np.random.default_rng(seed).integers(-32768, 32768, sum(widths), dtype=np.int16)
    expected = _reference_place(total, samples, pos, lengths)
    for place in (_place, lambda *a: _place_scattered(*a, np.cumsum(lengths) - lengths)):
        audio = np.zeros(total, np.int16)
        place(audio, samples, pos, lengths)
        assert np.array_equal(audio, expected)


def _spool_of_a_busy_leg() -> bytes:
    """PCMA with loss and jitter, a CN packet, a DTMF digit and an SSRC change."""
    rng = np.random.default_rng(7)
    leg = LegReceiver("a", rtpmaps=MAPS)
    lost = rng.random(400) < 0.05
    for wall, data in stream_packets(
        sine(440, 8.0), start_wall=T0 + 0.4, ssrc=1, drop=lambda k: bool(lost[k])
    ):
        leg.receive(data, wall + float(rng.uniform(0, 0.01)))
    leg.receive(RtpPacket(13, 1400, 5000 + 160 * 400, 1, b"\x28").serialize(), T0 + 8.41)
    for k in range(6):  # digit 5, end packet sent three times
        end = 0x80 if k >= 3 else 0
        body = bytes([5, end | 10]) + (160 * (k + 1)).to_bytes(2, "big")
        leg.receive(RtpPacket(101, 1401 + k, 5000 + 160 * 410, 1, body).serialize(), T0 + 8.6)
    for wall, data in stream_packets(sine(600, 3.0), start_wall=T0 + 9.0, ssrc=2, seq0=7):
        leg.receive(data, wall)
    return leg.take_spool_bytes() + leg.finish()


def test_a_leg_renders_alike_from_bytes_table_or_records() -> None:
    data = _spool_of_a_busy_leg()
    records = list(iter_records(data))
    forms = [data, bytearray(data), RecordTable.parse(data), records, iter(records)]
    outs = [
        render_call([LegMedia("a", form, MAPS)], channels="mono", session_start=T0)
        for form in forms
    ]
    first = outs[0]
    assert first.dtmf and first.per_leg["a"]["segments"] == 2
    assert first.per_leg["a"]["packets_lost"] > 0
    for out in outs[1:]:
        assert np.array_equal(out.pcm, first.pcm)
        assert out.dtmf == first.dtmf
        assert out.per_leg == first.per_leg


def test_leg_media_keeps_its_table() -> None:
    recs = list(iter_records(_spool_of_a_busy_leg()))
    leg = LegMedia("a", iter(recs), MAPS)
    assert leg.table() is leg.table()
    assert list(leg.table().records()) == recs


def test_g711_runs_decode_as_with_decode_run() -> None:
    coded = alaw_encode(sine(300, 1.0))
    payloads = [coded[i : i + 160] for i in range(0, len(coded), 160)]
    leg = LegReceiver("g")
    for k, p in enumerate(payloads):
        leg.receive(RtpPacket(8, k, 160 * k, 3, p).serialize(), T0 + 0.02 * k)
    out = render_call([LegMedia("g", leg.finish(), MAPS)], channels="mono", session_start=T0)
    dec = get_decoder("PCMA", 8000)
    assert dec is not None
    samples, _lengths = dec.decode_run(payloads)
    assert np.array_equal(out.pcm[: len(samples), 0], samples)
