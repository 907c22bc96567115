"""The ``templates`` and ``numbers`` command handlers, called with a context."""

from __future__ import annotations

import argparse
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import pytest

from siprec_recorder.policy.cli import register
from siprec_recorder.policy.settings import PolicySettings
from siprec_recorder.storage.db import Database


@dataclass
class Ctx:
    db: Database
    policy: PolicySettings = field(default_factory=PolicySettings)
    actor: str = "cli:fm"
    out: TextIO = field(default_factory=io.StringIO)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="siprec-recorder")
    register(p.add_subparsers(dest="command", required=True))
    return p


async def run(ctx: Ctx, *argv: str) -> int:
    ctx.out = io.StringIO()
    args = parser().parse_args(list(argv))
    code: int = await args.func(args, ctx)
    return code


@pytest.fixture
def ctx(db: Database) -> Ctx:
    return Ctx(db=db)


async def test_templates_and_numbers(ctx: Ctx, capsys: pytest.CaptureFixture[str]) -> None:
    assert await run(ctx, "templates", "set", "office", "--slot", "mon-fri 08:00-18:00") == 0
    assert ctx.out.getvalue() == "template office: mon-fri 08:00-18:00\n"
    assert await run(ctx, "templates", "list", "--json") == 0
    assert json.loads(ctx.out.getvalue()) == [
        {"name": "office", "slots": ["mon-fri 08:00-18:00"], "numbers": 0}
    ]
    assert (
        await run(
            ctx,
            "numbers",
            "add",
            "0470000001",
            "--user",
            "alice",
            "--name",
            "Alice A",
            "--template",
            "office",
            "--beep",
            "on",
        )
        == 0
    )
    assert ctx.out.getvalue() == (
        "added +32470000001 Alice A <alice>: active, managed, auto, professional, beep on,"
        " notify off, self service off, schedule template office\n"
    )
    assert await run(ctx, "numbers", "show", "+32470000001", "--json") == 0
    shown = json.loads(ctx.out.getvalue())
    assert shown["template"] == "office" and shown["beep"] is True
    assert await run(ctx, "numbers", "show", "+32470000001") == 0
    assert "status:       auto\n" in ctx.out.getvalue()
    assert await run(ctx, "numbers", "add", "+32470000002", "--user", "bob") == 0
    assert await run(ctx, "numbers", "list") == 0
    lines = ctx.out.getvalue().splitlines()
    assert lines[0].split() == ["number", "user", "active", "managed", "status", "mode", "schedule"]
    assert lines[1].split()[:2] == ["+32470000001", "alice"]
    assert await run(ctx, "numbers", "list", "--json", "--user", "bob") == 0
    assert [v["number"] for v in json.loads(ctx.out.getvalue())] == ["+32470000002"]
    assert await run(ctx, "numbers", "schedule", "+32470000002", "--slot", "sat 09:00-12:00") == 0
    assert ctx.out.getvalue() == "+32470000002: schedule sat 09:00-12:00\n"
    assert (
        await run(ctx, "numbers", "set", "+32470000002", "--managed", "yes", "--status", "auto")
        == 0
    )
    assert (
        await run(
            ctx, "numbers", "set", "+32470000001", "--status", "manual", "--self-service", "on"
        )
        == 0
    )
    assert await run(ctx, "numbers", "mode", "+32470000001", "private", "--by-user") == 0
    assert ctx.out.getvalue() == "+32470000001: mode private\n"
    assert await run(ctx, "numbers", "remove", "+32470000002") == 0
    assert await run(ctx, "numbers", "list", "--active-only", "--json") == 0
    assert [v["number"] for v in json.loads(ctx.out.getvalue())] == ["+32470000001"]
    assert await run(ctx, "templates", "delete", "office") == 2
    assert capsys.readouterr().err == (
        "error: template office is used by 1 number (+32470000001)\n"
    )


async def test_errors_go_to_stderr_with_code_2(
    ctx: Ctx, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run(ctx, "numbers", "add", "+32470000001", "--user", "alice") == 0
    capsys.readouterr()
    assert await run(ctx, "numbers", "mode", "+32470000001", "private", "--by-user") == 2
    assert capsys.readouterr().err == (
        "error: number +32470000001: self service is off, the user cannot change the mode\n"
    )
    assert await run(ctx, "numbers", "set", "+32470000001", "--status", "auto") == 2
    assert capsys.readouterr().err == (
        "error: number +32470000001: auto cannot be set on an unmanaged number\n"
    )
    assert await run(ctx, "numbers", "show", "+32479999999") == 2
    assert capsys.readouterr().err == "error: number +32479999999 does not exist\n"
    assert await run(ctx, "templates", "set", "t", "--slot", "mon 08:00-08:02") == 2
    assert capsys.readouterr().err == (
        'error: template t: slot "mon 08:00-08:02" lasts 2 minutes, the minimum is 5\n'
    )
    assert await run(ctx, "numbers", "import", "/nonexistent/file.csv") == 2
    assert capsys.readouterr().err.startswith("error: No such file or directory")
    assert ctx.out.getvalue() == ""


async def test_import_export(ctx: Ctx, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "fleet.csv"
    good.write_text(
        "number;user;template;managed;status;mode;beep;notify;self_service\n"
        "+32470000001;alice;;no;manual;professional;no;no;no\n"
        "+32470000002;bob;;no;manual;professional;no;no;no\n",
        encoding="utf-8-sig",
    )
    assert await run(ctx, "numbers", "import", str(good), "--dry-run") == 0
    assert ctx.out.getvalue() == (
        "fleet.csv: 2 rows: would add 2, changed 0, unchanged 0, new users 2"
        " (dry run, nothing changed)\n"
    )
    assert await run(ctx, "numbers", "list", "--json") == 0
    assert json.loads(ctx.out.getvalue()) == []
    assert await run(ctx, "numbers", "import", str(good), "--json") == 0
    assert json.loads(ctx.out.getvalue())["added"] == 2
    out = tmp_path / "out.csv"
    assert await run(ctx, "numbers", "export", str(out)) == 0
    assert ctx.out.getvalue() == f"exported 2 numbers to {out}\n"
    assert out.read_text().splitlines()[1].startswith("+32470000001,alice,,no,manual")
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "number,user,template,managed,status,mode,beep,notify,self_service\n"
        "+32470000003,carol,nope,,,,,,\n"
        "+32470000004,dave,,,auto,,,,\n"
    )
    capsys.readouterr()
    assert await run(ctx, "numbers", "import", str(bad)) == 2
    assert capsys.readouterr().err == (
        "error: import refused, nothing changed: 2 problem(s)\n"
        "  row 2, template: template nope does not exist\n"
        "  row 3, status: number +32470000004: auto cannot be set on an unmanaged number\n"
    )


def test_registers_with_the_main_cli() -> None:
    from siprec_recorder.cli import build_parser

    args = build_parser().parse_args(["numbers", "mode", "+32470000001", "private", "--by-user"])
    assert args.by_user and args.mode == "private" and callable(args.run)
    args = build_parser().parse_args(["templates", "set", "x", "--slot", "mon 08:00-09:00"])
    assert args.slot == ["mon 08:00-09:00"]


def test_progress_bar() -> None:
    from siprec_recorder.policy.cli import _progress_bar

    stream = io.StringIO()
    show = _progress_bar(stream)
    show(50_000, 100_000)
    show(100_000, 100_000)
    assert stream.getvalue() == (
        "\r[###############...............]  50% 50,000/100,000"
        "\r[##############################] 100% 100,000/100,000\n"
    )
