"""``reconcile CDR-FILE`` and ``alerts test --channel ...``.

``reconcile`` exits 0 when every regulated call of the file was recorded and every row was
read, 1 when it found exceptions or bad rows (the report says which), 2 when it refused the
file (unknown layout, unreadable file) with one line saying why.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from siprec_recorder.errors import ConfigError, RecorderError
from siprec_recorder.isotime import utc_iso

__all__ = ["register"]


async def cmd_reconcile(args: argparse.Namespace, ctx: Any) -> int:
    from siprec_recorder.policy.engine import PolicyEngine

    from .service import run_reconciliation

    engine = PolicyEngine(ctx.db, ctx.policy)
    try:
        report = await run_reconciliation(
            ctx.db, engine, ctx.config, args.file, layout=args.format, actor=ctx.actor
        )
    except (RecorderError, ConfigError) as exc:
        print(f"siprec-recorder reconcile: {exc}", file=sys.stderr)
        return 2
    finally:
        await engine.close()
    if args.csv:
        try:
            Path(args.csv).write_text(report.exceptions_csv(), encoding="utf-8")
        except OSError as exc:
            print(f"siprec-recorder reconcile: cannot write {args.csv}: {exc}", file=sys.stderr)
            return 2
    if args.json:
        print(report.to_json(), file=ctx.out)
    else:
        print(report.to_table(), file=ctx.out, end="")
    for error in report.row_errors:
        print(f"{Path(args.file).name}: bad row, {error}", file=sys.stderr)
    return 1 if report.exceptions or report.row_errors else 0


async def cmd_alerts_test(args: argparse.Namespace, ctx: Any) -> int:
    from .alerts import alert_id
    from .channels import DeliveryError
    from .settings import build_channels

    channels = {c.name: c for c in build_channels(ctx.config.alerts)}
    wanted = list(channels) if args.channel == "all" else [args.channel]
    now = datetime.now(UTC)
    failed = 0
    for name in wanted:
        channel = channels.get(name)
        if channel is None:
            print(
                f"error: the {name} channel is not configured (see [alerts] in the config)",
                file=sys.stderr,
            )
            failed += 1
            continue
        alert = {
            "id": alert_id("test", f"{name}:{now.isoformat()}"),
            "rule": "test",
            "severity": "info",
            "subject": "test",
            "summary": f"test alert from siprec-recorder ({ctx.actor})",
            "details": {"channel": name},
            "created_at": utc_iso(now),
        }
        try:
            await channel.deliver(alert)
        except DeliveryError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"ok: test alert {alert['id']} delivered by {name}", file=ctx.out)
    return 1 if failed else 0


def register(subparsers: Any) -> None:
    """Add ``reconcile`` and ``alerts`` to the main parser's subparsers."""
    from .settings import LAYOUT_NAMES

    p = subparsers.add_parser(
        "reconcile", help="match operator CDRs against the recordings (exceptions reported)"
    )
    p.add_argument("file", help="CDR file, CSV or XLSX")
    p.add_argument(
        "--format",
        choices=[n for n in LAYOUT_NAMES if n != "auto"],
        help="column layout (default: [reconcile] layout, else detected from the header)",
    )
    p.add_argument(
        "--json", action="store_true", help='print {"summary": ..., "exceptions": [...]}'
    )
    p.add_argument("--csv", metavar="OUT", help="write every exception to this CSV file")
    p.set_defaults(func=cmd_reconcile)

    alerts = subparsers.add_parser("alerts", help="alert delivery")
    asub = alerts.add_subparsers(dest="alerts_command", required=True)
    p = asub.add_parser("test", help="send a test alert through a channel")
    p.add_argument("--channel", required=True, choices=("webhook", "email", "syslog", "all"))
    p.set_defaults(func=cmd_alerts_test)
