"""``siprec-recorder purge|hold|release|retention|report``: retention, legal hold, reconciliation.

``register(subparsers)`` is called by the main CLI, which wraps each handler
``async def handler(args, ctx) -> int`` (``ctx.db``, ``ctx.config``, ``ctx.actor``,
``ctx.out``). Exit status: 0 done, 1 refused or partly failed (the message says why).
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from siprec_recorder.isotime import utc_iso
from siprec_recorder.storage.files import FileLayout

from . import models as _models  # noqa: F401 - declares retention_rules before the DB opens
from .report import completeness
from .retention import (
    HoldOutcome,
    RetentionError,
    change_legal_hold,
    extend_number,
    extend_recording,
    purge_once,
    recordings_of_numbers,
    retention_status,
)

__all__ = ["register"]


def _time(value: str) -> datetime:
    """An ISO 8601 date or time; a bare date is midnight UTC; no zone means UTC."""
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date or time: {value!r}") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _now() -> datetime:
    return datetime.now(UTC)


def register(subparsers: Any) -> None:
    """Add ``purge``, ``hold``, ``release``, ``retention``, ``report`` and ``export`` to the
    main CLI."""
    from .export_cli import add_export

    add_export(subparsers)
    p = subparsers.add_parser(
        "purge", help="delete recordings past retention and not on legal hold (audited)"
    )
    p.add_argument("--dry-run", action="store_true", help="list what would be deleted")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_purge)

    p = subparsers.add_parser(
        "hold", help="put a recording (or every recording of a number) on legal hold"
    )
    p.add_argument("recording_id", nargs="?")
    p.add_argument("--number", help="every recording of this number, in any form")
    p.add_argument("--since", type=_time, help="with --number: calls started at/after")
    p.add_argument("--until", type=_time, help="with --number: calls started before")
    p.add_argument("--reason", required=True, help="case reference / why (in the ledger)")
    p.set_defaults(func=cmd_hold)

    p = subparsers.add_parser("release", help="release a legal hold")
    p.add_argument("recording_id", nargs="?")
    p.add_argument("--number", help="every recording of this number, in any form")
    p.add_argument("--since", type=_time)
    p.add_argument("--until", type=_time)
    p.add_argument("--reason", default=None)
    p.set_defaults(func=cmd_release)

    p = subparsers.add_parser("retention", help="show or extend retention")
    rsub = p.add_subparsers(dest="retention_command", required=True)
    pe = rsub.add_parser("extend", help="keep a recording, or every recording of a number, longer")
    pe.add_argument("recording_id", nargs="?")
    pe.add_argument("--number", help="a number, in any form (past and future recordings)")
    pe.add_argument("--until", type=_time, required=True, help="ISO 8601 date")
    pe.add_argument("--reason", default=None)
    pe.set_defaults(func=cmd_retention_extend)
    ps = rsub.add_parser("show", help="a recording's retention and where it comes from")
    ps.add_argument("recording_id")
    ps.set_defaults(func=cmd_retention_show)

    p = subparsers.add_parser("report", help="compliance reports")
    rpsub = p.add_subparsers(dest="report_command", required=True)
    pc = rpsub.add_parser("completeness", help="every session the SRC offered, and its outcome")
    pc.add_argument("--since", type=_time, required=True, help="ISO 8601 (UTC if no zone)")
    pc.add_argument("--until", type=_time, default=None, help="ISO 8601 (default: now)")
    pc.add_argument("--json", action="store_true")
    pc.set_defaults(func=cmd_report_completeness)


def _layout(ctx: Any) -> FileLayout:
    return FileLayout(ctx.config.recordings_path)


async def _protect(ctx: Any, rec_ids: list[str]) -> int:
    """Carry holds and retention to the objects already in the object store; 1 on error."""
    if not ctx.config.storage.recordings_url or not rec_ids:
        return 0
    from siprec_recorder.app import open_store
    from siprec_recorder.storage.uploader import sync_protection

    store = open_store(ctx.config)
    try:
        errors = await sync_protection(ctx.db, store, rec_ids, retention_years=_years(ctx))
    finally:
        await store.close()
    for error in errors:
        print(f"error: object store: {error}", file=ctx.out)
    return 1 if errors else 0


def _years(ctx: Any) -> int:
    return int(ctx.config.storage.retention_years)


async def cmd_purge(args: argparse.Namespace, ctx: Any) -> int:
    from siprec_recorder.app import open_store

    store = open_store(ctx.config)
    try:
        report = await purge_once(
            ctx.db,
            _layout(ctx),
            _now(),
            runner=ctx.actor,
            default_years=_years(ctx),
            actor=ctx.actor,
            dry_run=args.dry_run,
            store=store,
        )
    finally:
        await store.close()
    if report.busy and not args.json:
        print(f"nothing done: {report.busy}", file=ctx.out)
        return 0
    if args.json:
        print(json.dumps(report.to_dict(), indent=2), file=ctx.out)
    else:
        verb = "would purge" if args.dry_run else "purged"
        for item in report.purged:
            print(
                f"{verb} {item.rec_id} ({item.state_before}, started {utc_iso(item.start)}, "
                f"kept until {utc_iso(item.retention_until)}) {item.file or ''}",
                file=ctx.out,
            )
        for rec_id in report.held:
            print(f"kept {rec_id}: past retention but on legal hold", file=ctx.out)
        for refusal in report.refused:
            print(f"refused by the store: {refusal}", file=ctx.out)
        for error in report.errors:
            print(f"error: {error}", file=ctx.out)
        print(
            f"{len(report.purged)} recording(s) {verb}, {len(report.held)} kept on legal hold, "
            f"{len(report.refused)} refused by the store, {len(report.errors)} error(s)",
            file=ctx.out,
        )
    return 1 if report.errors or report.refused else 0


def _number_forms(ctx: Any, value: str) -> list[str] | None:
    """The index forms of a number typed by a user (canonical first); None when it is no
    number (hold, release and extend act on a number, never on a bare name)."""
    from siprec_recorder.phone import normalize_number, number_forms

    cc = ctx.config.policy.country_code
    if normalize_number(value, country_code=cc) is None:
        return None
    return number_forms(value, cc)


def _one_target(args: argparse.Namespace, ctx: Any) -> bool:
    if (args.recording_id is None) == (args.number is None):
        print("error: give a RECORDING_ID or --number N (one of them)", file=ctx.out)
        return False
    if args.recording_id is not None and (args.since or args.until):
        print("error: --since/--until go with --number", file=ctx.out)
        return False
    return True


def _object_store(ctx: Any) -> Any:
    """The object store of ``[storage] recordings_url``; None for the folder (whose holds are
    the index's)."""
    if not ctx.config.storage.recordings_url:
        return None
    from siprec_recorder.app import open_store

    return open_store(ctx.config)


async def _change_hold(args: argparse.Namespace, ctx: Any, held: bool) -> HoldOutcome | None:
    """The hold or release asked for, through :func:`change_legal_hold` (as the portal's);
    None when refused (the message is printed)."""
    if not _one_target(args, ctx):
        return None
    ids = [args.recording_id]
    if args.number is not None:
        forms = _number_forms(ctx, args.number)
        if forms is None:
            print(f"error: {args.number!r} is not a number", file=ctx.out)
            return None
        ids = await recordings_of_numbers(ctx.db, forms, since=args.since, until=args.until)
    store = _object_store(ctx)
    try:
        return await change_legal_hold(
            ctx.db,
            ids,
            held=held,
            actor=ctx.actor,
            reason=args.reason,
            now=_now(),
            store=store,
            retention_years=_years(ctx),
        )
    except RetentionError as exc:
        print(f"error: {exc}", file=ctx.out)
        return None
    finally:
        if store is not None:
            await store.close()


def _store_errors(ctx: Any, outcome: HoldOutcome) -> int:
    for error in outcome.store_errors:
        print(f"error: object store: {error}", file=ctx.out)
    return 1 if outcome.store_errors else 0


async def cmd_hold(args: argparse.Namespace, ctx: Any) -> int:
    outcome = await _change_hold(args, ctx, True)
    if outcome is None:
        return 1
    changes = outcome.changes
    if args.number is not None:
        for change in changes:
            print(f"recording {change.rec_id} on legal hold", file=ctx.out)
        print(
            f"{sum(c.changed for c in changes)} recording(s) put on hold, "
            f"{sum(not c.changed for c in changes)} already held",
            file=ctx.out,
        )
    else:
        what = "is now" if changes[0].changed else "was already"
        print(f"recording {changes[0].rec_id} {what} on legal hold", file=ctx.out)
    return _store_errors(ctx, outcome)


async def cmd_release(args: argparse.Namespace, ctx: Any) -> int:
    outcome = await _change_hold(args, ctx, False)
    if outcome is None:
        return 1
    changes = outcome.changes
    if args.number is not None:
        print(
            f"{sum(c.changed for c in changes)} recording(s) released from legal hold",
            file=ctx.out,
        )
    else:
        what = "released from" if changes[0].changed else "was not on"
        print(f"recording {changes[0].rec_id} {what} legal hold", file=ctx.out)
    return _store_errors(ctx, outcome)


async def cmd_retention_extend(args: argparse.Namespace, ctx: Any) -> int:
    if (args.recording_id is None) == (args.number is None):
        print("error: give a RECORDING_ID or --number N (one of them)", file=ctx.out)
        return 1
    try:
        if args.number is not None:
            forms = _number_forms(ctx, args.number)
            if forms is None:
                print(f"error: {args.number!r} is not a number", file=ctx.out)
                return 1
            result = await extend_number(
                ctx.db,
                forms[0],
                args.until,
                actor=ctx.actor,
                now=_now(),
                default_years=_years(ctx),
                layout=_layout(ctx),
                also_match=forms[1:],
                reason=args.reason,
            )
            print(
                f"recordings of {result.number} are kept at least until {utc_iso(result.until)}; "
                f"{len(result.extended)} existing recording(s) extended",
                file=ctx.out,
            )
            return await _protect(ctx, [c.rec_id for c in result.extended])
        change = await extend_recording(
            ctx.db,
            args.recording_id,
            args.until,
            actor=ctx.actor,
            now=_now(),
            default_years=_years(ctx),
            layout=_layout(ctx),
            reason=args.reason,
        )
    except RetentionError as exc:
        print(f"error: {exc}", file=ctx.out)
        return 1
    print(
        f"recording {change.rec_id} kept until {utc_iso(change.after)} "
        f"(was {utc_iso(change.before)})",
        file=ctx.out,
    )
    return await _protect(ctx, [change.rec_id])


async def cmd_retention_show(args: argparse.Namespace, ctx: Any) -> int:
    try:
        status = await retention_status(
            ctx.db, args.recording_id, default_years=_years(ctx), layout=_layout(ctx)
        )
    except RetentionError as exc:
        print(f"error: {exc}", file=ctx.out)
        return 1
    print(json.dumps(status.to_dict(), indent=2), file=ctx.out)
    return 0


async def cmd_report_completeness(args: argparse.Namespace, ctx: Any) -> int:
    until = args.until or _now()
    if until <= args.since:
        print("error: --until must be after --since", file=ctx.out)
        return 1
    report = await completeness(ctx.db, args.since, until)
    if args.json:
        print(report.to_json(), file=ctx.out)
    else:
        ctx.out.write(report.to_table())
    return 0
