"""The wire-string sanitiser: printable, valid UTF-8, reversible, bounded."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from siprec_recorder.wiretext import escape, unescape, wire_bytes


def _wire(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")  # what the SIP parser makes of the bytes


def test_audit_call_id() -> None:
    text = _wire(bytes.fromhex("72322dff40") + b"x")
    assert escape(text) == "r2-\\xff@x"
    assert unescape(escape(text)) == wire_bytes(text)


def test_control_characters_and_backslash() -> None:
    assert escape("a\rb\nc\\d\x7f\x85") == "a\\x0db\\x0ac\\\\d\\x7f\\u0085"


@given(st.binary(max_size=200))
def test_any_bytes_round_trip(raw: bytes) -> None:
    out = escape(_wire(raw))
    out.encode("utf-8")  # always encodable
    assert not [c for c in out if ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F]
    assert unescape(out) == raw


@given(st.binary(max_size=600), st.integers(min_value=20, max_value=300))
def test_bounded(raw: bytes, limit: int) -> None:
    text = _wire(raw)
    out = escape(text, limit)
    assert len(out) <= limit
    if len(escape(text)) > limit:
        assert out[-17] == "~"
    else:
        assert unescape(out) == raw


def test_long_values_stay_distinct() -> None:
    assert escape("a" * 300 + "1", 64) != escape("a" * 300 + "2", 64)
