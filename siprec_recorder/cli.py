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
import getpass
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from .config import Config, load_config
from .errors import ConfigError

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


def number_forms(value: str, country_code: str) -> list[str]:
    """The index forms a number typed by a user may take (E.164 first)."""
    from .phone import normalize_number, user_part

    forms: list[str] = []
    n = normalize_number(value, country_code=country_code)
    if n:
        forms.append(n)
    raw = user_part(value)
    if raw and raw not in forms:
        forms.append(raw)
    return forms


async def _with_db(config: Config, fn: Callable[[Any], Awaitable[int]]) -> int:
    from .storage.db import Database

    config.recordings_path.mkdir(parents=True, exist_ok=True)
    db = Database(config.database_url)
    await db.open()
    try:
        return await fn(db)
    finally:
        await db.close()


def cmd_serve(args: argparse.Namespace) -> int:
    from .app import run

    config = _load(args)
    run(config, Path(args.ready_file) if args.ready_file else None)
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from .storage.index import SqlIndex

    config = _load(args)

    async def go(db: Any) -> int:
        index = SqlIndex(db)
        numbers = number_forms(args.number, config.policy.country_code) if args.number else None
        rows = await index.search(
            number=numbers, since=args.since, until=args.until, limit=args.limit, offset=args.offset
        )
        if args.json:
            json.dump(rows, sys.stdout, indent=2, default=str)
            sys.stdout.write("\n")
        else:
            for r in rows:
                who = ", ".join(p.get("number") or p.get("aor") or "?" for p in r["participants"])
                duration = r["duration_s"] or 0
                print(f"{r['start']}  {duration:7.1f}s  {r['state']:<11} {who}  {r['file'] or ''}")
            print(f"{len(rows)} recording(s)")
        return 0

    return asyncio.run(_with_db(config, go))


def cmd_verify(args: argparse.Namespace) -> int:
    from .storage.files import FileLayout
    from .storage.integrity import verify

    config = _load(args)

    async def go(db: Any) -> int:
        problems = await verify(db, FileLayout(config.recordings_path))
        for p in problems:
            print(f"{p.kind}: {p.subject}: {p.detail}")
        if problems:
            print(f"{len(problems)} problem(s) found", file=sys.stderr)
            return 1
        print("ok: every file matches the index and the ledger chain is intact")
        return 0

    return asyncio.run(_with_db(config, go))


def cmd_replay(args: argparse.Namespace) -> int:
    from .replay import cli as replay_cli

    return asyncio.run(replay_cli.run(args))


def cmd_config_check(args: argparse.Namespace) -> int:
    config = _load(args)
    print(f"ok: {config.source}")
    return 0


def _admin(
    handler: Callable[[argparse.Namespace, CliContext], Awaitable[int]],
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

        return asyncio.run(_with_db(config, go))

    return run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="siprec-recorder", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", "-c", default=None, help="TOML configuration file")
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
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print a JSON array")
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
        "siprec_recorder.portal_cli",
    ):
        try:
            mod = __import__(module, fromlist=["register"])
        except ImportError:
            continue
        before = set(sub.choices)
        mod.register(sub)
        for name in set(sub.choices) - before:
            _wrap_admin(sub.choices[name])
    return parser


def _wrap_admin(parser: argparse.ArgumentParser) -> None:
    """Give every leaf of an admin command ``--config`` and run its async handler."""
    parser.add_argument("--config", "-c", default=argparse.SUPPRESS)
    handler = parser.get_default("func")
    if handler is not None:
        parser.set_defaults(run=_admin(handler))
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in set(action.choices.values()):
                _wrap_admin(child)


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
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
