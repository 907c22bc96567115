import pytest

from siprec_recorder.rtp.stats import LegStats, estimate_mos, r_to_mos


def test_r_to_mos_anchor_points() -> None:
    assert r_to_mos(0) == 1.0
    assert r_to_mos(100) == 4.5
    assert r_to_mos(93.2) == pytest.approx(4.41, abs=0.01)
    assert r_to_mos(50) == pytest.approx(2.58, abs=0.01)


def test_mos_falls_with_loss_and_jitter_and_codec() -> None:
    clean = estimate_mos("PCMA", 0.0, 0.0)
    assert 4.3 < clean <= 4.41
    assert estimate_mos("PCMA", 0.05, 0.0) < clean - 0.5
    assert estimate_mos("PCMA", 0.0, 100.0) < clean
    assert estimate_mos("G729", 0.0, 0.0) < clean
    assert estimate_mos("G729", 0.05, 0.0) < estimate_mos("PCMA", 0.05, 0.0)
    assert estimate_mos("unknown", 0.0, 0.0) == clean
    assert estimate_mos("PCMA", 1.0, 500.0) >= 1.0


def test_expected_lost_over_contexts() -> None:
    s = LegStats()
    for seq in (10, 11, 13):
        s.packet(seq, float(seq), None)
    s.new_context()
    for seq in (1000, 1001):
        s.packet(seq, 20.0 + seq / 1000, None)
    d = s.as_dict()
    assert d["packets_expected"] == 4 + 2
    assert d["packets_received"] == 5 and d["packets_lost"] == 1
    assert d["longest_gap_ms"] == pytest.approx(8000.0)


def test_jitter_a8() -> None:
    s = LegStats()
    # transit alternates 0 / 10 ms: |D| = 10 ms every packet -> J converges to 10 ms
    for i in range(400):
        s.packet(i, i * 0.02 + (0.01 if i % 2 else 0.0), i * 0.02)
    assert s.as_dict()["jitter_ms"] == pytest.approx(10.0, abs=0.01)
