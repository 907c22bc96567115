"""The renderer on spool columns: every way to hand it a leg renders alike."""

from __future__ import annotations

import numpy as np

from siprec_recorder.rtp.codecs import alaw_encode, get_decoder
from siprec_recorder.rtp.leg import LegReceiver
from siprec_recorder.rtp.packet import RtpPacket
from siprec_recorder.rtp.render import LegMedia, render_call
from siprec_recorder.rtp.spoolfmt import RecordTable, iter_records

from ._synth import sine, stream_packets

T0 = 1_700_000_000.0
MAPS = {8: ("PCMA", 8000, None), 13: ("CN", 8000, None), 101: ("telephone-event", 8000, None)}


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
