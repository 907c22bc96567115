"""Reading operator CDR files: layouts, bad rows with their line numbers, unknown layouts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siprec_recorder.assurance.cdr import (
    PRESETS,
    Layout,
    UnknownLayout,
    custom_layout,
    read_cdr_file,
)
from siprec_recorder.errors import LocalProtocolError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_generic_layout_iso_times_and_numbers(tmp_path: Path) -> None:
    f = write(
        tmp_path / "a.csv",
        "start,end,caller,callee\n"
        "2026-11-02T09:00:00Z,2026-11-02T09:01:30Z,+32 470 00 00 01,022000000\n"
        "2026-11-02T10:00:00+01:00,2026-11-02T10:00:10+01:00,tel:+32470000002,+3222000001\n",
    )
    cdr = read_cdr_file(f)
    assert cdr.layout.name == "generic" and not cdr.errors
    a, b = cdr.calls
    assert (a.line, a.caller, a.callee, a.duration_s) == (2, "+32470000001", "+3222000000", 90.0)
    assert a.start == datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    assert b.start == datetime(2026, 11, 2, 9, 0, tzinfo=UTC) and b.caller == "+32470000002"


def test_bad_rows_are_reported_by_line_and_good_rows_kept(tmp_path: Path) -> None:
    f = write(
        tmp_path / "bad.csv",
        "start,end,caller,callee\n"
        "2026-11-02T09:00:00Z,2026-11-02T09:01:00Z,+32470000001,+3222000000\n"
        "2026-11-02T09:00:00Z,,+32470000001,+3222000000\n"
        "yesterday,2026-11-02T09:01:00Z,+32470000001,+3222000000\n"
        "2026-11-02T09:00:00Z,2026-11-02T09:01:00Z,John Smith,+3222000000\n"
        "\n"
        "2026-11-02T09:02:00Z,2026-11-02T09:01:00Z,+32470000001,+3222000000\n"
        "2026-11-02T09:03:00Z,2026-11-02T09:04:00Z,+32470000001,+3222000009\n",
    )
    cdr = read_cdr_file(f)
    assert [c.line for c in cdr.calls] == [2, 8]
    assert [str(e) for e in cdr.errors] == [
        "line 3: end: missing",
        "line 4: start: not a time: 'yesterday'",
        "line 5: caller: not a number: 'John Smith'",
        "line 7: end: the call ends before it starts",
    ]


def test_unknown_layout_names_found_and_expected_columns(tmp_path: Path) -> None:
    f = write(tmp_path / "x.csv", "when,who,whom\n2026-11-02T09:00:00Z,1,2\n")
    with pytest.raises(UnknownLayout) as err:
        read_cdr_file(f)
    message = str(err.value)
    assert "\n" not in message
    assert "found columns when, who, whom" in message
    assert "expected start, end, caller, callee (generic)" in message
    assert "dateTimeOrigination" in message


def test_cucm_preset_detected_from_its_header(tmp_path: Path) -> None:
    f = write(
        tmp_path / "cucm.csv",
        '"cdrRecordType","dateTimeOrigination","callingPartyNumber",'
        '"finalCalledPartyNumber","dateTimeDisconnect"\n'
        "INTEGER,INTEGER,VARCHAR(50),VARCHAR(50),INTEGER\n"
        "1,1793610000,0470000001,+3222000000,1793610060\n",
    )
    cdr = read_cdr_file(f)
    assert cdr.layout.name == "cucm" and not cdr.errors
    (call,) = cdr.calls
    assert call.line == 3 and call.caller == "+32470000001" and call.duration_s == 60


def test_headerless_asterisk_in_local_time(tmp_path: Path) -> None:
    f = write(
        tmp_path / "Master.csv",
        '"","0470000001","022000000","default","""A"" <0470000001>","SIP/a-1","SIP/b-2",'
        '"Dial","SIP/b","2026-11-02 10:00:00","2026-11-02 10:00:05","2026-11-02 10:01:00",'
        '60,55,"ANSWERED","DOCUMENTATION","1793610000.1",""\n',
    )
    cdr = read_cdr_file(f, PRESETS["asterisk"], timezone="Europe/Brussels")
    (call,) = cdr.calls
    assert call.start == datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    assert (call.caller, call.callee, call.line) == ("+32470000001", "+3222000000", 1)


def test_custom_layout_with_duration_and_xlsx(tmp_path: Path) -> None:
    from openpyxl import Workbook

    layout = custom_layout(
        ["start=Start Time", "duration=Secs", "caller=A-Number", "callee=B-Number"],
        "%d/%m/%Y %H:%M:%S",
    )
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["A-Number", "B-Number", "Start Time", "Secs"])
    sheet.append([32470000001, "022000000", "02/11/2026 09:00:00", 75])
    sheet.append([32470000001, "022000000", "31/02/2026 09:00:00", "x"])
    path = tmp_path / "calls.xlsx"
    book.save(path)
    cdr = read_cdr_file(path, layout)
    (call,) = cdr.calls
    assert call.caller == "+32470000001" and call.duration_s == 75
    assert [e.line for e in cdr.errors] == [3]
    assert "Start Time: not a time" in cdr.errors[0].message
    assert "Secs: not a duration: 'x'" in cdr.errors[0].message


def test_custom_layout_needs_the_fields() -> None:
    with pytest.raises(LocalProtocolError, match="needs start, caller, callee"):
        custom_layout(["start=a", "caller=b"])
    with pytest.raises(LocalProtocolError, match="is not FIELD=COLUMN"):
        custom_layout(["begin=a"])


def test_empty_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(LocalProtocolError, match="no such file"):
        read_cdr_file(tmp_path / "none.csv")
    with pytest.raises(LocalProtocolError, match="empty"):
        read_cdr_file(write(tmp_path / "e.csv", ""))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.text(max_size=30), max_size=6), max_size=8))
def test_any_csv_content_is_rows_or_row_errors(rows: list[list[str]]) -> None:
    import csv
    import io
    import tempfile

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["start", "end", "caller", "callee"])
    for r in rows:
        w.writerow(r)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "f.csv"
        path.write_text(buf.getvalue(), encoding="utf-8")
        try:
            cdr = read_cdr_file(path, PRESETS["generic"])
        except LocalProtocolError:
            return  # a refusal with a message is fine; a crash is not
        assert len(cdr.calls) + len(cdr.errors) <= len(rows)
        for call in cdr.calls:
            assert call.end >= call.start and call.caller and call.callee


def test_layout_columns() -> None:
    assert Layout("x", start="s", caller="a", callee="b", duration="d").columns == [
        "s",
        "d",
        "a",
        "b",
    ]
