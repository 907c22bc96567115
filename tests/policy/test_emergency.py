"""Emergency numbers in every form an SRC may send them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siprec_recorder.policy.emergency import EmergencyMatcher, is_emergency
from siprec_recorder.policy.settings import DEFAULT_EMERGENCY_NUMBERS


@pytest.mark.parametrize(
    "aor",
    [
        "112",
        "tel:112",
        "sip:112@host",
        "sips:112@host.example.com:5061",
        "sip:112@10.0.0.1;user=phone",
        "<sip:112;phone-context=+32@ims.example;user=phone>",
        '"Emergency" <tel:112>',
        "112;phone-context=example.com",
        "tel:112;phone-context=+32",
        "urn:service:sos",
        "urn:service:sos.police",
        "URN:SERVICE:SOS.Ambulance",
        "+32112",
        "0032112",
        "sip:+32112@host;user=phone",
        "tel:1-1-2",
        "sip:%31%31%32@host",
        "911",
        "999",
        "000",
        "110",
        "100",
        "101",
        "117",
        "118",
        "144",
    ],
)
def test_default_list_matches(aor: str) -> None:
    assert EmergencyMatcher().matches(aor)


@pytest.mark.parametrize(
    "aor",
    [
        "1120",
        "0112",
        "+33112",  # another country's prefix: not matched (see module docstring)
        "+32470000001",
        "sip:alice@host",
        "sip:host.example.com",
        "urn:service:sosx",
        "urn:service:counseling",
        "",
        "<>",
        "tel:",
        "sip:1234@host",
    ],
)
def test_not_emergency(aor: str) -> None:
    assert not EmergencyMatcher().matches(aor)


def test_configured_list_and_country_code() -> None:
    matcher = EmergencyMatcher(["tel:17", "urn:service:sos.fire"], country_code="33")
    assert matcher.matches("17") and matcher.matches("+3317") and matcher.matches("0033 17")
    assert not matcher.matches("112")
    assert matcher.matches("urn:service:sos.fire") and matcher.matches("urn:service:sos.fire.x")
    assert not matcher.matches("urn:service:sos")
    assert matcher.any_matches(["+32470000001", "sip:17@h"])
    assert is_emergency("tel:112")
    assert "112" in DEFAULT_EMERGENCY_NUMBERS


@settings(deadline=None)
@given(st.text(max_size=200))
def test_fuzz_never_raises(text: str) -> None:
    EmergencyMatcher().matches(text)
