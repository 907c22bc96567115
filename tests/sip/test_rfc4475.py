"""RFC 4475 and RFC 5118 torture messages: each one accepted, rejected or flagged as intended."""

from __future__ import annotations

from pathlib import Path

import pytest

from siprec_recorder.sip import SipParseError, SipRequest, SipResponse, parse_message, uas_precheck
from siprec_recorder.sip.core import SipCore
from siprec_recorder.sip.events import Address, MessageRejected, RequestReceived

VECTORS = Path(__file__).parent.parent / "vectors" / "sip"
RFC4475 = VECTORS / "rfc4475"
RFC5118 = VECTORS / "rfc5118"

#: RFC 4475 section 3.1.1 (valid) plus the semantic / backward-compatible ones that parse
ACCEPTED = {
    "wsinv": 150, "intmeth": 0, "esc01": 150, "escnull": 0, "esc02": 0, "lwsdisp": 0,
    "longreq": 150, "dblreq": 0, "semiuri": 0, "transports": 0, "mpart01": 553,
    "unreason": 154, "noreason": 0,
    # section 3.1.2.10: trailing SP in the Request-Line may be tolerated
    "trws": 0,
    # section 3.1.2.12: the Date value is not used by a UAS
    "baddate": 150,
    # section 3.2.1, 3.3.x: well-formed, handled by transaction/UAS logic
    "badbranch": 0, "unkscm": 0, "novelsc": 0, "unksm2": 0, "bext01": 0, "invut": 40,
    "regaut01": 0, "bcast": 154, "zeromf": 0, "cparam01": 0, "cparam02": 0, "regescrt": 0,
    "sdp01": 150, "inv2543": 105,
}  # fmt: skip

#: file -> (status_hint, exact message)
REJECTED = {
    "badinv01": (400, "empty or invalid parameter name in Via"),
    "clerr": (400, "Content-Length larger than the message"),
    "ncl": (400, "negative Content-Length"),
    "scalar02": (400, "CSeq number is not a number below 2**31"),
    "scalarlg": (None, "CSeq number is not a number below 2**31"),
    "quotbal": (400, "unterminated quoted string in To"),
    "ltgtruri": (400, "invalid Request-URI: invalid character in URI"),
    "lwsruri": (400, "malformed Request-Line"),
    "lwsstart": (400, "malformed Request-Line"),
    "escruri": (400, "invalid Request-URI: headers are not allowed"),
    "regbadct": (400, "URI with '?' or ',' must be enclosed in <> in Contact"),
    "badaspec": (400, "whitespace inside <> in To"),
    "baddn": (400, "display name in From is neither tokens nor a quoted string"),
    "badvers": (505, "SIP version not supported"),
    "mismatch01": (400, "CSeq method does not match the Request-Line"),
    "mismatch02": (400, "CSeq method does not match the Request-Line"),
    "bigcode": (None, "malformed Status-Code"),
    "insuf": (400, "missing required header field(s): From, To, Call-ID"),
    "multi01": (400, "multiple To header fields"),
    "mcl01": (400, "multiple Content-Length header fields"),
}

#: semantic checks a UAS makes after parsing (RFC 4475 section 3.3)
PRECHECK = {"unkscm": 416, "novelsc": 416, "bext01": 420, "invut": 415, "sdp01": 406}

RFC5118_ACCEPTED = [
    "ipv6-good", "ipv6-correct-abnf-2-colons", "port-unambiguous", "port-ambiguous",
    "via-received-param-with-delim", "via-received-param-no-delim", "mult-ip-in-sdp",
    "ipv6-in-sdp", "mult-ip-in-header", "ipv4-mapped-ipv6",
    # RFC 5118 section 4.10: tolerated on receipt
    "ipv6-bug-abnf-3-colons",
]  # fmt: skip


def read(path: Path) -> bytes:
    return path.read_bytes()


def test_every_vector_is_classified() -> None:
    names = {p.stem for p in RFC4475.glob("*.dat")}
    assert len(names) == 49
    assert names == set(ACCEPTED) | set(REJECTED)
    assert not set(ACCEPTED) & set(REJECTED)
    manifest = (RFC4475 / "MANIFEST.tsv").read_text().splitlines()[1:]
    assert {line.split("\t")[0][:-4] for line in manifest} == names


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_accepted(name: str) -> None:
    message = parse_message(read(RFC4475 / f"{name}.dat"))
    assert len(message.body) == ACCEPTED[name]
    # re-serialising gives a message that parses to the same thing
    again = parse_message(message.serialize())
    assert again.headers.without("Content-Length") == message.headers.without("Content-Length")
    assert again.headers.get("Content-Length") == str(len(message.body))
    assert again.body == message.body


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_rejected(name: str) -> None:
    status, text = REJECTED[name]
    with pytest.raises(SipParseError) as info:
        parse_message(read(RFC4475 / f"{name}.dat"))
    assert info.value.message == text
    assert info.value.status_hint == status


@pytest.mark.parametrize("name", sorted(PRECHECK))
def test_precheck_flags(name: str) -> None:
    request = parse_message(read(RFC4475 / f"{name}.dat"))
    assert isinstance(request, SipRequest)
    result = uas_precheck(request)
    assert result is not None and result[0] == PRECHECK[name]


def test_precheck_passes_valid() -> None:
    for name in ("wsinv", "esc01", "zeromf", "cparam01", "inv2543"):
        request = parse_message(read(RFC4475 / f"{name}.dat"))
        assert isinstance(request, SipRequest)
        assert uas_precheck(request) is None, name


def test_bext01_lists_unsupported() -> None:
    request = parse_message(read(RFC4475 / "bext01.dat"))
    assert isinstance(request, SipRequest)
    assert uas_precheck(request) == (
        420,
        "Bad Extension",
        (("Unsupported", "nothingSupportsThis, nothingSupportsThisEither"),),
    )


def test_wsinv_fields() -> None:
    m = parse_message(read(RFC4475 / "wsinv.dat"))
    assert isinstance(m, SipRequest)
    assert m.method == "INVITE" and m.call_id == "wsinv.ndaksdj@192.0.2.1"
    assert m.cseq == (9, "INVITE")
    assert m.to_tag == "1918181833n" and m.from_tag == "98asjd8"
    assert m.from_addr.display == 'J Rosenberg \\"'
    vias = m.vias
    assert [(v.transport, v.host, v.branch) for v in vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert m.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert m.headers.get("Subject") == ""
    contact = m.headers.get("Contact")
    assert contact is not None and "secondparam" in contact


def test_dblreq_ignores_trailing_invite() -> None:
    m = parse_message(read(RFC4475 / "dblreq.dat"))
    assert isinstance(m, SipRequest) and m.method == "REGISTER" and m.body == b""


def test_esc02_method_is_not_register() -> None:
    m = parse_message(read(RFC4475 / "esc02.dat"))
    assert isinstance(m, SipRequest) and m.method == "RE%47IST%45R"
    assert len(m.headers.get_all("Contact")) == 2  # C%6Fntact is another header


def test_noreason_and_unreason() -> None:
    m = parse_message(read(RFC4475 / "noreason.dat"))
    assert isinstance(m, SipResponse) and (m.status, m.reason) == (100, "")
    u = parse_message(read(RFC4475 / "unreason.dat"))
    assert (
        isinstance(u, SipResponse)
        and u.status == 200
        and u.reason == "= 2**3 * 5**2 но сто девяносто девять - простое"
    )


@pytest.mark.parametrize("name", RFC5118_ACCEPTED)
def test_rfc5118_accepted(name: str) -> None:
    m = parse_message(read(RFC5118 / f"{name}.dat"))
    assert isinstance(m, SipRequest)


def test_rfc5118_bad() -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(read(RFC5118 / "ipv6-bad.dat"))
    assert info.value.message == "invalid Request-URI: invalid port in SIP URI"


def test_rfc5118_port_handling() -> None:
    amb = parse_message(read(RFC5118 / "port-ambiguous.dat"))
    assert isinstance(amb, SipRequest)
    uri = amb.request_uri
    assert getattr(uri, "host", None) == "[2001:db8::10:5070]" and getattr(uri, "port", 1) is None
    una = parse_message(read(RFC5118 / "port-unambiguous.dat"))
    assert isinstance(una, SipRequest)
    assert getattr(una.request_uri, "port", None) == 5070
    rec = parse_message(read(RFC5118 / "via-received-param-with-delim.dat"))
    assert rec.via.received == "[2001:db8::9:255]"
    rec2 = parse_message(read(RFC5118 / "via-received-param-no-delim.dat"))
    assert rec2.via.received == "2001:db8::9:255"
    multi = parse_message(read(RFC5118 / "mult-ip-in-header.dat"))
    assert [(v.host, v.port) for v in multi.vias] == [
        ("[2001:db8::9:1]", 6050),
        ("192.0.2.1", None),
        ("[2001:db8::9:255]", None),
    ]


ALL_VECTORS = sorted(RFC4475.glob("*.dat")) + sorted(RFC5118.glob("*.dat"))


@pytest.mark.parametrize("path", ALL_VECTORS, ids=lambda p: p.stem)
def test_core_answers_400_or_stays_silent(path: Path) -> None:
    core = SipCore()
    source = Address("udp", "192.0.2.77", 5060)
    core.receive(path.read_bytes(), source, 0.0)
    events = []
    while (e := core.next_event()) is not None:
        events.append(e)
    sent = core.datagrams_to_send()
    if path.stem in REJECTED:
        assert len(events) == 1 and isinstance(events[0], MessageRejected)
        status = events[0].status
        if status is None:
            assert sent == []
        else:
            assert len(sent) == 1
            # the answer echoes the peer's (possibly malformed) headers: check the status line
            status_line = sent[0][0].split(b"\r\n", 1)[0].decode()
            assert status_line == f"SIP/2.0 {status} {REJECTED[path.stem][1]}"
    else:
        for event in events:
            assert isinstance(event, RequestReceived | MessageRejected)
        for data, _ in sent:
            parse_message(data)  # whatever we send parses


def test_insuf_still_gets_a_400() -> None:
    """insuf lacks From/To/Call-ID; RFC 4475 section 3.3.1 would ideally see a 400, which
    Via and CSeq suffice to build (and for the client to match)."""
    core = SipCore()
    core.receive(read(RFC4475 / "insuf.dat"), Address("udp", "192.0.2.1", 5060), 0.0)
    event = core.next_event()
    assert isinstance(event, MessageRejected) and event.status == 400
    [(raw, _)] = core.datagrams_to_send()
    assert raw.startswith(b"SIP/2.0 400 missing required header field(s): From, To, Call-ID\r\n")
    assert b"CSeq: 193942 INVITE\r\n" in raw and b"branch=z9hG4bKkdj.insuf" in raw


def test_consistent_with_manifest_and_ersip() -> None:
    """Every 'valid' file accepted; every 'invalid' one rejected unless the manifest allows
    tolerance; everything ersip parses as GOOD is accepted by us too."""
    import re

    rows = [line.split("\t") for line in (RFC4475 / "MANIFEST.tsv").read_text().splitlines()[1:]]
    for row in rows:
        name, category, handling = row[0][:-4], row[3], row[4]
        if category == "valid":
            assert name in ACCEPTED, name
        elif category == "invalid" and name in ACCEPTED:
            assert "tolerate" in handling or "may accept" in handling, name
        if handling.startswith("reject 400") and "robust" not in handling:
            assert REJECTED.get(name, (None,))[0] == 400, name
    erl = (RFC4475 / "third_party_expectations" / "ersip_rfc4475_test.erl").read_text()
    good = set(re.findall(r"^\s*\?GOOD(?:_DGRAM)?\((\w+)\)", erl, re.M))
    assert len(good) == 22 and good <= set(ACCEPTED)
