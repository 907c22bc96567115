from siprec_recorder.rtp.jitter import JitterBuffer


def push_all(jb: JitterBuffer[int], seqs: list[int], now: float = 0.0) -> list[int]:
    out: list[int] = []
    for s in seqs:
        out += jb.push(s, s, now)
    return out


def test_in_order_released_immediately() -> None:
    jb: JitterBuffer[int] = JitterBuffer(window=8)
    assert push_all(jb, [10, 11, 12]) == [10, 11, 12]
    assert (jb.lost, jb.late, jb.duplicates, jb.released) == (0, 0, 0, 3)


def test_reorder_within_window() -> None:
    jb: JitterBuffer[int] = JitterBuffer(window=8)
    assert push_all(jb, [1, 3, 4, 2, 5]) == [1, 2, 3, 4, 5]
    assert jb.lost == 0 and len(jb) == 0


def test_duplicates_dropped() -> None:
    jb: JitterBuffer[int] = JitterBuffer(window=8)
    out = push_all(jb, [1, 2, 2, 4, 4, 3, 1])
    assert out == [1, 2, 3, 4]
    assert jb.duplicates == 3


def test_loss_on_window_overflow_and_late_arrival() -> None:
    jb: JitterBuffer[int] = JitterBuffer(window=4)
    out = push_all(jb, [1, 3, 4, 5, 6])  # 2 missing; buffer reaches 4 -> give up on 2
    assert out == [1, 3, 4, 5, 6]
    assert jb.lost == 1
    assert jb.push(2, 2, 0.0) == []  # its slot was given up: late, not duplicate
    assert jb.late == 1 and jb.duplicates == 0
    assert jb.push(2, 2, 0.0) == []  # a second copy is a duplicate
    assert jb.duplicates == 1


def test_jump_ahead_beyond_window() -> None:
    jb: JitterBuffer[int] = JitterBuffer(window=4)
    assert push_all(jb, [1, 2]) == [1, 2]
    # Slots more than a window behind 100 are given up at once; 97..99 may still come.
    assert jb.push(100, 100, 0.0) == []
    assert jb.lost == 94
    assert jb.push(98, 98, 0.0) == []
    assert jb.flush() == [98, 100]
    assert jb.lost == 96


def test_release_on_age() -> None:
    jb: JitterBuffer[int] = JitterBuffer(window=50, max_delay=0.1)
    assert jb.push(1, 1, 0.0) == [1]
    assert jb.push(3, 3, 0.02) == []
    assert jb.poll(0.05) == []
    assert jb.poll(0.13) == [3]
    assert jb.lost == 1
    # the next push also releases on age
    assert jb.push(5, 5, 0.2) == []
    assert jb.push(6, 6, 0.31) == [5, 6]


def test_flush_and_reset() -> None:
    jb: JitterBuffer[int] = JitterBuffer(window=10)
    push_all(jb, [1, 3, 5])
    assert jb.flush() == [3, 5]
    assert jb.lost == 2
    assert jb.reset() == []
    assert jb.push(1000, 1000, 0.0) == [1000]


def test_memory_bounded() -> None:
    jb: JitterBuffer[int] = JitterBuffer(window=16)
    seqs = [i for i in range(0, 100_000, 2)]  # every other packet lost
    for s in seqs:
        jb.push(s, s, 0.0)
        assert len(jb) <= 16
    assert len(jb._given_up) <= 64
    jb.flush()
    assert jb.lost == 49_999
