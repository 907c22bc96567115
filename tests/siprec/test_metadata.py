"""Tests for siprec_recorder.siprec.metadata against real SRC bodies and hostile XML.

Vectors live in tests/vectors/metadata/ (exact third-party bytes; see SOURCES.md there).
The vector files are whole multipart bodies or whole INVITEs; the XML part is taken out
with ``siprec_recorder.sip.multipart.split_body`` when that module exists, else with the
small splitter below (which is also checked against it).
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siprec_recorder.errors import RemoteProtocolError
from siprec_recorder.phone import normalize_number
from siprec_recorder.siprec.metadata import (
    MAX_METADATA_BYTES,
    MetadataError,
    Participant,
    RecordingMetadata,
    parse_metadata,
)

try:  # the product splitter is written in parallel; fall back to the one below
    _multipart: Any = importlib.import_module("siprec_recorder.sip.multipart")
except ImportError:
    _multipart = None
split_body: Callable[[str | None, bytes], list[Any]] | None = getattr(
    _multipart, "split_body", None
)

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "metadata"
CORPUS = VECTORS / "miarec_sipp"  # SIPp SRC scenarios, see SOURCES.md

# ---------------------------------------------------------------------------------------
# a small multipart splitter for the tests

_BOUNDARY_RE = re.compile(rb'boundary\s*=\s*"?([^";\r\n]+)"?', re.IGNORECASE)


def body_and_content_type(raw: bytes) -> tuple[bytes, str]:
    """Strip the annotation line and any SIP headers; return (body, content-type)."""
    if raw.startswith(b"# SOURCE"):
        raw = raw.split(b"\n", 1)[1]
    content_type: str | None = None
    if re.match(rb"^[A-Z]+ \S+ SIP/2\.0\r?\n", raw):
        head, raw = re.split(rb"\r?\n\r?\n", raw, maxsplit=1)
        for line in head.splitlines():
            name, _, value = line.partition(b":")
            if name.strip().lower() in (b"content-type", b"c"):
                content_type = value.strip().decode("latin-1")
    if content_type is None:
        m = re.search(rb"^--(\S+?)[ \t]*\r?$", raw, re.MULTILINE)
        content_type = (
            "multipart/mixed;boundary=" + m.group(1).decode("latin-1") if m else "application/sdp"
        )
    return raw, content_type


def simple_split(content_type: str, body: bytes) -> list[tuple[str, str, bytes]]:
    """(content-type, content-disposition, body) of each part of a multipart body."""
    m = _BOUNDARY_RE.search(content_type.encode("latin-1"))
    if m is None or "multipart" not in content_type.lower():
        return [(content_type, "", body)]
    boundary = m.group(1).strip()
    delimiter = re.compile(rb"(?:^|\r?\n)--" + re.escape(boundary) + rb"(--)?[ \t]*(?:\r?\n|$)")
    pieces = delimiter.split(body)
    parts = []
    for i in range(2, len(pieces), 2):  # [preamble, group, part, group, part, ...]
        piece = pieces[i]
        if pieces[i - 1] == b"--" or not piece.strip():
            continue
        sep = re.search(rb"\r?\n\r?\n", piece)
        head, part_body = (piece[: sep.start()], piece[sep.end() :]) if sep else (piece, b"")
        headers = {}
        for line in head.splitlines():
            name, _, value = line.partition(b":")
            headers[name.strip().lower().decode()] = value.strip().decode("latin-1")
        parts.append(
            (headers.get("content-type", ""), headers.get("content-disposition", ""), part_body)
        )
    return parts


def split_parts(content_type: str, body: bytes) -> list[tuple[str, str, bytes]]:
    if split_body is None:
        return simple_split(content_type, body)
    return [
        (p.content_type, p.headers.get("content-disposition") or "", p.body)
        for p in split_body(content_type, body)
    ]


def _is_metadata(ctype: str, disposition: str) -> bool:
    ctype = ctype.lower()
    return "rs-metadata" in ctype or "xml" in ctype or "recording-session" in disposition.lower()


def metadata_part(raw: bytes) -> bytes | None:
    body, ctype = body_and_content_type(raw)
    for part_type, disposition, part_body in split_parts(ctype, body):
        if _is_metadata(part_type, disposition):
            return part_body
    return None


def vector_metadata(name: str) -> RecordingMetadata:
    path = VECTORS / name
    if path.suffix == ".xml":
        return RecordingMetadata.parse(path.read_bytes())
    xml = metadata_part(path.read_bytes())
    assert xml is not None, name
    return RecordingMetadata.parse(xml)


# SIPp scenarios: the messages are in CDATA, lines indented (SIPp strips them), and
# [fieldN file="x.csv"] keywords are filled from injection files before sending.

_CDATA_RE = re.compile(rb"<!\[CDATA\[(.*?)\]\]>", re.DOTALL)
_FIELD_RE = re.compile(rb'\[field(\d+) file="([^"]+)"\]')


def _csv_first_row(path: Path) -> list[bytes]:
    lines = [ln for ln in path.read_bytes().splitlines() if ln.strip()]
    row = next(ln for ln in lines[1:] if not ln.startswith(b"#"))
    fields = row.split(b";")
    if b"PRINTF" in lines[0]:
        fields = [
            re.sub(rb"%0?(\d*)d", lambda m: b"1".zfill(int(m.group(1) or 1)), f) for f in fields
        ]
    return fields


def _fill_fields(message: bytes, scenario_dir: Path) -> bytes:
    def value(m: re.Match[bytes]) -> bytes:
        for directory in (scenario_dir, *scenario_dir.parents):
            candidate = directory / m.group(2).decode()
            if candidate.exists():
                return _csv_first_row(candidate)[int(m.group(1))]
        raise FileNotFoundError(m.group(2).decode())

    return _FIELD_RE.sub(value, message)


def sipp_metadata_bodies(scenario: Path) -> list[bytes]:
    bodies = []
    for m in _CDATA_RE.finditer(scenario.read_bytes()):
        lines = [line.strip() for line in m.group(1).strip().splitlines()]
        message = _fill_fields(b"\n".join(lines) + b"\n", scenario.parent)
        if not re.match(rb"^[A-Z]+ \S+ SIP/2\.0\n", message):
            continue
        head, _, body = message.partition(b"\n\n")
        ctype = ""
        for line in head.splitlines():
            name, _, value = line.partition(b":")
            if name.strip().lower() in (b"content-type", b"c"):
                ctype = value.strip().decode("latin-1")
        if "multipart" in ctype.lower():
            for part_type, disposition, part_body in split_parts(ctype, body):
                if _is_metadata(part_type, disposition):
                    bodies.append(part_body)
        elif "rs-metadata" in ctype.lower():
            bodies.append(body)
    return bodies


def scenario_files() -> list[Path]:
    return sorted(CORPUS.rglob("*.xml"))


# ---------------------------------------------------------------------------------------
# vendor bodies: exact participants and label -> sender

P = tuple[str | None, str | None, str | None]  # aor, name, number

VENDOR_EXPECTATIONS: dict[str, tuple[list[P], dict[str, str]]] = {
    "acme": (
        [
            ("sip:9000@192.168.50.102", "9000", "9000"),
            ("sip:1002@192.168.50.10", "1002", "1002"),
        ],
        {"16777227": "sip:9000@192.168.50.102", "16777228": "sip:1002@192.168.50.10"},
    ),
    "avaya_broadworks": (
        [
            ("sip:9878942259@212.188.68.145", None, "9878942259"),
            ("sip:ASBCE@asbce.com", None, None),
        ],
        {"10": "sip:9878942259@212.188.68.145", "20": "sip:ASBCE@asbce.com"},
    ),
    "broadworks_stripped": ([], {}),
    "cisco_cube": (
        [
            ("sip:7301@35.162.237.204", None, "7301"),
            ("sip:7300@35.162.237.204", "7300", "7300"),
        ],
        {"1": "sip:7301@35.162.237.204", "2": "sip:7300@35.162.237.204"},
    ),
    "connectel1": (
        [
            ("sip:0771121212@52.57.92.239", "test_user;lang=en-US;id=22", "+32771121212"),
            ("sip:0760516936@sip-cust1.connectel.io", None, "+32760516936"),
        ],
        {},  # no participantstreamassoc at all: nobody is said to send anything
    ),
    "connectel2": (
        [
            ("sip:0771121212@52.57.92.239", "test_user;lang=en-US", "+32771121212"),
            ("sip:0760516936@sip-cust1.connectel.io", None, "+32760516936"),
        ],
        {},
    ),
    "connectel3": (
        [
            ("sip:0771121212@52.57.92.239", "test_user", "+32771121212"),
            ("sip:0760516936@sip-cust1.connectel.io", None, "+32760516936"),
        ],
        {},
    ),
    "inactive": (
        [
            ("sip:0733165805@192.168.40.34", None, "+32733165805"),
            ("sip:+972546136443@192.168.10.140", None, "+972546136443"),
        ],
        {},  # empty participantstreamassoc elements
    ),
    "procomm": (
        [
            ("sip:016190200@87.252.209.116", "016190200", "+3216190200"),
            (
                "Extension-016190619@speechpath.ie",
                "Speechpath-Main-Line 016190619",
                "+3216190619",
            ),
        ],
        {"a_leg": "sip:016190200@87.252.209.116", "b_leg": "Extension-016190619@speechpath.ie"},
    ),
    "sonus": (
        [
            ("2249888500@172.16.198.55", "Extension 8500", "2249888500"),
            ("2249888012@172.16.195.72", None, "2249888012"),  # <name> </name> is no name
        ],
        # as the document says: 8500 sends on the stream labelled 2
        {"2": "2249888500@172.16.198.55", "1": "2249888012@172.16.195.72"},
    ),
    "audiocodes": (
        [
            ("+18888888888@fakeip.com", None, "+18888888888"),
            ("+17777777777@fakeip.com", None, "+17777777777"),
        ],
        {"1": "+18888888888@fakeip.com", "2": "+17777777777@fakeip.com"},
    ),
    "avaya_sbce": (
        [
            ("sip:13035381001@10.64.110.65", None, "+13035381001"),
            ("sip:ASBCE@asbce.com", None, None),
        ],
        {"10": "sip:13035381001@10.64.110.65"},  # label 20 has an empty stream_id
    ),
    "webex": (
        [
            ("sip:kculs9klre@44936045.int10.bcld.webex.com", None, None),
            ("sip:7711@10.155.7.148;user=phone", None, "7711"),
        ],
        {
            "1": "sip:kculs9klre@44936045.int10.bcld.webex.com",
            "2": "sip:7711@10.155.7.148;user=phone",
        },
    ),
    "metaswitch": (
        [("7602922411", "7602922411", "7602922411"), ("7602922410", "7602922410", "7602922410")],
        {},  # one mixed stream that both send on: no single sender
    ),
    "rfc7865": (
        [("sip:bob@biloxi.com", "Bob", None), ("sip:Paul@biloxi.com", "Paul", None)],
        {
            "96": "sip:bob@biloxi.com",
            "97": "sip:bob@biloxi.com",
            "98": "sip:Paul@biloxi.com",
            "99": "sip:Paul@biloxi.com",
        },
    ),
}

VENDOR_FILES = {
    "drachtio_acme-siprec-offer.txt": "acme",
    "annotated_oracle_acme_packet_sbc.txt": "acme",
    "drachtio_broadworks-offer-2.txt": "avaya_broadworks",
    "annotated_avaya_sbce_via_broadworks.txt": "avaya_broadworks",
    "drachtio_broadworks-offer.txt": "broadworks_stripped",
    "annotated_broadworks_mixed_single_stream.txt": "broadworks_stripped",
    "drachtio_cisco-siprec-offer.txt": "cisco_cube",
    "annotated_cisco_cube.txt": "cisco_cube",
    "drachtio_connectel-offer.txt": "connectel1",
    "annotated_opensips_siprec_module.txt": "connectel1",
    "drachtio_connectel-offer2.txt": "connectel2",
    "drachtio_connectel-offer3.txt": "connectel3",
    "drachtio_inactive-sdp-offer.txt": "inactive",
    "drachtio_procomm-siprec-offer.txt": "procomm",
    "annotated_sems_procomm.txt": "procomm",
    "drachtio_sonus-siprec-offer.txt": "sonus",
    "annotated_ribbon_sonus_sbc.txt": "sonus",
    "annotated_audiocodes_mediant_sbc.txt": "audiocodes",
    "annotated_avaya_sbce.txt": "avaya_sbce",
    "annotated_cisco_webex_broadworks.txt": "webex",
    "annotated_metaswitch_cfs.txt": "metaswitch",
    "oldnick85_rfc7865_derived_complete.xml": "rfc7865",
}

NOT_METADATA = [
    "drachtio_non-siprec-payload.txt",
    "drachtio_sample-sdp2.txt",
    "drachtio_sample-sdp3.txt",
    "drachtio_sample-sdps.txt",
]


def test_every_vector_file_is_covered() -> None:
    on_disk = {p.name for p in VECTORS.iterdir() if p.suffix in (".txt", ".xml")}
    assert on_disk == set(VENDOR_FILES) | set(NOT_METADATA)


@pytest.mark.parametrize("name", sorted(VENDOR_FILES))
def test_vendor_participants_and_label_senders(name: str) -> None:
    participants, senders = VENDOR_EXPECTATIONS[VENDOR_FILES[name]]
    meta = vector_metadata(name)
    assert [(p.aor, p.name, p.number) for p in meta.participants] == participants
    assert {label: p.aor for label, p in meta.label_senders().items()} == senders
    assert meta.datamode == "complete"
    json.dumps(meta.to_json())


@pytest.mark.parametrize("name", NOT_METADATA)
def test_non_siprec_bodies_have_no_metadata(name: str) -> None:
    assert metadata_part((VECTORS / name).read_bytes()) is None


@pytest.mark.parametrize("name", sorted(n for n in VENDOR_FILES if n.endswith(".txt")))
def test_test_splitter_agrees_with_product_splitter(name: str) -> None:
    if split_body is None:
        pytest.skip("siprec_recorder.sip.multipart not available yet")
    body, ctype = body_and_content_type((VECTORS / name).read_bytes())
    mine = [b for t, d, b in simple_split(ctype, body) if _is_metadata(t, d)]
    theirs = [b for t, d, b in split_parts(ctype, body) if _is_metadata(t, d)]
    assert [b.strip() for b in mine] == [b.strip() for b in theirs]


def test_acme_draft_schema_details() -> None:
    meta = vector_metadata("drachtio_acme-siprec-offer.txt")
    caller = meta.participants[0]
    assert caller.participant_id == "fSD3PFErSjNTHLDiXCELjw=="
    assert caller.send == ("Q4O8SGLQSilXHUGQX2zd8Q==",)
    assert caller.associate_time == datetime(2019, 3, 9, 16, 50, 20, tzinfo=UTC)
    assert len(caller.extensions) == 1
    assert "callingParty" in caller.extensions[0] and ">true<" in caller.extensions[0]
    assert meta.sessions[0].session_id == "AavRXwIIQj1Q39eJulTipQ=="
    assert [s.mode for s in meta.streams] == ["separate", "separate"]
    assert meta.streams[0].session_id == "AavRXwIIQj1Q39eJulTipQ=="


def test_sonus_prefixed_document_keeps_group_extension() -> None:
    meta = vector_metadata("drachtio_sonus-siprec-offer.txt")
    assert [g.group_id for g in meta.groups] == ["MTQ3YzA3YzAtNjdkNy0xMA=="]
    assert meta.sessions[0].group_ref == "MTQ3YzA3YzAtNjdkNy0xMA=="
    assert meta.sessions[0].start_time == datetime(1970, 5, 13, 3, 29, 5, tzinfo=UTC)
    (callData,) = meta.groups[0].extensions
    assert "callData" in callData and "2da553f7-a48b-1235-d6a2-5254003a4988" in callData
    # an extension is itself well-formed XML
    RecordingMetadata.parse(f"<recording>{callData}</recording>".encode())


def test_cisco_session_and_times() -> None:
    meta = vector_metadata("drachtio_cisco-siprec-offer.txt")
    (session,) = meta.sessions
    assert session.sip_session_ids == (
        "e9fffff2020a598b86962867715db0cf;remote=cd0f7093d62c5f0697098fd69a4aa57b",
    )
    assert session.start_time == datetime(2017, 6, 23, 12, 16, 6, 40000, tzinfo=UTC)
    assert meta.participants[0].recv == ("kQOH5VdEEeeJ/dD/VsPGWA==",)


def test_metaswitch_mixed_stream_and_extension() -> None:
    meta = vector_metadata("annotated_metaswitch_cfs.txt")
    senders = meta.senders_by_label()
    assert [p.aor for p in senders["1"]] == ["7602922411", "7602922410"]
    assert any("recordedParty" in e and "+17602922410" in e for e in meta.extensions)


def test_webex_draft_send_id_children_and_extensions() -> None:
    meta = vector_metadata("annotated_cisco_webex_broadworks.txt")
    assert meta.participants[0].send == ("urn:uuid:b0bf3143-f601-45b7-a2ef-b7db0f96e534",)
    assert meta.sessions[0].group_ref == "urn:uuid:31da9b20-3e4f-4d3e-a11a-bcaeef61e38f"
    assert meta.sessions[0].start_time == datetime(2024, 5, 13, 3, 55, 43, tzinfo=UTC)
    assert any("broadWorksRecordingMetadata" in e for e in meta.extensions)


def test_to_json_sidecar() -> None:
    doc = vector_metadata("drachtio_procomm-siprec-offer.txt").to_json()
    assert json.loads(json.dumps(doc)) == doc
    assert doc["label_senders"] == {
        "a_leg": "Ye5S5pU+SAG2JY4oG7M4Cw==",
        "b_leg": "QDhKextjTa+F1TzXuvHZHw==",
    }
    first = doc["participants"][0]
    assert first["number"] == "+3216190200"
    assert first["send_labels"] == ["a_leg"] and first["recv_labels"] == ["b_leg"]
    assert doc["sessions"][0]["start_time"] == "2017-12-11T14:44:23+00:00"


def test_configured_normalizer() -> None:
    us = partial(
        normalize_number, country_code="1", national_prefix="1", international_prefix="011"
    )
    meta = RecordingMetadata.parse(
        (VECTORS / "oldnick85_rfc7865_derived_complete.xml").read_bytes(), normalize=us
    )
    assert [p.number for p in meta.participants] == [None, None]
    xml = b'<recording><participant id="a"><nameID aor="sip:17602922410@h"/></participant>'
    xml += b"</recording>"
    assert RecordingMetadata.parse(xml, normalize=us).participants[0].number == "+17602922410"


# ---------------------------------------------------------------------------------------
# SIPp SRC scenarios (miarec): every metadata body must parse


def test_sipp_scenarios_all_parse() -> None:
    files = scenario_files()
    count = 0
    with_metadata = 0
    for path in files:
        bodies = sipp_metadata_bodies(path)
        with_metadata += bool(bodies)
        for body in bodies:
            meta = RecordingMetadata.parse(body)
            assert meta.participants, path
            count += 1
    assert with_metadata == 83
    assert count == 144


def _scenario_docs(relative: str) -> list[RecordingMetadata]:
    path = CORPUS / relative
    return [RecordingMetadata.parse(b) for b in sipp_metadata_bodies(path)]


def _fold(docs: list[RecordingMetadata]) -> RecordingMetadata:
    acc = docs[0]
    for doc in docs[1:]:
        acc = acc.merge(doc)
    return acc


def test_merge_avaya_update_replaces_placeholder() -> None:
    docs = _scenario_docs("avaya_sbce_inbound/avaya_sbce_inbound.xml")
    assert len(docs) == 2
    assert [p.aor for p in docs[0].participants][1] == "sip:ASBCE@asbce.com"
    merged = _fold(docs)
    assert [p.aor for p in merged.participants] == [
        "sip:13035381001@10.64.110.65",
        "sip:7204541001@10.64.110.32",
    ]
    assert {k: v.number for k, v in merged.label_senders().items()} == {
        "10": "+13035381001",
        "20": "7204541001",
    }


def test_merge_webex_blind_transfer_keeps_earlier_party() -> None:
    merged = _fold(_scenario_docs("cisco_webex_calling/outbound_blind_xfer_01.xml"))
    # the Webex user gets a new participant id in the second document; 7722 (transferred
    # away) is kept because a recording names everyone heard in it
    assert [p.number for p in merged.participants] == ["7722", None, "7733"]
    assert merged.label_senders()["2"].number == "7733"


def test_merge_partial_adds_third_party() -> None:
    docs = _scenario_docs("broadworks_3way_call_3.xml")
    assert [d.datamode for d in docs] == ["complete", "complete", "partial"]
    merged = _fold(docs)
    assert [p.number for p in merged.participants] == ["+86085911415207", "3000", "7824"]
    assert merged.datamode == "complete"


NS1 = "urn:ietf:params:xml:ns:recording:1"


def _doc(body: str, datamode: str = "complete", ns: str = NS1) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<recording xmlns="{ns}">'
        f"<datamode>{datamode}</datamode>{body}</recording>"
    ).encode()


BASE = _doc(
    '<session session_id="s1"/>'
    '<participant participant_id="a"><nameID aor="tel:+32470000001"><name>A</name></nameID>'
    "</participant>"
    '<participant participant_id="b"><nameID aor="sip:0470000002@h"/></participant>'
    '<stream stream_id="st1" session_id="s1"><label>1</label></stream>'
    '<stream stream_id="st2" session_id="s1"><label>2</label></stream>'
    '<participantsessionassoc participant_id="a" session_id="s1">'
    "<associate-time>2024-01-01T10:00:00Z</associate-time></participantsessionassoc>"
    '<participantstreamassoc participant_id="a"><send>st1</send><recv>st2</recv>'
    "</participantstreamassoc>"
    '<participantstreamassoc participant_id="b"><send>st2</send><recv>st1</recv>'
    "</participantstreamassoc>"
)


def test_merge_partial_transfer_with_disassociate_time() -> None:
    base = RecordingMetadata.parse(BASE)
    update = RecordingMetadata.parse(
        _doc(
            '<participant participant_id="c"><nameID aor="sip:+32470000003@h"/></participant>'
            '<participantsessionassoc participant_id="b" session_id="s1">'
            "<disassociate-time>2024-01-01T10:05:00Z</disassociate-time>"
            "</participantsessionassoc>"
            '<participantsessionassoc participant_id="c" session_id="s1">'
            "<associate-time>2024-01-01T10:05:01Z</associate-time></participantsessionassoc>"
            '<participantstreamassoc participant_id="c"><send>st2</send><recv>st1</recv>'
            "</participantstreamassoc>",
            datamode="partial",
        )
    )
    assert update.datamode == "partial"
    merged = base.merge(update)
    by_id = {p.participant_id: p for p in merged.participants}
    assert list(by_id) == ["a", "b", "c"]
    assert by_id["a"].name == "A" and by_id["a"].number == "+32470000001"
    assert by_id["b"].number == "+32470000002"
    assert by_id["b"].disassociate_time == datetime(2024, 1, 1, 10, 5, tzinfo=UTC)
    assert by_id["c"].associate_time == datetime(2024, 1, 1, 10, 5, 1, tzinfo=UTC)
    # b left, so label 2 now belongs to c alone
    assert {k: v.participant_id for k, v in merged.label_senders().items()} == {"1": "a", "2": "c"}
    assert [p.participant_id for p in merged.senders_by_label()["2"]] == ["b", "c"]
    assert base.participant("c") is None  # frozen: merge returns a new object


def test_merge_partial_placeholder_replaced_on_same_label() -> None:
    base = RecordingMetadata.parse(
        BASE.replace(b'aor="sip:0470000002@h"', b'aor="sip:SBC@sbc.example"')
    )
    assert base.participant("b") is not None and base.participant("b").is_placeholder  # type: ignore[union-attr]
    update = RecordingMetadata.parse(
        _doc(
            '<participant participant_id="real"><nameID aor="tel:0470000009"/>'
            "<send>st2</send></participant>",
            datamode="partial",
        )
    )
    merged = base.merge(update)
    assert [p.participant_id for p in merged.participants] == ["a", "real"]
    assert merged.label_senders()["2"].number == "+32470000009"


def test_merge_partial_keeps_nameless_party_on_other_label() -> None:
    base = RecordingMetadata.parse(BASE.replace(b'aor="sip:0470000002@h"', b'aor="sip:bob@h"'))
    update = RecordingMetadata.parse(
        _doc(
            '<stream stream_id="st3"><label>3</label></stream>'
            '<participant participant_id="c"><nameID aor="tel:+32470000003"/>'
            "<send>st3</send></participant>",
            datamode="partial",
        )
    )
    merged = base.merge(update)
    assert [p.participant_id for p in merged.participants] == ["a", "b", "c"]
    assert sorted(merged.label_senders()) == ["1", "2", "3"]


def test_merge_stream_relabelled_under_new_id() -> None:
    base = RecordingMetadata.parse(_doc('<stream stream_id=""><label>20</label></stream>'))
    update = RecordingMetadata.parse(
        _doc('<stream stream_id="x"><label>20</label></stream>', datamode="partial")
    )
    assert [(s.stream_id, s.label) for s in base.merge(update).streams] == [("x", "20")]


# ---------------------------------------------------------------------------------------
# liberal input forms

PARTICIPANT_FORMS = [
    # RFC 7865
    '<participant participant_id="p1"><nameID aor="sip:+32470000001@h"><name>Ann</name>'
    "</nameID></participant>"
    '<stream stream_id="s1"><label>L</label></stream>'
    '<participantstreamassoc participant_id="p1"><send>s1</send></participantstreamassoc>',
    # draft: id attributes, send inside participant
    '<participant id="p1" session="x"><nameID aor="sip:+32470000001@h"><name>Ann</name>'
    '</nameID><send>s1</send></participant><stream id="s1" session="x"><label>L</label></stream>',
    # older drafts: <aor> and <name> children, <send><id>
    '<participant id="p1"><aor>sip:+32470000001@h</aor><name>Ann</name>'
    "<send><id>s1</id></send></participant><stream id='s1'><label>L</label></stream>",
    # <nameID> with an <aor> child
    '<participant participant_id="p1"><nameID><aor>sip:+32470000001@h</aor><name>Ann</name>'
    '</nameID></participant><stream stream_id="s1"><label>L</label></stream>'
    '<participantstreamassoc participant="p1"><send>s1</send></participantstreamassoc>',
]

NAMESPACES = [
    'xmlns="urn:ietf:params:xml:ns:recording:1"',
    'xmlns="urn:ietf:params:xml:ns:recording"',
    'xmlns="urn:ietf:params:xml:ns:siprec"',
    "",
]


@pytest.mark.parametrize("form", PARTICIPANT_FORMS)
@pytest.mark.parametrize("ns", NAMESPACES)
def test_liberal_forms(form: str, ns: str) -> None:
    meta = RecordingMetadata.parse(
        f"<recording {ns}><dataMode>partial</dataMode>{form}</recording>".encode()
    )
    assert meta.datamode == "partial"
    (p,) = meta.participants
    assert (p.participant_id, p.aor, p.name, p.number) == (
        "p1",
        "sip:+32470000001@h",
        "Ann",
        "+32470000001",
    )
    assert meta.label_senders() == {"L": p}


@pytest.mark.parametrize("form", PARTICIPANT_FORMS[:2])
def test_liberal_forms_with_prefix(form: str) -> None:
    prefixed = re.sub(r"<(/?)(\w)", r"<\1tns:\2", form)
    xml = f"<tns:recording xmlns:tns='urn:ietf:params:xml:ns:recording'>{prefixed}</tns:recording>"
    (p,) = RecordingMetadata.parse(xml.encode()).participants
    assert p.number == "+32470000001"
    assert RecordingMetadata.parse(xml.encode()).label_senders()["L"] == p


def test_foreign_namespace_elements_are_extensions_not_participants() -> None:
    meta = RecordingMetadata.parse(
        b'<recording xmlns="urn:ietf:params:xml:ns:recording:1" xmlns:v="urn:vendor">'
        b'<v:participant participant_id="x"/><participant participant_id="p"/>'
        b"<!-- a comment --><?pi x?></recording>"
    )
    assert [p.participant_id for p in meta.participants] == ["p"]
    assert len(meta.extensions) == 1 and "urn:vendor" in meta.extensions[0]


def test_times_and_junk_values() -> None:
    meta = RecordingMetadata.parse(
        _doc(
            '<session session_id="s"><start-time>2019-01-13T14:48:35-05:00</start-time>'
            "<stop-time>yesterday</stop-time></session>",
            datamode="bogus",
        )
    )
    assert meta.datamode == "complete"
    assert meta.sessions[0].start_time == datetime(2019, 1, 13, 19, 48, 35, tzinfo=UTC)
    assert meta.sessions[0].stop_time is None


def test_str_input_bom_and_leading_whitespace() -> None:
    assert RecordingMetadata.parse("  \r\n<recording/>").participants == ()
    assert parse_metadata(b"\xef\xbb\xbf<?xml version='1.0'?><recording/>").streams == ()


def test_participant_defaults() -> None:
    assert Participant("x").is_placeholder


# ---------------------------------------------------------------------------------------
# hostile input

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<recording><datamode>&lol3;</datamode></recording>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE recording [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<recording><participant id="&xxe;"/></recording>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE recording SYSTEM "http://127.0.0.1:9/evil.dtd">
<recording/>"""

PLAIN_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE recording [<!ELEMENT recording ANY>]>
<recording/>"""

PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY % p SYSTEM "http://127.0.0.1:9/x"> %p;]>
<recording/>"""


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (BILLION_LAUGHS, "metadata XML refused: DTDForbidden"),
        (XXE, "metadata XML refused: DTDForbidden"),
        (EXTERNAL_DTD, "metadata XML refused: DTDForbidden"),
        (PLAIN_DTD, "metadata XML refused: DTDForbidden"),
        (PARAMETER_ENTITY, "metadata XML refused: DTDForbidden"),
        (b"", "metadata body is empty"),
        (b"   ", "metadata body is empty"),
        (b"<recording>", "metadata is not well-formed XML: no element found: line 1, column 11"),
        (b"not xml", "metadata is not well-formed XML: syntax error: line 1, column 0"),
        (b"<html><body/></html>", "metadata root element is <html>, not <recording>"),
        (
            b"<recording>&undefined;</recording>",
            "metadata is not well-formed XML: undefined entity: line 1, column 11",
        ),
        (
            b"<r" + b"<a>" * 40 + b"</a>" * 40 + b"</r>",
            "metadata is not well-formed XML: not well-formed (invalid token): line 1, column 2",
        ),
        (
            b"<recording>" + b"<a>" * 40 + b"</a>" * 40 + b"</recording>",
            "metadata nested deeper than 32 elements",
        ),
        (
            b"<recording>" + b"<a/>" * 10_001 + b"</recording>",
            "metadata has more than 10000 elements",
        ),
        (
            b"<recording>" + b" " * MAX_METADATA_BYTES + b"</recording>",
            "metadata larger than 262144 bytes",
        ),
    ],
)
def test_hostile_xml_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(MetadataError) as info:
        RecordingMetadata.parse(data)
    assert info.value.message == message
    assert info.value.status_hint == 400
    assert isinstance(info.value, RemoteProtocolError)


def test_entity_in_plain_body_is_standard_escape_only() -> None:
    meta = RecordingMetadata.parse(
        b'<recording><participant id="a"><nameID aor="sip:a&amp;b@h"><name>&lt;A&gt;</name>'
        b"</nameID></participant></recording>"
    )
    assert meta.participants[0].aor == "sip:a&b@h"
    assert meta.participants[0].name == "<A>"


_XML_ATOMS = st.sampled_from(
    [
        "<recording>",
        "</recording>",
        "<participant",
        " participant_id='p'",
        ' id="q"',
        ">",
        "</participant>",
        "<nameID aor='sip:+3247@h'>",
        "</nameID>",
        "<send>",
        "</send>",
        "<stream stream_id='s'>",
        "<label>1</label>",
        "</stream>",
        "<datamode>partial</datamode>",
        "<!DOCTYPE x>",
        "&amp;",
        "&x;",
        "<![CDATA[x]]>",
        "<?pi?>",
        "<!-- c -->",
        "<tns:recording xmlns:tns='urn:ietf:params:xml:ns:recording'>",
        "</tns:recording>",
        "<participantstreamassoc participant_id='p'>",
        "</participantstreamassoc>",
        "<associate-time>2020-01-01T00:00:00Z</associate-time>",
        "\x00",
        "\xff",
        " ",
    ]
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_XML_ATOMS, max_size=40))
def test_fuzz_xml_fragments_only_raise_metadata_error(atoms: list[str]) -> None:
    data = "".join(atoms).encode("utf-8", "surrogatepass")
    try:
        meta = RecordingMetadata.parse(data)
    except MetadataError:
        return
    meta.label_senders()
    json.dumps(meta.to_json())
    meta.merge(meta)


@settings(max_examples=200)
@given(st.binary(max_size=2000))
def test_fuzz_bytes_only_raise_metadata_error(data: bytes) -> None:
    try:
        RecordingMetadata.parse(data)
    except MetadataError:
        pass


@settings(max_examples=300)
@given(st.data())
def test_fuzz_mutated_vectors_only_raise_metadata_error(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(VENDOR_FILES)))
    path = VECTORS / name
    xml = path.read_bytes() if path.suffix == ".xml" else metadata_part(path.read_bytes())
    assert xml is not None
    buf = bytearray(xml)
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(buf) - 1))
        buf[pos] = data.draw(st.integers(0, 255))
    try:
        meta = RecordingMetadata.parse(bytes(buf))
    except MetadataError:
        return
    json.dumps(meta.to_json())
