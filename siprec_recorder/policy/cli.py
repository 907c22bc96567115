"""``siprec-recorder templates ...`` and ``siprec-recorder numbers ...``.

:func:`register` adds the two command groups to the main parser's subparsers; every leaf sets
``func`` to an async handler ``handler(args, ctx) -> int`` where ``ctx`` has ``db``
(:class:`~siprec_recorder.storage.db.Database`), ``policy``
(:class:`~.settings.PolicySettings`), ``actor`` (who runs the command, for the audit ledger)
and ``out`` (where results go). Errors go to stderr with exit code 2; listings take ``--json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol, TextIO

from siprec_recorder.errors import ConfigError, RecorderError
from siprec_recorder.storage.db import Database

from .errors import CsvImportError, PolicyError
from .importer import ImportResult, ProgressCallback, export_numbers, import_numbers
from .rules import parse_bool
from .service import NumberView, PolicyService, TemplateView
from .settings import PolicySettings

__all__ = ["CliContext", "register"]

EXIT_OK = 0
EXIT_ERROR = 2


class CliContext(Protocol):
    """What a handler needs from the command line runner."""

    db: Database
    policy: PolicySettings
    actor: str
    out: TextIO


Handler = Callable[[argparse.Namespace, Any], Awaitable[int]]


def _yes_no(value: str) -> bool:
    try:
        return parse_bool(value, "value")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected yes or no (on/off), not {value!r}") from None


def _service(ctx: CliContext) -> PolicyService:
    return PolicyService(ctx.db, ctx.policy)


def _guard(handler: Handler) -> Handler:
    """Turn our errors into a message on stderr and exit code 2."""

    async def run(args: argparse.Namespace, ctx: Any) -> int:
        try:
            return await handler(args, ctx)
        except CsvImportError as exc:
            print(
                f"error: import refused, nothing changed: {len(exc.problems)} problem(s)",
                file=sys.stderr,
            )
            for problem in exc.problems:
                print(f"  {problem}", file=sys.stderr)
            return EXIT_ERROR
        except (PolicyError, ConfigError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_ERROR
        except RecorderError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_ERROR
        except OSError as exc:
            print(
                f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr
            )
            return EXIT_ERROR

    run.__name__ = handler.__name__
    run.__doc__ = handler.__doc__
    return run


def _onoff(value: bool) -> str:
    return "on" if value else "off"


def _schedule(view: NumberView) -> str:
    if view.template:
        return f"template {view.template}"
    return " | ".join(view.slots) if view.slots else "-"


def _describe(view: NumberView) -> str:
    who = view.user or "-"
    if view.user_name and view.user_name != view.user:
        who = f"{view.user_name} <{who}>"
    state = "active" if view.active else "inactive"
    managed = "managed" if view.managed else "unmanaged"
    return (
        f"{view.number} {who}: {state}, {managed}, {view.status}, {view.mode},"
        f" beep {_onoff(view.beep)}, notify {_onoff(view.notify)},"
        f" self service {_onoff(view.self_service)}, schedule {_schedule(view)}"
    )


def _print_number(view: NumberView, out: TextIO) -> None:
    rows = [
        ("number", view.number),
        ("user", view.user or "-"),
        ("name", view.user_name or "-"),
        ("active", "yes" if view.active else "no"),
        ("managed", "yes" if view.managed else "no"),
        ("status", view.status),
        ("mode", view.mode),
        ("beep", _onoff(view.beep)),
        ("notify", _onoff(view.notify)),
        ("self service", _onoff(view.self_service)),
        ("template", view.template or "-"),
        ("slots", ", ".join(view.slots) or "-"),
    ]
    for key, value in rows:
        print(f"{key + ':':<14}{value}", file=out)


# ---------------------------------------------------------------------- templates


@_guard
async def cmd_templates_set(args: argparse.Namespace, ctx: CliContext) -> int:
    """Create or replace a template."""
    view = await _service(ctx).set_template(args.name, args.slot or [], actor=ctx.actor)
    used = f", used by {view.numbers} number(s)" if view.numbers else ""
    print(f"template {view.name}: {', '.join(view.slots)}{used}", file=ctx.out)
    return EXIT_OK


def _template_line(view: TemplateView) -> str:
    return f"{view.name:<20} {view.numbers:>7}  {', '.join(view.slots)}"


@_guard
async def cmd_templates_list(args: argparse.Namespace, ctx: CliContext) -> int:
    """List templates."""
    views = await _service(ctx).list_templates()
    if args.json:
        json.dump([v.to_dict() for v in views], ctx.out, indent=2)
        print(file=ctx.out)
        return EXIT_OK
    print(f"{'template':<20} {'numbers':>7}  slots", file=ctx.out)
    for view in views:
        print(_template_line(view), file=ctx.out)
    return EXIT_OK


@_guard
async def cmd_templates_delete(args: argparse.Namespace, ctx: CliContext) -> int:
    """Delete an unused template."""
    await _service(ctx).delete_template(args.name, actor=ctx.actor)
    print(f"template {args.name} deleted", file=ctx.out)
    return EXIT_OK


# ---------------------------------------------------------------------- numbers


def _number_fields(args: argparse.Namespace) -> dict[str, Any]:
    """A number's attributes as the options of ``numbers add``/``set`` give them (None: the
    option was not given)."""
    return {
        "user": args.user,
        "user_name": args.name,
        "managed": args.managed,
        "status": args.status,
        "mode": args.mode,
        "beep": args.beep,
        "notify": args.notify,
        "self_service": args.self_service,
    }


#: What ``numbers add`` gives a new number for an option left out (managed and status are
#: derived by the service from the template or slots).
_NEW_NUMBER: dict[str, Any] = {
    "mode": "professional",
    "beep": False,
    "notify": False,
    "self_service": False,
}


@_guard
async def cmd_numbers_add(args: argparse.Namespace, ctx: CliContext) -> int:
    """Add a number."""
    fields: dict[str, Any] = {
        name: _NEW_NUMBER.get(name) if value is None else value
        for name, value in _number_fields(args).items()
    }
    view = await _service(ctx).add_number(
        args.number, actor=ctx.actor, template=args.template, slots=args.slot, **fields
    )
    print(f"added {_describe(view)}", file=ctx.out)
    return EXIT_OK


@_guard
async def cmd_numbers_set(args: argparse.Namespace, ctx: CliContext) -> int:
    """Change a number."""
    view = await _service(ctx).set_number(
        args.number, actor=ctx.actor, active=args.active, **_number_fields(args)
    )
    print(f"changed {_describe(view)}", file=ctx.out)
    return EXIT_OK


@_guard
async def cmd_numbers_show(args: argparse.Namespace, ctx: CliContext) -> int:
    """Show one number."""
    view = await _service(ctx).get_number(args.number)
    if args.json:
        json.dump(view.to_dict(), ctx.out, indent=2)
        print(file=ctx.out)
    else:
        _print_number(view, ctx.out)
    return EXIT_OK


@_guard
async def cmd_numbers_list(args: argparse.Namespace, ctx: CliContext) -> int:
    """List numbers."""
    views = await _service(ctx).list_numbers(include_inactive=not args.active_only, user=args.user)
    if args.json:
        json.dump([v.to_dict() for v in views], ctx.out, indent=2)
        print(file=ctx.out)
        return EXIT_OK
    print(
        f"{'number':<17} {'user':<16} {'active':<6} {'managed':<7} {'status':<6} "
        f"{'mode':<12} schedule",
        file=ctx.out,
    )
    for v in views:
        print(
            f"{v.number:<17} {(v.user or '-'):<16} {'yes' if v.active else 'no':<6} "
            f"{'yes' if v.managed else 'no':<7} {v.status:<6} {v.mode:<12} {_schedule(v)}",
            file=ctx.out,
        )
    return EXIT_OK


@_guard
async def cmd_numbers_remove(args: argparse.Namespace, ctx: CliContext) -> int:
    """Deactivate a number (soft remove)."""
    view = await _service(ctx).remove_number(args.number, actor=ctx.actor)
    print(f"removed {view.number} (inactive: never recorded; history kept)", file=ctx.out)
    return EXIT_OK


@_guard
async def cmd_numbers_mode(args: argparse.Namespace, ctx: CliContext) -> int:
    """Switch professional/private."""
    view = await _service(ctx).set_mode(
        args.number, args.mode, actor=ctx.actor, by_user=args.by_user
    )
    print(f"{view.number}: mode {view.mode}", file=ctx.out)
    return EXIT_OK


@_guard
async def cmd_numbers_schedule(args: argparse.Namespace, ctx: CliContext) -> int:
    """Give a number a template or its own slots."""
    view = await _service(ctx).set_schedule(
        args.number, actor=ctx.actor, template=args.template, slots=args.slot
    )
    print(f"{view.number}: schedule {_schedule(view)}", file=ctx.out)
    return EXIT_OK


def _progress_bar(stream: TextIO) -> ProgressCallback:
    def show(done: int, total: int) -> None:
        total = max(total, 1)
        width = 30
        filled = min(width, width * done // total)
        stream.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {100 * done // total:3d}%"
            f" {done:,}/{total:,}"
        )
        if done >= total:
            stream.write("\n")
        stream.flush()

    return show


@_guard
async def cmd_numbers_import(args: argparse.Namespace, ctx: CliContext) -> int:
    """Import numbers from a CSV or XLSX file, all or nothing."""
    path = Path(args.file)
    data = path.read_bytes()
    progress = _progress_bar(sys.stderr) if sys.stderr.isatty() else None
    result: ImportResult = await import_numbers(
        ctx.db,
        data,
        actor=ctx.actor,
        country_code=ctx.policy.country_code,
        filename=path.name,
        dry_run=args.dry_run,
        progress=progress,
    )
    if args.json:
        json.dump(result.to_dict(), ctx.out, indent=2)
        print(file=ctx.out)
        return EXIT_OK
    verb = "would add" if result.dry_run else "added"
    print(
        f"{path.name}: {result.rows} rows: {verb} {result.added}, changed {result.changed},"
        f" unchanged {result.unchanged}, new users {result.users_created}"
        + (" (dry run, nothing changed)" if result.dry_run else ""),
        file=ctx.out,
    )
    return EXIT_OK


@_guard
async def cmd_numbers_export(args: argparse.Namespace, ctx: CliContext) -> int:
    """Export every number to CSV (or .xlsx)."""
    count = await export_numbers(_service(ctx), args.file)
    print(f"exported {count} numbers to {args.file}", file=ctx.out)
    return EXIT_OK


# ---------------------------------------------------------------------- parser


def _number_options(p: argparse.ArgumentParser, *, adding: bool) -> None:
    p.add_argument("--user", required=adding, help="the owner's login (created if new)")
    p.add_argument("--name", help="the owner's full name")
    p.add_argument("--managed", type=_yes_no, metavar="yes|no")
    p.add_argument("--status", choices=("auto", "manual"))
    p.add_argument("--mode", choices=("professional", "private"))
    p.add_argument("--beep", type=_yes_no, metavar="on|off", help="recording tone expected")
    p.add_argument("--notify", type=_yes_no, metavar="on|off", help="tell the user of changes")
    p.add_argument(
        "--self-service",
        dest="self_service",
        type=_yes_no,
        metavar="on|off",
        help="the user may switch professional/private",
    )


def register(subparsers: Any) -> None:
    """Add ``templates`` and ``numbers`` to the main parser's subparsers."""
    templates = subparsers.add_parser("templates", help="named weekly schedules")
    tsub = templates.add_subparsers(dest="templates_command", required=True)
    p = tsub.add_parser("set", help="create or replace a template")
    p.add_argument("name")
    p.add_argument(
        "--slot",
        action="append",
        required=True,
        help='e.g. "mon-fri 08:00-18:00" (repeat for more)',
    )
    p.set_defaults(func=cmd_templates_set)
    p = tsub.add_parser("list", help="list templates")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_templates_list)
    p = tsub.add_parser("delete", help="delete a template no number uses")
    p.add_argument("name")
    p.set_defaults(func=cmd_templates_delete)

    numbers = subparsers.add_parser("numbers", help="recorded numbers and their policy")
    nsub = numbers.add_subparsers(dest="numbers_command", required=True)
    p = nsub.add_parser("add", help="add a number")
    p.add_argument("number")
    _number_options(p, adding=True)
    group = p.add_mutually_exclusive_group()
    group.add_argument("--template")
    group.add_argument("--slot", action="append")
    p.set_defaults(func=cmd_numbers_add)

    p = nsub.add_parser("set", help="change a number")
    p.add_argument("number")
    _number_options(p, adding=False)
    p.add_argument("--active", type=_yes_no, metavar="yes|no")
    p.set_defaults(func=cmd_numbers_set)

    p = nsub.add_parser("show", help="show a number")
    p.add_argument("number")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_numbers_show)

    p = nsub.add_parser("list", help="list numbers")
    p.add_argument("--user", help="only this user's numbers")
    p.add_argument("--active-only", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_numbers_list)

    p = nsub.add_parser("remove", help="deactivate a number (kept, never recorded)")
    p.add_argument("number")
    p.set_defaults(func=cmd_numbers_remove)

    p = nsub.add_parser("mode", help="switch professional/private")
    p.add_argument("number")
    p.add_argument("mode", choices=("professional", "private"))
    p.add_argument(
        "--by-user", action="store_true", help="the user's own request (needs self service)"
    )
    p.set_defaults(func=cmd_numbers_mode)

    p = nsub.add_parser("schedule", help="set a number's schedule")
    p.add_argument("number")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--template")
    group.add_argument("--slot", action="append")
    p.set_defaults(func=cmd_numbers_schedule)

    p = nsub.add_parser("import", help="import a CSV or XLSX file, all or nothing")
    p.add_argument("file")
    p.add_argument("--dry-run", action="store_true", help="check only, change nothing")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_numbers_import)

    p = nsub.add_parser("export", help="export every number to CSV (or .xlsx)")
    p.add_argument("file")
    p.set_defaults(func=cmd_numbers_export)
