"""``siprec-recorder export`` and ``siprec-recorder verify-export``."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["add_export", "register_verify"]


def _time(value: str) -> datetime:
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {value!r}") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def add_export(sub: Any) -> None:
    """``export`` (an admin command: the main CLI gives it the index and the actor)."""
    p = sub.add_parser("export", help="e-discovery bundle of a case, a number or a list (audited)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--case", help="a case, by title or id")
    what.add_argument("--number", help="every recording of this number (with --since/--until)")
    what.add_argument("--ids-file", help="a file of recording ids, one a line")
    p.add_argument("--since", type=_time, help="with --number: calls started at/after")
    p.add_argument("--until", type=_time, help="with --number: calls started before")
    p.add_argument("--to", required=True, help="a new folder, or a file ending in .zip")
    p.set_defaults(func=cmd_export)


async def cmd_export(args: argparse.Namespace, ctx: Any) -> int:
    from siprec_recorder.app import open_store
    from siprec_recorder.phone import number_forms
    from siprec_recorder.storage.files import FileLayout

    from .export import ExportError, export_bundle, select_recordings

    selection: dict[str, Any] = {}
    ids = None
    if args.ids_file:
        try:
            ids = [
                line.strip()
                for line in Path(args.ids_file).read_text(encoding="utf-8").splitlines()
                if line.strip()
            ]
        except OSError as exc:
            print(f"error: {args.ids_file}: {exc.strerror}", file=ctx.out)
            return 1
        selection["ids_file"] = args.ids_file
    numbers = None
    if args.number:
        numbers = number_forms(args.number, ctx.config.policy.country_code)
        selection["number"] = args.number
    if (args.since or args.until) and not args.number:
        print("error: --since/--until go with --number", file=ctx.out)
        return 1
    for k in ("case", "since", "until"):
        if getattr(args, k):
            selection[k] = str(getattr(args, k))
    store = open_store(ctx.config)
    try:
        rec_ids = await select_recordings(
            ctx.db, case=args.case, numbers=numbers, since=args.since, until=args.until, ids=ids
        )
        if ids is not None:
            missing = sorted(set(ids) - set(rec_ids))
            if missing:
                print(
                    f"error: no recording with audio for id(s) {', '.join(missing[:5])}",
                    file=ctx.out,
                )
                return 1
        keyring = None
        st = ctx.config.storage
        if st.encryption_key_file or st.encryption_key_env:
            from .crypto import load_keyring

            keyring = load_keyring(
                key_file=st.encryption_key_file or None,
                key_env=st.encryption_key_env or None,
                old_key_files=st.encryption_old_key_files,
            )
        result = await export_bundle(
            ctx.db,
            FileLayout(ctx.config.recordings_path),
            rec_ids,
            Path(args.to),
            store=store,
            keyring=keyring,
            timezone=ctx.config.policy.timezone,
            actor=ctx.actor,
            selection=selection,
        )
    except ExportError as exc:
        print(f"error: {exc}", file=ctx.out)
        return 1
    finally:
        await store.close()
    print(
        f"ok: {result.recordings} recording(s) exported to {result.path} "
        f"(SHA256SUMS {result.sums_sha256}); check it with "
        f"`siprec-recorder verify-export {result.path}`",
        file=ctx.out,
    )
    return 0


def register_verify(sub: Any) -> None:
    """``verify-export`` needs nothing but the bundle: no configuration, no index."""
    p = sub.add_parser("verify-export", help="check an export bundle offline")
    p.add_argument("path", help="the bundle's folder or zip")
    p.set_defaults(run=cmd_verify_export)


def cmd_verify_export(args: argparse.Namespace) -> int:
    from .bundle_verify import verify_bundle

    path = Path(args.path)
    if not path.exists():
        print(f"siprec-recorder: {path}: no such bundle", file=sys.stderr)
        return 2
    problems, summary = verify_bundle(path)
    for p in problems:
        print(f"problem: {p}")
    if problems:
        print(f"{len(problems)} problem(s): the bundle is NOT intact", file=sys.stderr)
        return 1
    print(f"ok: {summary}")
    return 0
