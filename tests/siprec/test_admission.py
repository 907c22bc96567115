"""Admission: what counts as a SIPREC INVITE, and the per-source budgets."""

from __future__ import annotations

import pytest

from siprec_recorder.sip.headers import Via
from siprec_recorder.siprec.admission import (
    Admission,
    Budgets,
    Origin,
    TrustedProxies,
    is_siprec_invite,
)


@pytest.mark.parametrize(
    ("headers", "body", "siprec"),
    [
        ({"Contact": "<sip:src@192.0.2.1:5060>;+sip.src"}, b"", True),  # RFC 7866
        ({"Contact": "<sip:192.0.2.1:5060;transport=tcp>;src"}, b"", True),  # BroadWorks
        ({"Require": "siprec"}, b"", True),
        ({"Supported": "100rel, siprec, timer"}, b"", True),  # Metaswitch
        ({}, b"--b\r\nContent-Type: application/rs-metadata+xml\r\n\r\n<recording/>", True),
        ({"Contact": "<sip:src@192.0.2.1>"}, b"", False),  # "src" as a user part
        ({"Contact": "<sip:a@b>;srcx"}, b"", False),
        ({"Contact": "<sip:100@192.0.2.9>"}, b"", False),  # svwar -m INVITE
    ],
)
def test_is_siprec_invite(headers: dict[str, str], body: bytes, siprec: bool) -> None:
    assert is_siprec_invite(headers, body) is siprec


def test_budgets_per_source() -> None:
    adm = Admission(Budgets(max_media_lines=4, max_ports_per_source=4))
    refusal = adm.check("192.0.2.1", 5)
    assert refusal is not None and refusal.status == 488
    assert refusal.headers == [("Warning", '399 - "budget: media-lines-per-invite"')]
    assert adm.check("192.0.2.1", 2) is None
    adm.hold("192.0.2.1", 2)
    assert adm.check("192.0.2.1", 2) is None
    adm.hold("192.0.2.1", 2)
    refusal = adm.check("192.0.2.1", 2)
    assert refusal is not None and refusal.status == 503
    assert ("Warning", '399 - "budget: rtp-ports-per-source"') in refusal.headers
    assert adm.check("192.0.2.2", 2) is None  # another source is untouched
    adm.release("192.0.2.1", 4)
    assert adm.ports_held("192.0.2.1") == 0 and adm.check("192.0.2.1", 2) is None
    assert adm.refused == {"media-lines-per-invite": 1, "rtp-ports-per-source": 1}


def vias(*values: str) -> list[Via]:
    return [Via.parse(v) for v in values]


PROXIES = TrustedProxies(["10.0.0.0/29", "2001:db8::1/128"])


def test_the_src_behind_a_trusted_proxy_is_the_hop_before_it() -> None:
    chain = vias(
        "SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKk",
        "SIP/2.0/UDP sbc.example:5060;branch=z9hG4bKs;received=192.0.2.7;rport=5071",
    )
    assert PROXIES.origin_behind("10.0.0.2", chain) == Origin("192.0.2.7", 5071)
    assert str(Origin("192.0.2.7", 5071)) == "192.0.2.7:5071"
    # without received/rport the proxy found the sent-by right: that is the address
    plain = vias("SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKk", "SIP/2.0/UDP 192.0.2.8:5062;branch=b")
    assert PROXIES.origin_behind("10.0.0.2", plain) == Origin("192.0.2.8", 5062)


def test_a_chain_of_trusted_proxies_is_walked_to_the_first_untrusted_hop() -> None:
    chain = vias(
        "SIP/2.0/UDP [2001:db8::1]:5060;branch=a",
        "SIP/2.0/UDP 10.0.0.3:5060;branch=b",
        "SIP/2.0/TCP 192.0.2.9:5060;branch=c",
        "SIP/2.0/UDP 10.0.0.4:5060;branch=forged",  # below the SRC: nobody vouched for it
    )
    assert PROXIES.origin_behind("2001:db8::1", chain) == Origin("192.0.2.9", 5060)
    assert str(Origin("2001:db8::9", 5060)) == "[2001:db8::9]:5060"


def test_vias_from_an_untrusted_sender_are_not_believed() -> None:
    chain = vias("SIP/2.0/UDP 192.0.2.7;branch=a", "SIP/2.0/UDP 10.0.0.9;branch=b")
    assert PROXIES.origin_behind("192.0.2.7", chain) is None
    assert PROXIES.origin_behind("not-an-ip", chain) is None
    assert not TrustedProxies([])
    assert TrustedProxies([]).origin_behind("10.0.0.2", chain) is None


def test_a_trusted_proxys_own_request_has_no_origin_behind_it() -> None:
    only = vias("SIP/2.0/UDP 10.0.0.2;branch=a")
    assert PROXIES.origin_behind("10.0.0.2", only) is None
    assert PROXIES.trusts("::ffff:10.0.0.2")  # an IPv4 proxy on a dual-stack socket


def test_a_change_to_a_live_session_is_checked_by_its_net_effect() -> None:
    adm = Admission(Budgets(max_media_lines=6, max_ports_per_source=4))
    adm.hold("192.0.2.1", 2)  # one session with two legs
    # Two more lines (4 in the session, 4 for the source): fits.
    assert adm.check_change("192.0.2.1", 4, 2) is None
    adm.hold("192.0.2.1", 2)  # a second session of the same source, two legs
    refusal = adm.check_change("192.0.2.1", 4, 2)
    assert refusal is not None and refusal.status == 503
    assert refusal.budget == "rtp-ports-per-source" and ("Retry-After", "10") in refusal.headers
    # One line removed (port 0) for each one added: no new ports, nothing to refuse.
    assert adm.check_change("192.0.2.1", 2, 0) is None
    # More lines than the source's whole budget could never fit: 488, no Retry-After.
    never = adm.check_change("192.0.2.1", 5, 3)
    assert never is not None and never.status == 488 and never.budget == "rtp-ports-per-source"
    assert never.headers == [("Warning", '399 - "budget: rtp-ports-per-source"')]
    too_many = adm.check_change("192.0.2.1", 7, 5)
    assert too_many is not None and too_many.budget == "media-lines-per-invite"
    assert adm.refused == {"rtp-ports-per-source": 2, "media-lines-per-invite": 1}
    adm.count("sessions-per-source")  # the budgets the SRS checks itself count here too
    assert adm.refused["sessions-per-source"] == 1


def test_a_new_invite_larger_than_the_source_budget_is_488() -> None:
    adm = Admission(Budgets(max_media_lines=16, max_ports_per_source=4))
    refusal = adm.check("192.0.2.1", 6)
    assert refusal is not None and refusal.status == 488
    assert refusal.budget == "rtp-ports-per-source"
