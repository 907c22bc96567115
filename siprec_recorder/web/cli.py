"""``siprec-recorder users add|set|list``: bootstrap and maintain portal accounts.

``register(subparsers)`` is called by the main CLI, which wraps each handler
``async def handler(args, ctx) -> int`` (``ctx.db``, ``ctx.out``, ``ctx.actor``).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from siprec_recorder.services.errors import WebError
from siprec_recorder.services.users import UserChange, add_user, list_users, set_user

__all__ = ["register"]


def _flag(value: str) -> bool:
    v = value.strip().lower()
    if v in ("yes", "on", "true", "1"):
        return True
    if v in ("no", "off", "false", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected yes or no, got {value!r}")


def register(subparsers: Any) -> None:
    """Add the ``users`` command to the main CLI."""
    users = subparsers.add_parser("users", help="portal accounts")
    sub = users.add_subparsers(dest="users_command", required=True)

    p = sub.add_parser("add", help="create an account (first login forces a password change)")
    p.add_argument("login")
    p.add_argument("--name", default="")
    p.add_argument("--role", choices=("standard", "admin", "auditor"), default="standard")
    p.add_argument("--password", help="first password (default: a random one, printed)")
    p.add_argument("--four-eyes", action="store_true", help="a second person confirms logins")
    p.add_argument("--totp", action="store_true", help="require a TOTP code (secret printed)")
    p.set_defaults(func=cmd_add)

    p = sub.add_parser("set", help="change an account")
    p.add_argument("login")
    p.add_argument("--name")
    p.add_argument("--role", choices=("standard", "admin", "auditor"))
    p.add_argument("--password", help="new password (the user must change it at next login)")
    p.add_argument("--active", type=_flag, metavar="yes|no")
    p.add_argument("--four-eyes", type=_flag, metavar="yes|no")
    p.add_argument("--totp", type=_flag, metavar="yes|no", help="yes: new secret; no: remove")
    p.add_argument("--unlock", action="store_true", help="clear a lockout")
    p.set_defaults(func=cmd_set)

    p = sub.add_parser("list", help="list accounts")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)


async def cmd_add(args: argparse.Namespace, ctx: Any) -> int:
    try:
        user, password, secret = await add_user(
            ctx.db,
            actor=ctx.actor,
            login=args.login,
            name=args.name,
            role=args.role,
            password=args.password,
            four_eyes=args.four_eyes,
            totp=args.totp,
        )
    except WebError as exc:
        print(f"error: {exc.message}", file=ctx.out)
        return 1
    print(f"user {user['login']} added ({user['role']})", file=ctx.out)
    if not args.password:
        print(f"first password: {password}", file=ctx.out)
    if secret:
        print(f"TOTP secret: {secret}", file=ctx.out)
    return 0


async def cmd_set(args: argparse.Namespace, ctx: Any) -> int:
    change = UserChange(
        name=args.name,
        role=args.role,
        password=args.password,
        active=args.active,
        four_eyes=args.four_eyes,
        totp=args.totp,
        unlock=args.unlock,
    )
    try:
        user, secret = await set_user(ctx.db, actor=ctx.actor, login=args.login, change=change)
    except WebError as exc:
        print(f"error: {exc.message}", file=ctx.out)
        return 1
    print(f"user {user['login']} changed", file=ctx.out)
    if secret:
        print(f"TOTP secret: {secret}", file=ctx.out)
    return 0


async def cmd_list(args: argparse.Namespace, ctx: Any) -> int:
    users = await list_users(ctx.db)
    if args.json:
        print(json.dumps(users, indent=2), file=ctx.out)
        return 0
    for u in users:
        flags = [
            f
            for f, on in (
                ("inactive", not u["active"]),
                ("four-eyes", u["four_eyes"]),
                ("totp", u["totp"]),
                ("locked", u["locked_until"]),
            )
            if on
        ]
        print(f"{u['login']:20} {u['role']:9} {u['name']:30} {' '.join(flags)}", file=ctx.out)
    return 0
