"""Tests for siprec_recorder.phone: table-driven cases plus hypothesis."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from siprec_recorder.phone import normalize_number, number_forms, path_safe_digits, user_part


@pytest.mark.parametrize(
    ("aor", "expected"),
    [
        ("sip:+32470000001@h;user=phone", "+32470000001"),
        ("tel:+32470000001;phone-context=example.com", "+32470000001"),
        ("sips:bob@biloxi.com", "bob"),
        ('"Bob" <sip:bob@biloxi.com>;tag=1', "bob"),
        ("<sip:2249888500@172.16.195.72>;tag=x", "2249888500"),
        ("2249888500@172.16.198.55", "2249888500"),
        ("7602922411", "7602922411"),
        ("+18888888888@fakeip.com", "+18888888888"),
        ("sip:10.0.0.31;user=phone", ""),
        ("sip:8638254725", "8638254725"),
        ("sip:+32470000001;user=phone", "+32470000001"),
        ("sip:192.168.1.1:5060", ""),
        ("sip:example.com", ""),
        ("sip:alice:secret@host", "alice"),
        ("sip:%2B32470000001@host", "+32470000001"),
        ("SIP:+32470000001@HOST", "+32470000001"),
        ("sip:0470000001;phone-context=+32@host;user=phone", "0470000001"),
        ("tel:+1-201-555-0123", "+1-201-555-0123"),
        ("sip:1234@host?subject=x", "1234"),
        ("", ""),
    ],
)
def test_user_part(aor: str, expected: str) -> None:
    assert user_part(aor) == expected


@pytest.mark.parametrize(
    ("aor", "expected"),
    [
        # the contract's examples (Belgian defaults)
        ("+32470000001", "+32470000001"),
        ("0032470000001", "+32470000001"),
        ("0470000001", "+32470000001"),
        ("tel:+32470000001", "+32470000001"),
        ("sip:+32470000001@host;user=phone", "+32470000001"),
        ("32470000001", "+32470000001"),
        # short codes stay bare
        ("112", "112"),
        ("1234", "1234"),
        ("sip:112@sbc.example;user=phone", "112"),
        ("tel:1234;phone-context=example.com", "1234"),
        ("123456", "123456"),
        # visual separators
        ("tel:+32-470-00-00-01", "+32470000001"),
        ("+32 (0)470 00 00 01", "+32470000001"),
        ("0470.00.00.01", "+32470000001"),
        ("(0470) 00 00 01", "+32470000001"),
        # phone-context
        ("tel:0470000001;phone-context=+32", "+32470000001"),
        ("tel:470000001;phone-context=+32", "+32470000001"),
        ("sip:0612345678;phone-context=+33@ims.example;user=phone", "+33612345678"),
        ("tel:0470000001;phone-context=ims.mnc001.mcc206.3gppnetwork.org", "+32470000001"),
        # no digits
        ("sip:alice@host", None),
        ("sip:ASBCE@asbce.com", None),
        ("sip:caller_name", None),
        ("sip:10.0.0.31;user=phone", None),
        ("sip:8638254725", "8638254725"),  # BroadWorks hostless aor
        ("sip:0470000001", "+32470000001"),
        ("sip:200.57.7.195:55061;user=phone", None),
        ("", None),
        ("+", None),
        ("sip:agent112@host", None),
        # names with a long digit run
        ("Extension-016190619@speechpath.ie", "+3216190619"),
        # ambiguous national significant numbers without prefix stay bare
        ("7602922411", "7602922411"),
        ("2249888500@172.16.198.55", "2249888500"),
        ("sip:+972546136443@192.168.10.140", "+972546136443"),
        ("sip:0733165805@192.168.40.34", "+32733165805"),
        ("+18888888888@fakeip.com", "+18888888888"),
        ("sip:7711@10.155.7.148;user=phone", "7711"),
    ],
)
def test_normalize_number_belgian_defaults(aor: str, expected: str | None) -> None:
    assert normalize_number(aor) == expected


@pytest.mark.parametrize(
    ("aor", "kwargs", "expected"),
    [
        (
            "17602922410",
            {"country_code": "1", "national_prefix": "1", "international_prefix": "011"},
            "+17602922410",
        ),
        (
            "7602922410",
            {"country_code": "1", "national_prefix": "", "international_prefix": "011"},
            "+17602922410",
        ),
        (
            "01132470000001",
            {"country_code": "1", "national_prefix": "1", "international_prefix": "011"},
            "+32470000001",
        ),
        ("0612345678", {"country_code": "33"}, "+33612345678"),
        ("3471234567", {"country_code": "39", "national_prefix": ""}, "+393471234567"),
        ("00", {}, "00"),
    ],
)
def test_normalize_number_configured(aor: str, kwargs: dict[str, str], expected: str) -> None:
    assert normalize_number(aor, **kwargs) == expected


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        ("+32470000001", "32470000001"),
        ("112", "112"),
        (None, "unknown"),
        ("", "unknown"),
        ("+", "unknown"),
        ("../etc/passwd", "unknown"),
        ("12/../34", "1234"),
    ],
)
def test_path_safe_digits(number: str | None, expected: str) -> None:
    assert path_safe_digits(number) == expected


_OUT = re.compile(r"^\+?[0-9]+$")


@given(st.text(max_size=200))
def test_normalize_number_never_raises_and_is_clean(text: str) -> None:
    result = normalize_number(text)
    assert result is None or _OUT.match(result)


@given(
    st.text(alphabet="0123456789+-. ()", max_size=30),
    st.sampled_from(["", "tel:", "sip:", "sips:"]),
    st.sampled_from(["", "@host", "@host;user=phone", ";phone-context=+44", ";phone-context=+x"]),
)
def test_normalize_number_uri_shapes(body: str, scheme: str, tail: str) -> None:
    result = normalize_number(scheme + body + tail)
    assert result is None or _OUT.match(result)


@given(st.text(max_size=100))
def test_user_part_and_path_safe_never_raise(text: str) -> None:
    user_part(text)
    assert re.match(r"^([0-9]+|unknown)$", path_safe_digits(text))


def test_number_forms_canonical_first_then_the_typed_user_part() -> None:
    assert number_forms("0470 00 00 01", "32") == ["+32470000001", "0470 00 00 01"]
    assert number_forms("+32470000001", "32") == ["+32470000001"]
    assert number_forms("sip:alice@example.com", "32") == ["alice"]
    assert number_forms("agent112", "32") == ["agent112"]  # never the short code 112
    assert number_forms("  ", "32") == []
