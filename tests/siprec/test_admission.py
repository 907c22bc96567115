"""Admission: what counts as a SIPREC INVITE, and the per-source budgets."""

from __future__ import annotations

import pytest

from siprec_recorder.siprec.admission import Admission, Budgets, is_siprec_invite


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
