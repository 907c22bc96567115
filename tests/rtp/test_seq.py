from siprec_recorder.rtp.seq import (
    SequenceUnwrapper,
    TimestampUnwrapper,
    seq_distance,
    ts_distance,
)


def test_seq_wraps_65535_to_0() -> None:
    u = SequenceUnwrapper()
    a = u.unwrap(65534)
    assert u.unwrap(65535) == a + 1
    assert u.unwrap(0) == a + 2
    assert u.unwrap(1) == a + 3
    assert u.highest == a + 3


def test_seq_reorder_across_wrap() -> None:
    u = SequenceUnwrapper()
    a = u.unwrap(65534)
    assert u.unwrap(0) == a + 2  # 65535 still missing
    assert u.unwrap(65535) == a + 1  # late, previous cycle
    assert u.highest == a + 2
    assert u.unwrap(1) == a + 3


def test_seq_reordered_before_first_is_non_negative() -> None:
    u = SequenceUnwrapper()
    first = u.unwrap(0)
    assert first == 65536
    assert u.unwrap(65535) == 65535
    assert u.unwrap(65530) == 65530


def test_seq_many_cycles() -> None:
    u = SequenceUnwrapper()
    start = u.unwrap(100)
    for i in range(1, 300_000, 7):
        assert u.unwrap((100 + i) & 0xFFFF) == start + i


def test_cycle_base_keeps_contexts_apart() -> None:
    u = SequenceUnwrapper(5)
    assert u.unwrap(10) == 5 * 65536 + 10


def test_timestamp_wrap_and_reorder() -> None:
    u = TimestampUnwrapper()
    a = u.unwrap(0xFFFFFF00)
    assert u.unwrap(0x60) == a + 0x160
    assert u.unwrap(0xFFFFFFA0) == a + 0xA0
    assert u.unwrap(0x100) == a + 0x200


def test_distances() -> None:
    assert seq_distance(65535, 0) == 1
    assert seq_distance(0, 65535) == -1
    assert seq_distance(10, 10) == 0
    assert ts_distance(0xFFFFFFFF, 0) == 1
    assert ts_distance(0, 0xFFFFFFFF) == -1


from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@given(st.integers(0, 2**40), st.lists(st.integers(-3000, 3000), max_size=200))
def test_unwrap_matches_true_counter(start: int, steps: list[int]) -> None:
    """Any walk whose steps stay within half the modulus of the maximum unwraps exactly."""
    for bits, cls in ((16, SequenceUnwrapper), (32, TimestampUnwrapper)):
        u = cls()
        true = start
        first = u.unwrap(true & ((1 << bits) - 1))
        highest = true
        for step in steps:
            true = max(true + step, start - 2000)
            if abs(true - highest) >= 1 << (bits - 1):
                break
            highest = max(highest, true)
            assert u.unwrap(true & ((1 << bits) - 1)) - first == true - start
