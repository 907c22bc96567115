"""The README's commands, taken from README.md itself, run as a new user runs them.

A copy of the checkout (``git ls-files``, so nothing built or recorded is carried over) in a
temp folder; the first block (virtual environment, ``pip install``, ``serve``) runs in the
background as in the user's first terminal, every other ``sh`` block then runs in order with
bash in a second "terminal", and each ``text`` block right after an ``sh`` block is the output
it must print. In a ``text`` block, ``...`` stands for any text within a line and a line that
is only ``...`` for any number of lines.

What is adapted, and why (each adaptation must still find its text, so the README cannot drift
away from it):

- ``python3 -m venv .venv`` gets ``--system-site-packages``: the dependencies come from the
  interpreter running the tests (already pinned by constraints.txt), so no download is needed;
  the recorder itself is still built and installed from the copy by ``pip install``.
- ``127.0.0.1:5060`` becomes a free port, and the other listeners (portal, metrics, the RTP
  range) are moved to free ports with ``SIPREC__*`` variables: tests never take fixed ports.

Not run: ``bash scripts/run-tests`` (it is what runs this test), the benchmarks (minutes each),
the container section (no Docker in CI).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from siprec_recorder.testing import _free_rtp_range

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

NOT_RUN = {
    "bash scripts/run-tests": "runs this test",
    "python bench/": "benchmarks take minutes each",
}
NOT_RUN_SECTIONS = ("Benchmarks", "Container")

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@dataclass
class Block:
    section: str
    commands: str
    output: str | None


def readme_blocks(text: str) -> list[Block]:
    """Every ``sh`` block, with the ``text`` block that follows it (if any)."""
    blocks: list[Block] = []
    section = ""
    fence = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)
    pos = 0
    for m in fence.finditer(text):
        for line in text[pos : m.start()].splitlines():
            if line.startswith("## "):
                section = line[3:].strip()
        between = text[pos : m.start()]
        pos = m.end()
        kind, body = m.group(1), m.group(2)
        if kind == "sh":
            blocks.append(Block(section, body, None))
        elif kind == "text" and blocks and blocks[-1].output is None and not between.strip():
            blocks[-1].output = body
    return blocks


def output_pattern(expected: str) -> re.Pattern[str]:
    parts: list[str] = []
    for line in expected.splitlines():
        if line.strip() == "...":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(".*?".join(re.escape(p) for p in line.split("...")) + r"[ \t]*\n")
    return re.compile("".join(parts))


def assert_output(expected: str, actual: str, what: str) -> None:
    actual = actual if actual.endswith("\n") else actual + "\n"
    assert output_pattern(expected).fullmatch(actual), (
        f"{what}: output differs from the README\n--- README\n{expected}--- actual\n{actual}"
    )


def free_port() -> int:
    """A port free for both UDP and TCP."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = int(u.getsockname()[1])
            with socket.socket() as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


def test_readme_blocks_parse() -> None:
    blocks = readme_blocks(README.read_text(encoding="utf-8"))
    assert blocks[0].commands.startswith("python3 -m venv .venv && . .venv/bin/activate")
    assert (
        blocks[0].commands.rstrip().endswith("siprec-recorder serve --config config/recorder.toml")
    )
    assert blocks[1].commands.strip() == "bash scripts/run-tests"
    sections = {b.section for b in blocks}
    assert {"Try it", *NOT_RUN_SECTIONS} <= sections
    assert output_pattern("a ... b\n...\nc\n").fullmatch("a x y b\n1\n2\nc\n")
    assert not output_pattern("a\nc\n").fullmatch("a\nb\nc\n")


def _copy_checkout(dest: Path) -> None:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=False)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    for name in listed.stdout.decode().split("\0"):
        if not name:
            continue
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def test_readme_commands_work_as_written(tmp_path: Path) -> None:
    text = README.read_text(encoding="utf-8")
    blocks = readme_blocks(text)
    work = tmp_path / "checkout"
    work.mkdir()
    _copy_checkout(work)

    sip_port = free_port()
    rtp_min, rtp_max = _free_rtp_range()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SIPREC_", "PYTHON", "VIRTUAL_ENV", "PIP_"))
    }
    # The interpreter of the tests is the "python3" of this machine.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        {
            "SIPREC__WEB__LISTEN": f"127.0.0.1:{free_port()}",
            "SIPREC__METRICS__LISTEN": f"127.0.0.1:{free_port()}",
            "SIPREC__RTP__PORT_MIN": str(rtp_min),
            "SIPREC__RTP__PORT_MAX": str(rtp_max),
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        }
    )

    def adapt(commands: str) -> str:
        return commands.replace(":5060", f":{sip_port}")

    first = blocks[0]
    assert "python3 -m venv .venv" in first.commands
    setup = adapt(
        first.commands.replace(
            "python3 -m venv .venv", "python3 -m venv --system-site-packages .venv"
        )
    )
    # The shipped config listens on 127.0.0.1:5060; the test's port comes in by environment
    # (what an operator would do), and the expected output is compared with the port swapped.
    env["SIPREC__SIP__LISTEN"] = f'["udp:127.0.0.1:{sip_port}", "tcp:127.0.0.1:{sip_port}"]'
    serve_log = tmp_path / "serve.log"
    with open(serve_log, "wb") as log:
        serve = subprocess.Popen(
            ["bash", "-c", setup],
            cwd=work,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 600  # pip builds and installs the package first
        while "; index " not in _read(serve_log):  # the last line serve prints when up
            assert serve.poll() is None, f"serve ended early:\n{_read(serve_log)}"
            assert time.monotonic() < deadline, f"serve not up:\n{_read(serve_log)}"
            time.sleep(0.5)
        # The recorder that runs is the one pip installed into .venv, not a checkout's.
        where = subprocess.run(
            [
                str(work / ".venv" / "bin" / "python"),
                "-c",
                "import siprec_recorder; print(siprec_recorder.__file__)",
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert where.stdout.startswith(str(work / ".venv")), where.stdout + where.stderr
        if first.output is not None:
            serve_lines = [
                line
                for line in _read(serve_log).splitlines(keepends=True)
                if " siprec_recorder: " in line
            ]
            assert_output(adapt(first.output), "".join(serve_lines), "first command (serve)")

        ran = 0
        for block in blocks[1:]:
            if block.section in NOT_RUN_SECTIONS or any(
                block.commands.startswith(prefix) for prefix in NOT_RUN
            ):
                continue
            res = subprocess.run(
                ["bash", "-e", "-o", "pipefail", "-c", adapt(block.commands)],
                cwd=work,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=180,
            )
            assert "Traceback" not in res.stdout, res.stdout
            assert res.returncode == 0, f"{block.commands}\nexit {res.returncode}\n{res.stdout}"
            if block.output is not None:
                assert_output(adapt(block.output), res.stdout, block.commands.splitlines()[0])
            ran += 1
            if ". .venv/bin/activate" in block.commands:
                # the same terminal stays activated for the blocks after it
                env["PATH"] = f"{work / '.venv' / 'bin'}{os.pathsep}{env['PATH']}"
                env["VIRTUAL_ENV"] = str(work / ".venv")
            _wait_until_finished(serve_log)
        assert ran >= 5
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGINT)  # Ctrl-C in the first terminal
            try:
                serve.wait(120)
            except subprocess.TimeoutExpired:
                os.killpg(serve.pid, signal.SIGKILL)
                serve.wait()
    log_text = _read(serve_log)
    assert "stopping: ending live sessions" in log_text
    assert "Traceback" not in log_text, log_text


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _wait_until_finished(serve_log: Path, timeout: float = 60.0) -> None:
    """The README shows what a person sees a moment later; a script waits for the recorder to
    finish each call (one "finished" line per "recording" line) before the next block."""
    deadline = time.monotonic() + timeout
    while True:
        text = _read(serve_log)
        started = len(re.findall(r": recording \w+ \(", text))
        finished = len(re.findall(r": recording \w+ finished", text))
        if finished >= started:
            return
        assert time.monotonic() < deadline, text[-3000:]
        time.sleep(0.2)
