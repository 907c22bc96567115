"""Operator call detail records (CDRs): CSV or XLSX in, :class:`CdrCall` rows out.

Theory of operation
-------------------
A CDR file is read through a :class:`Layout`: which column holds the start, the end (or the
duration), the caller and the callee, and how times are written. The documented generic
layout has a header row with the columns ``start``, ``end`` (ISO 8601), ``caller``,
``callee``; presets cover the layouts switches write as they come (:data:`PRESETS`), and the
configuration can name the columns of any other file (``[reconcile] columns``).

Without an explicit layout, the header row is matched against the configured layout, then
each preset with a header; a file that fits none is refused with one line that names the
columns found and the ones expected (:class:`UnknownLayout`). Headerless presets (Asterisk,
FreeSWITCH) are only used when named.

Every row is checked on its own: a missing value, a time that does not parse, an end before
the start or a number that is not a number is a :class:`RowError` with the file's line
number, and the other rows are still read. Nothing from the file is trusted beyond its text:
cells are bounded in length and numbers are normalised to E.164 by :mod:`siprec_recorder.phone`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from siprec_recorder.errors import LocalProtocolError
from siprec_recorder.isotime import utc_iso
from siprec_recorder.phone import normalize_number

__all__ = [
    "FIELDS",
    "PRESETS",
    "CdrCall",
    "CdrFile",
    "Layout",
    "RowError",
    "UnknownLayout",
    "custom_layout",
    "read_cdr_file",
]

#: What a layout maps: start, then end or duration, caller, callee.
FIELDS = ("start", "end", "duration", "caller", "callee")
_MAX_CELL = 256
_MAX_ROWS = 2_000_000


class UnknownLayout(LocalProtocolError):
    """The file's columns fit no layout we know (the message says which were found)."""


@dataclass(frozen=True, slots=True)
class Layout:
    """Where each field is: a column name (header files) or a 0-based position (headerless).

    ``time_format``: ``iso`` (ISO 8601), ``epoch`` (seconds since 1970, UTC) or a
    ``strptime`` pattern. Times without a zone are read in ``timezone``.
    """

    name: str
    start: str
    caller: str
    callee: str
    end: str = ""
    duration: str = ""
    time_format: str = "iso"
    header: bool = True
    #: Headerless files: the position of each named column.
    positions: tuple[str, ...] = ()
    #: Values that mark a second header row (CUCM writes the column types under the names).
    skip_rows_starting: tuple[str, ...] = ()

    @property
    def columns(self) -> list[str]:
        return [c for c in (self.start, self.end, self.duration, self.caller, self.callee) if c]


PRESETS: dict[str, Layout] = {
    # The documented interface scripts rely on: keep these names.
    "generic": Layout("generic", start="start", end="end", caller="caller", callee="callee"),
    # Cisco Unified CM CDR (flat file): epoch seconds, a second row of column types.
    "cucm": Layout(
        "cucm",
        start="dateTimeOrigination",
        end="dateTimeDisconnect",
        caller="callingPartyNumber",
        callee="finalCalledPartyNumber",
        time_format="epoch",
        skip_rows_starting=("INTEGER",),
    ),
    # Asterisk cdr_csv Master.csv: no header, local "YYYY-MM-DD HH:MM:SS".
    "asterisk": Layout(
        "asterisk",
        start="start",
        end="end",
        caller="src",
        callee="dst",
        time_format="%Y-%m-%d %H:%M:%S",
        header=False,
        positions=(
            "accountcode",
            "src",
            "dst",
            "dcontext",
            "clid",
            "channel",
            "dstchannel",
            "lastapp",
            "lastdata",
            "start",
            "answer",
            "end",
            "duration",
            "billsec",
            "disposition",
            "amaflags",
            "uniqueid",
            "userfield",
        ),
    ),
    # FreeSWITCH mod_cdr_csv default template: no header.
    "freeswitch": Layout(
        "freeswitch",
        start="start_stamp",
        end="end_stamp",
        caller="caller_id_number",
        callee="destination_number",
        time_format="%Y-%m-%d %H:%M:%S",
        header=False,
        positions=(
            "caller_id_name",
            "caller_id_number",
            "destination_number",
            "context",
            "start_stamp",
            "answer_stamp",
            "end_stamp",
            "duration",
            "billsec",
            "hangup_cause",
            "uuid",
            "bleg_uuid",
            "accountcode",
        ),
    ),
}


def custom_layout(columns: Sequence[str], time_format: str = "") -> Layout:
    """The layout of ``[reconcile] columns = ["start=Start Time", "caller=A-Number", ...]``."""
    mapping: dict[str, str] = {}
    for item in columns:
        key, sep, column = item.partition("=")
        key = key.strip().lower()
        if not sep or key not in FIELDS or not column.strip():
            raise LocalProtocolError(
                f"[reconcile] columns: {item!r} is not FIELD=COLUMN (fields: {', '.join(FIELDS)})"
            )
        mapping[key] = column.strip()
    missing = [k for k in ("start", "caller", "callee") if k not in mapping]
    if missing or not ("end" in mapping or "duration" in mapping):
        raise LocalProtocolError(
            "[reconcile] columns: needs start, caller, callee and end or duration"
        )
    return Layout(
        "custom",
        start=mapping["start"],
        caller=mapping["caller"],
        callee=mapping["callee"],
        end=mapping.get("end", ""),
        duration=mapping.get("duration", "") if "end" not in mapping else "",
        time_format=time_format or "iso",
    )


@dataclass(frozen=True, slots=True)
class CdrCall:
    """One call of the operator's records (numbers in E.164, times aware)."""

    line: int
    start: datetime
    end: datetime
    caller: str
    callee: str
    raw: dict[str, str]

    @property
    def duration_s(self) -> float:
        return (self.end - self.start).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "start": utc_iso(self.start),
            "end": utc_iso(self.end),
            "caller": self.caller,
            "callee": self.callee,
            "duration_s": round(self.duration_s, 3),
        }


@dataclass(frozen=True, slots=True)
class RowError:
    """A row that could not be read: its line in the file and why."""

    line: int
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "error": self.message}

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(slots=True)
class CdrFile:
    """A file as read: the layout used, the good calls and the bad rows."""

    path: str
    layout: Layout
    calls: list[CdrCall] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


def _rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of a CSV or XLSX file."""
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        from openpyxl import load_workbook

        try:
            book = load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:  # noqa: BLE001 - openpyxl raises many kinds for a bad file
            raise LocalProtocolError(f"{path}: not a readable XLSX file ({exc})") from None
        try:
            sheet = book.worksheets[0]
            for n, values in enumerate(sheet.iter_rows(values_only=True), start=1):
                yield n, [_cell(v) for v in values]
        finally:
            book.close()
        return
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        text = path.read_bytes().decode("latin-1")
    sample = text[:4096]
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    try:
        for cells in reader:
            yield reader.line_num, [c[:_MAX_CELL] for c in cells]
    except csv.Error as exc:
        raise LocalProtocolError(f"{path}: line {reader.line_num}: {exc}") from None


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)[:_MAX_CELL]


def _fits(layout: Layout, header: Sequence[str]) -> bool:
    names = {h.strip() for h in header}
    return layout.header and all(c in names for c in layout.columns)


def _choose(header: list[str], layout: Layout | None, path: Path) -> Layout:
    if layout is not None:
        if not layout.header or _fits(layout, header):
            return layout
        raise UnknownLayout(_refusal(path, header, [layout]))
    for candidate in PRESETS.values():
        if _fits(candidate, header):
            return candidate
    raise UnknownLayout(_refusal(path, header, [p for p in PRESETS.values() if p.header]))


def _refusal(path: Path, header: Sequence[str], expected: Sequence[Layout]) -> str:
    found = ", ".join(h.strip() for h in header if h.strip()) or "none"
    wanted = "; or ".join(f"{', '.join(x.columns)} ({x.name})" for x in expected)
    return (
        f"{path.name}: unknown CDR layout: found columns {found}; expected {wanted} "
        "(name the columns in [reconcile] columns, or pick a preset with --format)"
    )


def _parse_time(value: str, layout: Layout, zone: ZoneInfo) -> datetime:
    value = value.strip()
    if layout.time_format == "epoch":
        seconds = float(value)
        if not 0 < seconds < 32503680000:  # before the year 3000
            raise ValueError("out of range")
        return datetime.fromtimestamp(seconds, UTC)
    if layout.time_format == "iso":
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    else:
        dt = datetime.strptime(value, layout.time_format)
    return dt.replace(tzinfo=zone) if dt.tzinfo is None else dt


def _number(value: str, country_code: str) -> str | None:
    value = value.strip()
    # a number is digits with the usual separators; "tel:"/"sip:" forms are welcome too
    body = value.split(":", 1)[1] if value.lower().startswith(("tel:", "sip:")) else value
    if not body or not any(ch.isdigit() for ch in body.split("@", 1)[0]):
        return None
    core = body.split("@", 1)[0].split(";", 1)[0]
    if any(ch.isalpha() for ch in core):
        return None
    try:
        return normalize_number(value, country_code=country_code)
    except Exception:  # noqa: BLE001 - anything unreadable is "not a number"
        return None


def _read_row(
    line: int,
    record: dict[str, str],
    layout: Layout,
    zone: ZoneInfo,
    country_code: str,
) -> CdrCall | RowError:
    problems: list[str] = []
    values: dict[str, str] = {}
    for key in ("start", "end", "duration", "caller", "callee"):
        column = getattr(layout, key)
        if not column:
            continue
        value = (record.get(column) or "").strip()
        if not value:
            problems.append(f"{column}: missing")
        values[key] = value
    if problems:
        return RowError(line, "; ".join(problems))
    start = end = None
    try:
        start = _parse_time(values["start"], layout, zone)
    except (ValueError, OverflowError, OSError):
        problems.append(f"{layout.start}: not a time: {values['start']!r}")
    if layout.end:
        try:
            end = _parse_time(values["end"], layout, zone)
        except (ValueError, OverflowError, OSError):
            problems.append(f"{layout.end}: not a time: {values['end']!r}")
    else:
        try:
            seconds = float(values["duration"])
            if not 0 <= seconds < 7 * 86400:
                raise ValueError
            end = None if start is None else start + timedelta(seconds=seconds)
        except ValueError:
            problems.append(f"{layout.duration}: not a duration: {values['duration']!r}")
    caller = _number(values["caller"], country_code)
    callee = _number(values["callee"], country_code)
    if caller is None:
        problems.append(f"{layout.caller}: not a number: {values['caller']!r}")
    if callee is None:
        problems.append(f"{layout.callee}: not a number: {values['callee']!r}")
    if start is not None and end is not None and end < start:
        problems.append(f"{layout.end or layout.duration}: the call ends before it starts")
    if problems or start is None or end is None or caller is None or callee is None:
        return RowError(line, "; ".join(problems))
    return CdrCall(line, start, end, caller, callee, dict(record))


def read_cdr_file(
    path: str | Path,
    layout: Layout | None = None,
    *,
    timezone: str = "UTC",
    country_code: str = "32",
) -> CdrFile:
    """Read every call of ``path``; raises :class:`UnknownLayout` or LocalProtocolError."""
    p = Path(path)
    if not p.is_file():
        raise LocalProtocolError(f"{p}: no such file")
    zone = ZoneInfo(timezone)
    rows = _rows(p)
    first = next(rows, None)
    if first is None:
        raise LocalProtocolError(f"{p.name}: the file is empty")
    if layout is not None and not layout.header:
        names = list(layout.positions)
        pending: list[tuple[int, list[str]]] = [first]
    else:
        names = [h.strip().lstrip("\ufeff") for h in first[1]]
        layout = _choose(names, layout, p)
        pending = []
    out = CdrFile(path=str(p), layout=layout)

    def all_rows() -> Iterator[tuple[int, list[str]]]:
        yield from pending
        yield from rows

    for count, (line, cells) in enumerate(all_rows()):
        if count >= _MAX_ROWS:
            out.errors.append(RowError(line, f"more than {_MAX_ROWS} rows; the rest not read"))
            break
        if not any(c.strip() for c in cells):
            continue
        if layout.skip_rows_starting and cells and cells[0].strip() in layout.skip_rows_starting:
            continue
        if len(cells) > len(names) and not layout.header:
            cells = cells[: len(names)]
        record = {name: (cells[i] if i < len(cells) else "") for i, name in enumerate(names)}
        row = _read_row(line, record, layout, zone, country_code)
        if isinstance(row, RowError):
            out.errors.append(row)
        else:
            out.calls.append(row)
    return out
