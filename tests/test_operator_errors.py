"""Operator mistakes through the real command: one line on stderr that names the key, path or
port and what to do, a non-zero exit, never a traceback; and nothing invented (no folder, no
empty index) behind the operator's back."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from siprec_recorder.testing import RecorderProcess, write_config

ROOT = Path(__file__).resolve().parents[1]


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SIPREC_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "siprec_recorder", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        # an error comes within seconds; a recorder that starts instead is a failure
        timeout=60,
    )


def one_line_error(res: subprocess.CompletedProcess[str], *words: str) -> str:
    """The single error line; asserts exit code 2, no traceback, and that it names ``words``."""
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


@pytest.fixture
def held_udp() -> Iterator[int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


@pytest.fixture
def held_tcp() -> Iterator[int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def test_sip_udp_port_taken(tmp_path: Path, held_udp: int) -> None:
    cfg = write_config(tmp_path, sip={"listen": [f"udp:127.0.0.1:{held_udp}"]})
    res = run("serve", "--config", str(cfg), cwd=tmp_path)
    line = one_line_error(res, "[sip] listen", f"udp:127.0.0.1:{held_udp}", "in use")
    assert "listening" not in res.stdout + res.stderr, line


def test_sip_tcp_port_taken_names_that_listener(tmp_path: Path, held_tcp: int) -> None:
    cfg = write_config(tmp_path, sip={"listen": ["udp:127.0.0.1:0", f"tcp:127.0.0.1:{held_tcp}"]})
    res = run("serve", "--config", str(cfg), cwd=tmp_path)
    one_line_error(res, "[sip] listen", f"tcp:127.0.0.1:{held_tcp}", "in use")


def test_sip_address_not_on_this_host(tmp_path: Path) -> None:
    cfg = write_config(  # TEST-NET-1: on no interface of any host
        tmp_path, sip={"listen": ["udp:192.0.2.1:5060"], "allowed_sources": ["192.0.2.0/24"]}
    )
    res = run("serve", "--config", str(cfg), cwd=tmp_path)
    one_line_error(res, "[sip] listen", "udp:192.0.2.1:5060", "no interface")


def test_missing_recordings_folder_is_refused_not_created(tmp_path: Path) -> None:
    share = tmp_path / "share-not-mounted"
    cfg = write_config(tmp_path, storage={"recordings_dir": str(share)})
    share.rmdir()
    res = run("serve", "--config", str(cfg), cwd=tmp_path)
    one_line_error(
        res, "[storage] recordings_dir", str(share), "does not exist", "create_recordings_dir"
    )
    assert not share.exists()


def test_missing_recordings_folder_created_when_configured(tmp_path: Path) -> None:
    new = tmp_path / "new" / "recordings"
    cfg = write_config(
        tmp_path, storage={"recordings_dir": str(new), "create_recordings_dir": True}
    )
    (tmp_path / "new" / "recordings").rmdir()
    (tmp_path / "new").rmdir()
    rec = RecorderProcess(workdir=tmp_path, config_path=cfg, recordings=new)
    rec.start()
    try:
        assert new.is_dir()
        assert (new / "index.sqlite3").is_file()
    finally:
        rec.stop()


def test_recordings_folder_that_is_a_file(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    (tmp_path / "recordings").rmdir()
    (tmp_path / "recordings").write_text("not a folder")
    res = run("serve", "--config", str(cfg), cwd=tmp_path)
    one_line_error(res, "[storage] recordings_dir", str(tmp_path / "recordings"), "is a file")


@pytest.fixture
def unwritable_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder this process cannot create files in: mode 0555, or (root writes anywhere) a
    read-only tmpfs, as a share mounted read-only would be."""
    target = tmp_path / "readonly"
    target.mkdir()
    if os.geteuid() != 0:
        target.chmod(0o555)
        yield target
        target.chmod(0o755)
        return
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(target)],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {res.stderr.strip()}")
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], capture_output=True)


def test_recordings_folder_not_writable(tmp_path: Path, unwritable_folder: Path) -> None:
    cfg = write_config(tmp_path, storage={"recordings_dir": str(unwritable_folder)})
    res = run("serve", "--config", str(cfg), cwd=tmp_path)
    one_line_error(res, "[storage] recordings_dir", str(unwritable_folder), "not writable")


def test_bad_toml(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[sip\nlisten = 3\n")
    res = run("serve", "--config", str(cfg), cwd=tmp_path)
    one_line_error(res, "configuration error", "bad.toml")


def test_config_file_not_found(tmp_path: Path) -> None:
    res = run("serve", "--config", "nope.toml", cwd=tmp_path)
    one_line_error(res, "nope.toml", "not found")


def test_unknown_key_names_the_closest(tmp_path: Path) -> None:
    cfg = tmp_path / "r.toml"
    cfg.write_text('[sip]\nallowed_source = ["10.0.0.0/8"]\n')
    res = run("config", "check", "--config", str(cfg), cwd=tmp_path)
    one_line_error(res, "[sip] allowed_source: unknown key", "did you mean allowed_sources?")


def test_bad_value(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, recording={"channels": "quad"})
    res = run("serve", "--config", str(cfg), cwd=tmp_path)
    one_line_error(res, '[recording] channels: must be "mono" or "stereo"')


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"SIPREC__RTP__PORT_MIN": "abc"}, ["[rtp] port_min", "SIPREC__RTP__PORT_MIN"]),
        ({"SIPREC__WEB__ENABLED": "maybe"}, ["[web] enabled", "expected true or false"]),
        (
            {"SIPREC__WEB__ENABLED": "1", "SIPREC__WEB__LISTEN": "48080"},
            ["[web] listen: expected HOST:PORT, got '48080'", "SIPREC__WEB__LISTEN"],
        ),
        (
            {"SIPREC__SIP__ALLOWED_SOURCES": "10.0.0.0/33"},
            ["[sip] allowed_sources", "not a CIDR"],
        ),
        ({"SIPREC__SIPP__LISTEN": "x"}, ["[sipp]: unknown section", "did you mean sip?"]),
        ({"SIPREC__RTP": "x"}, ["SIPREC__RTP", "expected SIPREC__SECTION__KEY"]),
    ],
)
def test_bad_environment_value(tmp_path: Path, env: dict[str, str], words: list[str]) -> None:
    cfg = write_config(tmp_path)
    res = run("serve", "--config", str(cfg), cwd=tmp_path, env=env)
    one_line_error(res, *words)


def test_tls_certificate_missing(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path,
        sip={
            "listen": ["tls:127.0.0.1:0"],
            "tls_certificate": str(tmp_path / "cert.pem"),
            "tls_private_key": str(tmp_path / "key.pem"),
        },
    )
    res = run("serve", "--config", str(cfg), cwd=tmp_path)
    one_line_error(res, "[sip] tls_certificate", "cert.pem")


def test_encryption_key_file_missing(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, storage={"encryption_key_file": str(tmp_path / "rec.key")})
    res = run("serve", "--config", str(cfg), cwd=tmp_path)
    one_line_error(res, "[storage] encryption_key_file", "rec.key")


def test_database_unreachable(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there
    url = f"postgresql+asyncpg://rec:secret@127.0.0.1:{port}/x"
    pytest.importorskip("asyncpg")
    cfg = write_config(tmp_path, storage={"database_url": url})
    res = run("serve", "--config", str(cfg), cwd=tmp_path)
    line = one_line_error(res, "[storage] database_url", f"127.0.0.1:{port}")
    assert "secret" not in line


@pytest.mark.parametrize(
    "command",
    [
        ["search"],
        ["search", "--json"],
        ["verify"],
        ["report", "completeness", "--since", "2026-01-01"],
    ],
)
def test_reading_commands_refuse_a_missing_index(tmp_path: Path, command: list[str]) -> None:
    """Run from the wrong folder (no config/recorder.toml here, so the built-in defaults and
    ./recordings): no empty index is made and nothing reports "0 recordings" or "ok"."""
    res = run(*command, cwd=tmp_path)
    one_line_error(res, "no index at", str(tmp_path / "recordings" / "index.sqlite3"))
    assert res.stdout == ""
    assert not (tmp_path / "recordings").exists()


def test_admin_commands_refuse_a_missing_recordings_folder(tmp_path: Path) -> None:
    res = run("numbers", "add", "+32470000001", "--user", "trader1", cwd=tmp_path)
    one_line_error(res, "[storage] recordings_dir", "does not exist")
    assert not (tmp_path / "recordings").exists()


def test_unknown_siprec_variable_is_a_warning_with_the_right_name(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    res = run("config", "check", "--config", str(cfg), cwd=tmp_path, env={"SIPREC_WEB_LISTEN": "x"})
    assert res.returncode == 0, res.stderr
    assert (
        "warning: environment SIPREC_WEB_LISTEN is not a setting and was ignored; "
        "did you mean SIPREC__WEB__LISTEN?"
    ) in res.stderr


def test_version() -> None:
    from siprec_recorder import __version__

    res = run("--version", cwd=ROOT)
    assert res.returncode == 0
    assert res.stdout.strip() == f"siprec-recorder {__version__}"
