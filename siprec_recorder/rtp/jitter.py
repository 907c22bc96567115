"""A bounded reordering jitter buffer keyed by extended sequence number.

Theory of operation
-------------------
The recorder does not play audio out, so this buffer's only job is to turn the arrival
order into sequence order before packets are spooled, and to say what was lost, late or
duplicated. It never reads a clock: every call takes ``now``.

* ``next_seq`` is the next extended sequence number to release. A packet equal to it is
  released at once (the common, in-order case costs one comparison), followed by any
  buffered successors.
* A packet ahead of ``next_seq`` waits in a dict. The hole before it is given up (its slots
  counted ``lost``) when the buffer holds ``window`` packets, when the packet is ``window``
  or more ahead, or when the oldest waiting packet has waited ``max_delay`` seconds.
* A packet behind ``next_seq`` is either a duplicate (its slot was released) or late (its
  slot was given up as lost, and the packet is dropped). The slots given up recently are
  remembered (bounded) to tell the two apart.

Memory is bounded by ``window`` packets plus ``4 * window`` remembered lost slots.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

__all__ = ["JitterBuffer"]

T = TypeVar("T")


class JitterBuffer(Generic[T]):
    """Reorders items by extended sequence number within a window.

    ``push(ext_seq, item, now)`` returns the items released in sequence order.
    """

    __slots__ = (
        "_buffer",
        "_given_up",
        "_given_up_order",
        "duplicates",
        "late",
        "lost",
        "max_delay",
        "next_seq",
        "released",
        "window",
    )

    def __init__(self, window: int = 50, max_delay: float = 0.3) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self.window = window
        self.max_delay = max_delay
        self.next_seq: int | None = None
        self._buffer: dict[int, tuple[T, float]] = {}
        self._given_up: set[int] = set()
        self._given_up_order: deque[int] = deque()
        self.lost = 0
        self.late = 0
        self.duplicates = 0
        self.released = 0

    def __len__(self) -> int:
        return len(self._buffer)

    def push(self, ext_seq: int, item: T, now: float) -> list[T]:
        """Insert one packet; return the items now releasable, in order."""
        nxt = self.next_seq
        if nxt is None or (ext_seq == nxt and not self._buffer):
            # In-order fast path.
            self.next_seq = ext_seq + 1
            self.released += 1
            return [item]
        if ext_seq < nxt:
            if ext_seq in self._given_up:
                self._given_up.discard(ext_seq)
                self.late += 1
            else:
                self.duplicates += 1
            return []
        if ext_seq in self._buffer:
            self.duplicates += 1
            return []
        self._buffer[ext_seq] = (item, now)
        out: list[T] = []
        self._release_run(out)
        if self._buffer:
            if len(self._buffer) >= self.window:
                self._give_up_until(min(self._buffer), out)
            elif ext_seq - nxt >= self.window:
                self._give_up_until(ext_seq - self.window + 1, out)
            self._release_aged(now, out)
        return out

    def poll(self, now: float) -> list[T]:
        """Release what has waited ``max_delay`` (call when no packet arrives for a while)."""
        out: list[T] = []
        self._release_aged(now, out)
        return out

    def flush(self) -> list[T]:
        """Release everything buffered, in order (end of stream / context switch)."""
        out: list[T] = []
        while self._buffer:
            self._give_up_until(min(self._buffer), out)
        return out

    def reset(self) -> list[T]:
        """Flush, then forget the sequence position (a new sequence context follows)."""
        out = self.flush()
        self.next_seq = None
        self._given_up.clear()
        self._given_up_order.clear()
        return out

    # -- internals ---------------------------------------------------------------------

    def _release_run(self, out: list[T]) -> None:
        nxt = self.next_seq
        assert nxt is not None
        buf = self._buffer
        count = 0
        while nxt in buf:
            out.append(buf.pop(nxt)[0])
            nxt += 1
            count += 1
        self.released += count
        self.next_seq = nxt

    def _give_up_until(self, target: int, out: list[T]) -> None:
        """Declare every missing slot before ``target`` lost, then release what follows."""
        nxt = self.next_seq
        assert nxt is not None
        while nxt < target:
            if nxt in self._buffer:
                out.append(self._buffer.pop(nxt)[0])
                self.released += 1
            else:
                self.lost += 1
                self._remember_given_up(nxt)
            nxt += 1
        self.next_seq = nxt
        self._release_run(out)

    def _remember_given_up(self, seq: int) -> None:
        self._given_up.add(seq)
        self._given_up_order.append(seq)
        if len(self._given_up_order) > 4 * self.window:
            self._given_up.discard(self._given_up_order.popleft())

    def _release_aged(self, now: float, out: list[T]) -> None:
        while self._buffer:
            first = min(self._buffer)
            if now - self._buffer[first][1] < self.max_delay:
                return
            self._give_up_until(first, out)
