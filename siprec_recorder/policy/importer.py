"""Bulk import and export of numbers: CSV (``,`` or ``;``, UTF-8 with or without BOM) and XLSX.

Theory of operation
-------------------
An import is all or nothing and runs in three steps:

1. **Read** (:func:`read_table`): the file becomes rows of text cells. CSV is decoded as UTF-8
   (a BOM is dropped) and its delimiter, ``,`` or ``;``, is sniffed from the header line; an
   ``.xlsx`` file (recognised by its ZIP signature) is read with openpyxl, first sheet, and
   its cells turned into text (``32470000001`` stays digits, TRUE/FALSE become yes/no).
2. **Validate** (:func:`plan_import`, pure, in memory): the header must hold the columns
   :data:`COLUMNS` (any order, any case) and may hold :data:`OPTIONAL_COLUMNS`. Every row is
   checked against the current state of the database (existing numbers, templates, users)
   and every problem is collected as ``(row, column, message)``; rows are numbered as in a
   spreadsheet, the header being row 1. Any problem and the import stops with a
   :class:`~.errors.CsvImportError` listing all of them; nothing was written.
3. **Write** (:func:`import_numbers`): one transaction with bulk inserts and updates,
   audit events (one ``policy.numbers.imported`` event per 2,000 numbers added or changed:
   a new number's full state as a row of ``AUDIT_COLUMNS``, a changed number's changed
   fields before and after), notifications for numbers with ``notify``
   on whose status/mode/managed/active changed, and a ``policy_version`` bump. ``dry_run``
   stops after step 2 and reports what would change.

Cell semantics: a blank cell means "keep the current value" for an existing number and "the
default" for a new one (managed: yes when a template or slots are given; status: auto when
managed, else manual; mode: professional; beep, notify, self_service: no; active: yes). A new
number needs a user (its login; a user that does not exist is created, see
:mod:`.service`). ``slots`` holds a number's own slots separated by ``|``; a number has a
template or own slots, not both. Numbers absent from the file are left alone.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from siprec_recorder.storage.db import Database
from siprec_recorder.storage.ledger import append_event
from siprec_recorder.storage.models import User, utcnow

from .db import bump_policy_version, read_counter, transaction
from .errors import CsvImportError, RowProblem, RuleError, ScheduleError
from .models import (
    COUNTER_POLICY_VERSION,
    PolicyNotification,
    PolicyNumber,
    PolicyNumberSlot,
    PolicyTemplate,
    PolicyTemplateSlot,
)
from .rules import MODES, STATUSES, check_number_rules, normalize_firm_number, parse_bool
from .rules import parse_choice as _parse_choice
from .schedule import check_slots, parse_slots
from .service import NOTIFY_FIELDS, PolicyService, validate_login

__all__ = [
    "COLUMNS",
    "OPTIONAL_COLUMNS",
    "CurrentState",
    "ExistingNumber",
    "ImportPlan",
    "ImportResult",
    "ProgressCallback",
    "export_numbers",
    "import_numbers",
    "load_state",
    "plan_import",
    "read_table",
]

COLUMNS: tuple[str, ...] = (
    "number",
    "user",
    "template",
    "managed",
    "status",
    "mode",
    "beep",
    "notify",
    "self_service",
)
OPTIONAL_COLUMNS: tuple[str, ...] = ("user_name", "active", "slots")
MAX_ROWS = 2_000_000
MAX_CELL = 1000
EVENT_CHUNK = 2000
_CHUNK = 500

#: ``progress(done, total)``; called while validating and writing.
ProgressCallback = Callable[[int, int], None]

_FIELDS = ("managed", "status", "mode", "beep", "notify", "self_service", "active")


@dataclass(frozen=True, slots=True)
class ExistingNumber:
    """What the importer needs to know of a number already in the database."""

    id: int
    user: str | None
    mode: str
    managed: bool
    status: str
    beep: bool
    notify: bool
    self_service: bool
    active: bool
    template: str | None
    own_slots: tuple[str, ...]

    def state(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "managed": self.managed,
            "status": self.status,
            "mode": self.mode,
            "beep": self.beep,
            "notify": self.notify,
            "self_service": self.self_service,
            "active": self.active,
            "template": self.template,
            "slots": list(self.own_slots),
        }


@dataclass
class CurrentState:
    """The database as the importer sees it (numbers by E.164, templates, user logins)."""

    numbers: dict[str, ExistingNumber] = field(default_factory=dict)
    templates: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (id, n slots)
    users: dict[str, int] = field(default_factory=dict)  # login -> id
    version: int = 0  # the policy_version counter when this state was read


@dataclass
class PlannedNumber:
    row: int
    number: str
    user: str | None
    user_name: str | None
    after: dict[str, Any]
    before: dict[str, Any] | None  # None: a new number
    existing_id: int | None

    @property
    def changed(self) -> bool:
        return self.before is None or self.before != self.after


@dataclass
class ImportPlan:
    """The validated content of a file: what would be added and changed."""

    rows: int = 0
    numbers: list[PlannedNumber] = field(default_factory=list)
    new_users: dict[str, str | None] = field(default_factory=dict)  # login -> name

    @property
    def added(self) -> list[PlannedNumber]:
        return [n for n in self.numbers if n.before is None]

    @property
    def changed(self) -> list[PlannedNumber]:
        return [n for n in self.numbers if n.before is not None and n.changed]


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import did (or, with ``dry_run``, would do)."""

    rows: int
    added: int
    changed: int
    unchanged: int
    users_created: int
    dry_run: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "added": self.added,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "users_created": self.users_created,
            "dry_run": self.dry_run,
        }


# ------------------------------------------------------------------------- reading


def _fail(row: int, column: str, message: str) -> CsvImportError:
    return CsvImportError([RowProblem(row, column, message)])


def _xlsx_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _read_xlsx(data: bytes) -> list[list[str]]:
    try:
        import openpyxl

        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure of a foreign file is a bad file
        raise _fail(0, "file", f"not a readable .xlsx file ({type(exc).__name__})") from None
    try:
        sheet = workbook.worksheets[0] if workbook.worksheets else None
        if sheet is None:
            raise _fail(0, "file", "the workbook has no sheet")
        rows: list[list[str]] = []
        try:
            for values in sheet.iter_rows(values_only=True):
                rows.append([_xlsx_cell(v) for v in values])
                if len(rows) > MAX_ROWS + 1:
                    raise _fail(len(rows), "file", f"more than {MAX_ROWS} rows")
        except CsvImportError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise _fail(len(rows) + 1, "file", f"unreadable row ({type(exc).__name__})") from None
        return rows
    finally:
        workbook.close()


def _read_csv(data: bytes) -> list[list[str]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise _fail(line, "file", "the file is not UTF-8 text (save it as CSV UTF-8)") from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise _fail(line, "file", "the file holds NUL characters (not a CSV file?)")
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False)
    rows: list[list[str]] = []
    try:
        for cells in reader:
            rows.append(cells)
            if len(rows) > MAX_ROWS + 1:
                raise _fail(len(rows), "file", f"more than {MAX_ROWS} rows")
    except csv.Error as exc:
        raise _fail(reader.line_num, "file", f"unreadable CSV ({exc})") from None
    return rows


def read_table(data: bytes) -> list[list[str]]:
    """Rows of text cells of a CSV or XLSX file (header first); :class:`CsvImportError`."""
    if data[:4] == b"PK\x03\x04":
        return _read_xlsx(data)
    return _read_csv(data)


# ------------------------------------------------------------------------- validation


def _header(cells: Sequence[str]) -> dict[str, int]:
    problems: list[RowProblem] = []
    index: dict[str, int] = {}
    known = set(COLUMNS) | set(OPTIONAL_COLUMNS)
    for i, raw in enumerate(cells):
        name = raw.strip().lower().replace(" ", "_").replace("-", "_")
        if not name:
            continue
        if name not in known:
            problems.append(RowProblem(1, raw.strip()[:40], "unknown column"))
        elif name in index:
            problems.append(RowProblem(1, name, "column given twice"))
        else:
            index[name] = i
    for name in COLUMNS:
        if name not in index:
            problems.append(RowProblem(1, name, "missing column"))
    if problems:
        raise CsvImportError(problems)
    return index


class _Reporter:
    """Collects the problems of one row."""

    __slots__ = ("problems", "row")

    def __init__(self, problems: list[RowProblem], row: int) -> None:
        self.problems, self.row = problems, row

    def __call__(self, column: str, message: str) -> None:
        self.problems.append(RowProblem(self.row, column, message))


_BOOLS = {
    "yes": True,
    "y": True,
    "on": True,
    "true": True,
    "1": True,
    "no": False,
    "n": False,
    "off": False,
    "false": False,
    "0": False,
}
_OWNER = "\x00owner\x00"


def _check_slot_text(text: str) -> tuple[tuple[str, ...] | None, tuple[str, ...]]:
    """Canonical slots of a ``|``-separated cell and its problems (owner as a placeholder)."""
    try:
        parsed = parse_slots(s for s in text.split("|") if s.strip())
    except ScheduleError as exc:
        return None, exc.problems
    return tuple(str(s) for s in parsed), tuple(check_slots(_OWNER, parsed))


def plan_import(
    rows: Sequence[Sequence[str]],
    state: CurrentState,
    *,
    country_code: str = "32",
    progress: ProgressCallback | None = None,
) -> ImportPlan:
    """Validate every row against ``state``; :class:`CsvImportError` lists every problem."""
    if not rows or not any(c.strip() for c in rows[0]):
        raise _fail(1, "file", "the file is empty (a header row is required)")
    index = _header(rows[0])
    problems: list[RowProblem] = []
    plan = ImportPlan()
    seen: dict[str, int] = {}
    total = len(rows) - 1
    width = max(index.values()) + 1

    col = {name: index.get(name) for name in COLUMNS + OPTIONAL_COLUMNS}
    bool_cols = [(n, col[n]) for n in ("managed", "beep", "notify", "self_service", "active")]
    choice_cols = [(n, col[n], c) for n, c in (("status", STATUSES), ("mode", MODES))]
    slot_cache: dict[str, tuple[tuple[str, ...] | None, tuple[str, ...]]] = {}
    login_cache: dict[str, str | None] = {}
    login_errors: dict[str, str] = {}

    for offset, cells in enumerate(rows[1:], start=2):
        if progress is not None and offset % 5000 == 0:
            progress(offset - 1, total)
        if not "".join(cells).strip():
            continue
        plan.rows += 1
        row_problems: list[RowProblem] = []
        bad = _Reporter(row_problems, offset)
        ncells = len(cells)
        if ncells > width and "".join(cells[width:]).strip():
            bad("row", f"{ncells} cells, more than the {width} columns of the header")
        if sum(map(len, cells)) > MAX_CELL:
            cells = list(cells)
            for name, i in col.items():
                if i is not None and i < ncells and len(cells[i]) > MAX_CELL:
                    bad(name, f"longer than {MAX_CELL} characters")
                    cells[i] = ""

        def cell(i: int | None, cells: Sequence[str] = cells, n: int = ncells) -> str:
            return cells[i].strip() if i is not None and i < n else ""

        try:
            number = normalize_firm_number(cell(col["number"]), country_code)
        except ValueError as exc:
            bad("number", str(exc))
            problems.extend(row_problems)
            continue
        if number in seen:
            bad("number", f"number {number} is also on row {seen[number]}")
            problems.extend(row_problems)
            continue
        seen[number] = offset
        existing = state.numbers.get(number)
        before = existing.state() if existing is not None else None

        given: dict[str, Any] = {}
        for name, i in bool_cols:
            raw = cell(i)
            if raw:
                value = _BOOLS.get(raw.lower())
                if value is None:
                    try:
                        value = parse_bool(raw, name)
                    except ValueError as exc:
                        bad(name, str(exc))
                        continue
                given[name] = value
        for name, i, choices in choice_cols:
            raw = cell(i)
            if raw:
                try:
                    given[name] = _parse_choice(raw, name, choices)
                except ValueError as exc:
                    bad(name, str(exc))

        template = cell(col["template"]) or None
        slots_text = cell(col["slots"])
        slots: tuple[str, ...] | None = None
        if template is not None and template not in state.templates:
            bad("template", f"template {template} does not exist")
        if slots_text:
            if template is not None:
                bad("slots", f"number {number}: give a template or slots, not both")
            cached = slot_cache.get(slots_text)
            if cached is None:
                cached = _check_slot_text(slots_text)
                if len(slot_cache) < 10_000:
                    slot_cache[slots_text] = cached
            slots, slot_problems = cached
            for message in slot_problems:
                bad("slots", message.replace(_OWNER, f"number {number}"))

        login = cell(col["user"]) or None
        user_name = cell(col["user_name"]) or None
        if login is not None:
            if login not in login_cache:
                try:
                    login_cache[login] = validate_login(login)
                except ValueError as exc:
                    login_cache[login] = None
                    login_errors[login] = str(exc)
            checked = login_cache[login]
            if checked is None:
                bad("user", login_errors[login])
            login = checked
        elif existing is None:
            bad("user", f"number {number}: a new number needs a user")

        if existing is None:
            managed = given.get("managed", template is not None or bool(slots))
            after = {
                "user": login,
                "managed": managed,
                "status": given.get("status", "auto" if managed else "manual"),
                "mode": given.get("mode", "professional"),
                "beep": given.get("beep", False),
                "notify": given.get("notify", False),
                "self_service": given.get("self_service", False),
                "active": given.get("active", True),
                "template": template,
                "slots": list(slots or ()),
            }
        else:
            after = dict(existing.state())
            after.update(given)
            if login is not None:
                after["user"] = login
            if template is not None:
                after["template"], after["slots"] = template, []
            elif slots is not None:
                after["template"], after["slots"] = None, list(slots)
            if not existing.active and not after["active"] and after != before:
                bad("number", f"number {number} is not active")

        if after["template"] is not None:
            has_slots = state.templates.get(after["template"], (0, 1))[1] > 0
        else:
            has_slots = bool(after["slots"])
        for column, message in check_number_rules(
            number,
            managed=after["managed"],
            status=after["status"],
            mode=after["mode"],
            has_slots=has_slots,
        ):
            if column == "template" and slots_text:
                column = "slots"
            bad(column, message)

        if row_problems:
            problems.extend(row_problems)
            continue
        if login is not None and login not in state.users:
            plan.new_users.setdefault(login, user_name)
        plan.numbers.append(
            PlannedNumber(
                row=offset,
                number=number,
                user=login,
                user_name=user_name,
                after=after,
                before=before,
                existing_id=existing.id if existing is not None else None,
            )
        )
    if progress is not None:
        progress(total, total)
    if problems:
        raise CsvImportError(problems)
    return plan


# ------------------------------------------------------------------------- database


async def load_state(db: Database) -> CurrentState:
    """Read numbers, templates and users for :func:`plan_import`."""
    state = CurrentState()
    async with db.session() as session:
        state.version = await read_counter(session, COUNTER_POLICY_VERSION)
        slot_counts: dict[int, int] = {}
        for (template_id,) in await session.execute(select(PolicyTemplateSlot.template_id)):
            slot_counts[template_id] = slot_counts.get(template_id, 0) + 1
        names: dict[int, str] = {}
        for tid, name in await session.execute(select(PolicyTemplate.id, PolicyTemplate.name)):
            names[tid] = name
            state.templates[name] = (tid, slot_counts.get(tid, 0))
        for uid, login in await session.execute(select(User.id, User.login)):
            state.users[login] = uid
        logins = {uid: login for login, uid in state.users.items()}
        own: dict[int, list[str]] = {}
        for nid, spec in await session.execute(
            select(PolicyNumberSlot.number_id, PolicyNumberSlot.spec).order_by(
                PolicyNumberSlot.number_id, PolicyNumberSlot.position
            )
        ):
            own.setdefault(nid, []).append(spec)
        for row in await session.execute(
            select(
                PolicyNumber.id,
                PolicyNumber.number,
                PolicyNumber.user_id,
                PolicyNumber.mode,
                PolicyNumber.managed,
                PolicyNumber.status,
                PolicyNumber.beep,
                PolicyNumber.notify,
                PolicyNumber.self_service,
                PolicyNumber.active,
                PolicyNumber.template_id,
            )
        ):
            nid, number, owner, mode, managed, status, beep, notify, self_service, active, tid = row
            state.numbers[number] = ExistingNumber(
                id=int(nid),
                user=logins.get(owner) if owner is not None else None,
                mode=mode,
                managed=bool(managed),
                status=status,
                beep=bool(beep),
                notify=bool(notify),
                self_service=bool(self_service),
                active=bool(active),
                template=names.get(tid) if tid is not None else None,
                own_slots=tuple(own.get(nid, ())),
            )
    return state


def _table(model: type[Any]) -> Table:
    """The Core table of a model: bulk statements on it skip the ORM's per-row work."""
    return cast(Table, model.__table__)


_NUMBER_FIELDS = (
    "user_id",
    "mode",
    "managed",
    "status",
    "beep",
    "notify",
    "self_service",
    "active",
    "template_id",
    "updated_at",
)
_UPDATE_NUMBER = (
    update(_table(PolicyNumber))
    .where(_table(PolicyNumber).c.id == bindparam("_id"))
    .values({name: bindparam(name) for name in _NUMBER_FIELDS})
)


#: The fields of a new number in an import's audit event (``added`` rows), in this order.
AUDIT_COLUMNS: tuple[str, ...] = (
    "number",
    "row",
    "user",
    "managed",
    "status",
    "mode",
    "beep",
    "notify",
    "self_service",
    "active",
    "template",
    "slots",
)


def _audit_change(p: PlannedNumber) -> dict[str, Any]:
    """A changed number in an import's audit event: the changed fields, before and after."""
    before = p.before or {}
    fields = [k for k in p.after if before.get(k) != p.after[k]]
    return {
        "number": p.number,
        "row": p.row,
        "before": {k: before.get(k) for k in fields},
        "after": {k: p.after[k] for k in fields},
    }


async def _bulk_insert(session: AsyncSession, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert many rows. On SQLite the rows go to the driver's ``executemany`` directly, with
    each column's own bind processing and Python-side defaults applied here: about three
    times faster than a Core ``insert()`` with a list, which matters because SQLite's write
    lock is held from the first insert to the commit."""
    if not rows:
        return
    conn = await session.connection()
    dialect = conn.dialect
    if dialect.name != "sqlite":
        await session.execute(insert(table), rows)
        return
    given = set(rows[0])
    names: list[str] = []
    getters: list[Callable[[dict[str, Any]], Any]] = []
    for column in table.columns:
        processor = column.type.bind_processor(dialect)
        getter: Callable[[dict[str, Any]], Any]
        if column.name in given:
            getter = operator.itemgetter(column.name)
        elif column.primary_key:
            continue  # generated by the database
        else:
            default = column.default
            if default is None:
                value = None
            elif getattr(default, "is_scalar", False):
                value = getattr(default, "arg", None)
            elif getattr(default, "is_callable", False):
                value = default.arg(None)  # type: ignore[attr-defined]
            else:
                await session.execute(insert(table), rows)  # a default we cannot apply here
                return

            def getter(row: dict[str, Any], value: Any = value) -> Any:
                return value

        if processor is not None:

            def get_processed(
                row: dict[str, Any],
                getter: Callable[[dict[str, Any]], Any] = getter,
                processor: Callable[[Any], Any] = processor,
            ) -> Any:
                return processor(getter(row))

            getters.append(get_processed)
        else:
            getters.append(getter)
        names.append(column.name)
    quote = dialect.identifier_preparer.quote
    sql = (
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)})"
        f" VALUES ({', '.join('?' for _ in names)})"
    )
    await conn.exec_driver_sql(sql, [tuple(g(row) for g in getters) for row in rows])


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


async def import_numbers(
    db: Database,
    data: bytes,
    *,
    actor: str,
    country_code: str = "32",
    filename: str = "",
    dry_run: bool = False,
    progress: ProgressCallback | None = None,
    service: PolicyService | None = None,
) -> ImportResult:
    """Import a CSV/XLSX file's bytes, all or nothing (see the module docstring)."""
    rows = read_table(data)
    state = await load_state(db)
    plan = plan_import(rows, state, country_code=country_code, progress=progress)
    added, changed = plan.added, plan.changed
    result = ImportResult(
        rows=plan.rows,
        added=len(added),
        changed=len(changed),
        unchanged=len(plan.numbers) - len(added) - len(changed),
        users_created=len(plan.new_users),
        dry_run=dry_run,
    )
    if dry_run or not (added or changed):
        return result
    now = utcnow()
    digest = hashlib.sha256(data).hexdigest()
    total_work = len(added) + len(changed)
    done = 0
    async with transaction(db) as session:
        # the file was checked against a snapshot: refuse if the policy changed since then
        if await read_counter(session, COUNTER_POLICY_VERSION) != state.version:
            raise RuleError(
                "the numbers changed while the file was being checked;"
                " nothing was imported, run the import again"
            )
        if plan.new_users:
            await _bulk_insert(
                session,
                _table(User),
                [
                    {"login": login, "name": name or login, "role": "standard"}
                    for login, name in plan.new_users.items()
                ],
            )
            if len(plan.new_users) <= _CHUNK:
                query = select(User.id, User.login).where(User.login.in_(list(plan.new_users)))
            else:
                query = select(User.id, User.login)  # cheaper than a huge IN list
            for uid, login in await session.execute(query):
                state.users[login] = uid
        template_ids = {name: tid for name, (tid, _) in state.templates.items()}

        def values(p: PlannedNumber) -> dict[str, Any]:
            a = p.after
            return {
                "user_id": state.users.get(a["user"]) if a["user"] else None,
                "mode": a["mode"],
                "managed": a["managed"],
                "status": a["status"],
                "beep": a["beep"],
                "notify": a["notify"],
                "self_service": a["self_service"],
                "active": a["active"],
                "template_id": template_ids.get(a["template"]) if a["template"] else None,
                "updated_at": now,
            }

        for chunk in _chunks(added, 5000):
            await _bulk_insert(
                session,
                _table(PolicyNumber),
                [{"number": p.number, "created_at": now, **values(p)} for p in chunk],
            )
            done += len(chunk)
            if progress is not None:
                progress(done, total_work)
        for chunk in _chunks(changed, 5000):
            await session.execute(
                _UPDATE_NUMBER, [{"_id": p.existing_id, **values(p)} for p in chunk]
            )
            done += len(chunk)
            if progress is not None:
                progress(done, total_work)

        # own slots: replace for every changed number, insert for new ones
        replaced = [
            p.existing_id for p in changed if p.before and p.before["slots"] != p.after["slots"]
        ]
        for ids in _chunks(replaced, _CHUNK):
            await session.execute(
                delete(PolicyNumberSlot).where(PolicyNumberSlot.number_id.in_(list(ids)))
            )
        need_ids = [p.number for p in added if p.after["slots"]]
        new_ids: dict[str, int] = {}
        if len(need_ids) > 20 * _CHUNK:
            for nid, number in await session.execute(select(PolicyNumber.id, PolicyNumber.number)):
                new_ids[number] = nid
        else:
            for numbers in _chunks(need_ids, _CHUNK):
                for nid, number in await session.execute(
                    select(PolicyNumber.id, PolicyNumber.number).where(
                        PolicyNumber.number.in_(list(numbers))
                    )
                ):
                    new_ids[number] = nid
        slot_rows: list[dict[str, Any]] = []
        for p in added + changed:
            target_id = p.existing_id if p.existing_id is not None else new_ids.get(p.number)
            if target_id is None or (
                p.before is not None and p.before["slots"] == p.after["slots"]
            ):
                continue
            for position, spec in enumerate(p.after["slots"]):
                slot_rows.append({"number_id": target_id, "position": position, "spec": spec})
        if slot_rows:
            await _bulk_insert(session, _table(PolicyNumberSlot), slot_rows)

        # notifications for fleet-manager changes of numbers with notify on
        notes: list[dict[str, Any]] = []
        for p in changed:
            assert p.before is not None
            fields = [f for f in NOTIFY_FIELDS if p.before[f] != p.after[f]]
            if not fields or not p.after["notify"]:
                continue
            payload = {
                "id": hashlib.sha256(f"{digest}:{p.number}".encode()).hexdigest()[:32],
                "type": "number.changed",
                "number": p.number,
                "user": {"login": p.after["user"], "name": None},
                "changes": {f: {"before": p.before[f], "after": p.after[f]} for f in fields},
                "now": {f: p.after[f] for f in NOTIFY_FIELDS},
                "actor": actor,
                "at": now.isoformat(),
            }
            notes.append(
                {
                    "number": p.number,
                    "payload": json.dumps(payload, sort_keys=True),
                    "created_at": now,
                    "next_attempt_at": now,
                    "attempts": 0,
                }
            )
        if notes:
            await _bulk_insert(session, _table(PolicyNotification), notes)

        # audit: one event per EVENT_CHUNK numbers added or changed. A new number is a row of
        # AUDIT_COLUMNS (before: nothing); a changed one lists the changed fields before/after.
        work = added + changed
        parts = max(1, (len(work) + EVENT_CHUNK - 1) // EVENT_CHUNK)
        for part, chunk in enumerate(_chunks(work, EVENT_CHUNK), start=1):
            await append_event(
                session,
                actor=actor,
                action="policy.numbers.imported",
                subject=f"import:{digest[:16]}",
                details={
                    "file": Path(filename).name if filename else None,
                    "sha256": digest,
                    "part": part,
                    "parts": parts,
                    "summary": result.to_dict(),
                    "users_created": sorted(plan.new_users) if part == 1 else [],
                    "columns": list(AUDIT_COLUMNS),
                    "added": [
                        [p.number, p.row, *(p.after[c] for c in AUDIT_COLUMNS[2:])]
                        for p in chunk
                        if p.before is None
                    ],
                    "changed": [_audit_change(p) for p in chunk if p.before is not None],
                },
                now=now,
            )
        await bump_policy_version(session)
    if service is not None:
        service.notify_listeners()
    return result


# ------------------------------------------------------------------------- export

EXPORT_COLUMNS: tuple[str, ...] = COLUMNS + OPTIONAL_COLUMNS


def _yes(value: bool) -> str:
    return "yes" if value else "no"


async def export_numbers(service: PolicyService, path: Path | str) -> int:
    """Write every number to ``path`` (``.xlsx`` or CSV); re-importing it changes nothing."""
    views = await service.list_numbers()
    rows = [
        [
            v.number,
            v.user or "",
            v.template or "",
            _yes(v.managed),
            v.status,
            v.mode,
            _yes(v.beep),
            _yes(v.notify),
            _yes(v.self_service),
            v.user_name or "",
            _yes(v.active),
            "" if v.template else "|".join(v.slots),
        ]
        for v in views
    ]
    target = Path(path)
    tmp = target.with_name(target.name + ".part")
    if target.suffix.lower() == ".xlsx":
        import openpyxl

        workbook = openpyxl.Workbook(write_only=True)
        sheet = workbook.create_sheet("numbers")
        sheet.append(list(EXPORT_COLUMNS))
        for row in rows:
            sheet.append(row)
        workbook.save(tmp)
    else:
        with tmp.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(EXPORT_COLUMNS)
            writer.writerows(rows)
    tmp.replace(target)
    return len(rows)
