"""The ``siprec-recorder`` command.

Subcommands: ``serve`` (run the recorder), ``search`` (find recordings by number and time),
``replay`` (turn a pcap into a SIPREC call against a recorder), ``verify`` (files against
the index, and the ledger's hash chain), ``config check``, and the policy (``numbers``,
``templates``) and portal (``users``) administration commands, which register themselves
from their own packages. Every command takes ``--config PATH`` (default
``config/recorder.toml`` when it exists, else the built-in defaults).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import getpass
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from . import __version__
from .config import Config, load_config
from .errors import ConfigError, OperatorError
from .storage.migrations import SchemaError

__all__ = ["CliContext", "main"]

DEFAULT_CONFIG = Path("config/recorder.toml")


@dataclass
class CliContext:
    """What an administration handler gets: the index, settings, who runs it, where to print."""

    config: Config
    db: Any
    policy: Any
    actor: str
    out: TextIO


def _load(args: argparse.Namespace) -> Config:
    path = args.config
    if path is None and DEFAULT_CONFIG.exists():
        path = DEFAULT_CONFIG
    return load_config(path)


def _parse_time(value: str) -> datetime:
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {value!r}") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


async def _with_db(
    config: Config, fn: Callable[[Any], Awaitable[int]], *, reads_only: bool = False
) -> int:
    """Run ``fn(db)`` on the index. A command that only reads refuses an index that does not
    exist; the others refuse a recordings folder that does not exist, as serve does."""
    from .preflight import prepare_recordings_dir, require_index
    from .storage.db import Database

    if reads_only:
        await require_index(config)
    else:
        prepare_recordings_dir(config.storage)
    db = Database(config.database_url)
    await db.open(auto_migrate=config.auto_migrate)
    try:
        return await fn(db)
    finally:
        await db.close()


def cmd_serve(args: argparse.Namespace) -> int:
    from .app import run

    config = _load(args)
    run(config, Path(args.ready_file) if args.ready_file else None)
    return 0


SEARCH_PAGE = 500
CSV_COLUMNS = (
    "id",
    "start",
    "end",
    "duration_s",
    "state",
    "reason",
    "direction",
    "recorded_number",
    "other_number",
    "participants",
    "file",
    "sha256",
)


def _csv_row(r: dict[str, Any]) -> list[Any]:
    who = " ".join(p.get("number") or p.get("aor") or "?" for p in r["participants"])
    return [who if c == "participants" else r.get(c) for c in CSV_COLUMNS]


def cmd_search(args: argparse.Namespace) -> int:
    from .storage.index import SqlIndex

    config = _load(args)

    async def go(db: Any) -> int:
        index = SqlIndex(db)
        from .phone import number_forms

        numbers = number_forms(args.number, config.policy.country_code) if args.number else None
        text_hits: list[dict[str, Any]] | None = None
        if args.text:
            from .transcription.cli import search_by_text
            from .transcription.search import TextQueryError

            try:
                text_hits = await search_by_text(
                    db,
                    args.text,
                    number=numbers,
                    since=args.since,
                    until=args.until,
                    limit=args.limit if args.limit is not None else 1_000_000,
                    offset=args.offset,
                )
            except TextQueryError as exc:
                print(f"siprec-recorder: --text: {exc}", file=sys.stderr)
                return 2
        # New calls start after now: pinning the end keeps the pages from shifting under us.
        until = args.until or datetime.now(UTC)

        async def rows() -> AsyncIterator[dict[str, Any]]:
            if text_hits is not None:
                for hit in text_hits:
                    yield hit
                return
            offset, left = args.offset, args.limit
            while left is None or left > 0:
                size = SEARCH_PAGE if left is None else min(SEARCH_PAGE, left)
                page = await index.search(
                    number=numbers, since=args.since, until=until, limit=size, offset=offset
                )
                for r in page:
                    yield r
                offset += len(page)
                if left is not None:
                    left -= len(page)
                if len(page) < size:
                    return
            more = await index.search(
                number=numbers, since=args.since, until=until, limit=1, offset=offset
            )
            if more:
                print(
                    f"siprec-recorder: more recordings match; next page: --offset {offset}"
                    " (or leave out --limit to get them all)",
                    file=sys.stderr,
                )

        out = sys.stdout
        count = 0
        if args.json:
            out.write("[")
            async for r in rows():
                out.write(",\n" if count else "\n")
                out.write(json.dumps(r, indent=2, default=str))
                count += 1
            out.write("\n]\n" if count else "]\n")
        elif args.csv:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(CSV_COLUMNS)
            async for r in rows():
                writer.writerow(_csv_row(r))
        else:
            async for r in rows():
                who = ", ".join(p.get("number") or p.get("aor") or "?" for p in r["participants"])
                duration = r["duration_s"] or 0
                print(f"{r['start']}  {duration:7.1f}s  {r['state']:<11} {who}  {r['file'] or ''}")
                for h in r.get("hits", ()):
                    print(f"    {h['at_s']:8.2f}s  {h['speaker'] or h['leg']}: {h['text']}")
                count += 1
            print(f"{count} recording(s)")
        return 0

    if args.text:
        from .transcription import models as _transcription_tables  # noqa: F401

    return asyncio.run(_with_db(config, go, reads_only=True))


def cmd_verify(args: argparse.Namespace) -> int:
    from .storage.files import FileLayout
    from .storage.integrity import verify

    config = _load(args)

    from .transcription.store import verify_transcripts

    async def go(db: Any) -> int:
        from .app import open_store

        store = open_store(config)
        try:
            problems = await verify(db, FileLayout(config.recordings_path), store=store)
            problems += await verify_transcripts(db, FileLayout(config.recordings_path))
        finally:
            await store.close()
        for p in problems:
            print(f"{p.kind}: {p.subject}: {p.detail}")
        if problems:
            print(f"{len(problems)} problem(s) found", file=sys.stderr)
            return 1
        where = "" if store.is_local else f" (in the folder or {store.url})"
        print(f"ok: every file{where} matches the index and the ledger chain is intact")
        return 0

    return asyncio.run(_with_db(config, go, reads_only=True))


def cmd_replay(args: argparse.Namespace) -> int:
    from .replay import cli as replay_cli

    return asyncio.run(replay_cli.run(args))


def cmd_config_check(args: argparse.Namespace) -> int:
    from .configshow import render_config
    from .preflight import exposure_warnings

    config = _load(args)
    for warning in (*config.warnings, *exposure_warnings(config)):
        print(f"siprec-recorder: warning: {warning}", file=sys.stderr)
    print(f"# configuration file: {config.source}")
    if config.overrides:
        print("# environment overrides applied:")
        for override in config.overrides:
            print(f"#   {override}")
    else:
        print("# environment overrides applied: none")
    print(render_config(config), end="")
    print(f"ok: {config.source}")
    return 0


def _admin(
    handler: Callable[[argparse.Namespace, CliContext], Awaitable[int]],
    reads_only: bool = False,
) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        config = _load(args)

        async def go(db: Any) -> int:
            policy = config.policy_settings()
            try:
                actor = getpass.getuser()
            except Exception:
                actor = "cli"
            ctx = CliContext(
                config=config, db=db, policy=policy, actor=f"cli:{actor}", out=sys.stdout
            )
            return await handler(args, ctx)

        return asyncio.run(_with_db(config, go, reads_only=reads_only))

    return run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="siprec-recorder", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", "-c", default=None, help="TOML configuration file")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the recorder")
    p.add_argument("--config", "-c", default=argparse.SUPPRESS)
    p.add_argument("--ready-file", help="write the bound SIP listeners here once ready")
    p.set_defaults(run=cmd_serve)

    p = sub.add_parser("search", help="find recordings")
    p.add_argument("--config", "-c", default=argparse.SUPPRESS)
    p.add_argument("--number", help="any participant's number, in any form")
    p.add_argument("--since", type=_parse_time, help="ISO 8601 start (UTC if no zone)")
    p.add_argument("--until", type=_parse_time, help="ISO 8601 end")
    p.add_argument("--limit", type=_count, default=None, help="at most this many (default: all)")
    p.add_argument("--offset", type=_count, default=0, help="skip this many (newest first)")
    form = p.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="print a JSON array")
    form.add_argument("--csv", action="store_true", help="print CSV (header row first)")
    p.add_argument("--text", help='words said in the call: all required, "a phrase", prefix*')
    p.set_defaults(run=cmd_search)

    p = sub.add_parser("verify", help="check files against the index and the ledger chain")
    p.add_argument("--config", "-c", default=argparse.SUPPRESS)
    p.set_defaults(run=cmd_verify)

    p = sub.add_parser("replay", help="replay a SIP call from a pcap as a SIPREC session")
    p.add_argument("--config", "-c", default=argparse.SUPPRESS)
    try:
        from .replay import cli as replay_cli

        replay_cli.add_arguments(p)
    except ImportError:
        pass
    p.set_defaults(run=cmd_replay)

    p = sub.add_parser("config", help="configuration")
    csub = p.add_subparsers(dest="config_command", required=True)
    pc = csub.add_parser("check", help="validate the configuration and exit")
    pc.add_argument("--config", "-c", default=argparse.SUPPRESS)
    pc.set_defaults(run=cmd_config_check)

    for module in (
        "siprec_recorder.policy.cli",
        "siprec_recorder.web.cli",
        "siprec_recorder.compliance.cli",
        "siprec_recorder.assurance.cli",
        "siprec_recorder.portal_cli",
    ):
        try:
            mod = __import__(module, fromlist=["register"])
        except ImportError:
            continue
        before = set(sub.choices)
        mod.register(sub)
        for name in set(sub.choices) - before:
            _wrap_admin(sub.choices[name], reads_only=name in READ_ONLY_COMMANDS)
    from .compliance.export_cli import register_verify
    from .storage.cli import register as register_db

    register_db(sub)
    register_verify(sub)
    return parser


# Admin commands that only read the index: they refuse one that does not exist.
READ_ONLY_COMMANDS = frozenset({"report"})


def _count(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {value!r}")
    return n


def _wrap_admin(parser: argparse.ArgumentParser, reads_only: bool = False) -> None:
    """Give every leaf of an admin command ``--config`` and run its async handler."""
    parser.add_argument("--config", "-c", default=argparse.SUPPRESS)
    handler = parser.get_default("func")
    if handler is not None:
        parser.set_defaults(run=_admin(handler, reads_only))
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in set(action.choices.values()):
                _wrap_admin(child, reads_only)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "config"):
        args.config = None
    try:
        return int(args.run(args))
    except ConfigError as exc:
        print(f"siprec-recorder: configuration error: {exc}", file=sys.stderr)
        return 2
    except SchemaError as exc:
        print(f"siprec-recorder: {exc}", file=sys.stderr)
        return 2
    except OperatorError as exc:
        print(f"siprec-recorder: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`search | head`): nothing more to say, and nothing to say it
        # to; point stdout at /dev/null so the interpreter's final flush stays quiet too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
