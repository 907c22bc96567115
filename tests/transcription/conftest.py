"""Fixtures of the transcription tests: the integration recorder, and a PostgreSQL.

``pg_url`` is ``SIPREC_TEST_DATABASE_URL`` when set; otherwise, where Debian's PostgreSQL
server binaries are installed, a private server started for this session in a temporary
folder on a free loopback port (as the ``postgres`` user when running as root, which
``initdb`` refuses to be), stopped at the end. Empty when neither is available.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import recorder_factory

__all__ = ["pg_url", "recorder_factory"]


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def pg_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = os.environ.get("SIPREC_TEST_DATABASE_URL", "")
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if env or not bins:
        yield env
        return
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        yield ""
        return
    bindir = Path(bins[-1])
    # Not under pytest's own folder: that one is private to root, and the server runs as
    # postgres.
    root = Path(tempfile.mkdtemp(prefix="siprec-test-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data = root / "data"
    subprocess.run(
        [*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"],
        check=True,
        capture_output=True,
    )
    port = _free_port()
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    # The server keeps pg_ctl's output open: it writes to its own log, never to a pipe.
    subprocess.run(
        [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-l"]
        + [str(root / "server.log"), "start"],
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)
