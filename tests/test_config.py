"""Configuration: defaults work, the shipped file works, errors name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from siprec_recorder.config import build_config, load_config, parse_listen
from siprec_recorder.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_config_equals_defaults() -> None:
    shipped = load_config(ROOT / "config" / "recorder.toml", environ={})
    defaults = load_config(None, environ={})
    assert shipped.sip == defaults.sip
    assert shipped.rtp == defaults.rtp
    assert shipped.storage == defaults.storage
    assert shipped.recording == defaults.recording
    assert shipped.policy == defaults.policy
    assert shipped.web.listen.startswith("127.0.0.1:")


def test_default_database_is_sqlite_inside_recordings_dir(tmp_path: Path) -> None:
    c = build_config({"storage": {"recordings_dir": str(tmp_path / "rec")}})
    assert c.database_url == f"sqlite+aiosqlite:///{(tmp_path / 'rec').resolve()}/index.sqlite3"


def test_environment_overrides_file() -> None:
    c = load_config(
        ROOT / "config" / "recorder.toml",
        environ={
            "SIPREC__RTP__PORT_MIN": "12000",
            "SIPREC__SIP__LISTEN": '["udp:0.0.0.0:5080"]',
            "SIPREC__RECORDING__CHANNELS": "stereo",
            "SIPREC__WEB__ENABLED": "false",
        },
    )
    assert c.rtp.port_min == 12000
    assert c.sip.listen == ("udp:0.0.0.0:5080",)
    assert c.recording.channels == "stereo"
    assert c.web.enabled is False


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"rtp": {"port_min": 7}},
            "[rtp] port_min: must be an even number between 1024 and 65534, got 7",
        ),
        ({"rtp": {"port_min": "x"}}, "[rtp] port_min: expected an integer, got 'x'"),
        (
            {"sip": {"listen": ["sctp:1.2.3.4:5060"]}},
            "[sip] listen: expected udp:|tcp:|tls:HOST:PORT",
        ),
        (
            {"sip": {"listen": ["tls:127.0.0.1:5061"]}},
            "[sip] tls_certificate: a tls: listener needs",
        ),
        (
            {"sip": {"allowed_sources": ["10.0.0.0/33"]}},
            "[sip] allowed_sources: '10.0.0.0/33' is not a CIDR",
        ),
        ({"recording": {"channels": "quad"}}, '[recording] channels: must be "mono" or "stereo"'),
        ({"recording": {"mp3_quality": 10}}, "[recording] mp3_quality: must be between 0"),
        (
            {"policy": {"timezone": "Mars/Olympus"}},
            "[policy] timezone: unknown time zone 'Mars/Olympus'",
        ),
        (
            {"policy": {"unknown_numbers": "maybe"}},
            '[policy] unknown_numbers: must be "record" or "decline"',
        ),
        ({"storage": {"colour": "blue"}}, "[storage] colour: unknown key"),
        ({"nonsense": {}}, "[nonsense]: unknown section"),
    ],
)
def test_errors_name_the_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_config(data)
    assert str(info.value).startswith(message)


def test_bad_toml_is_a_config_error(tmp_path: Path) -> None:
    p = tmp_path / "bad.toml"
    p.write_text("[sip\nlisten = 3\n")
    with pytest.raises(ConfigError, match="bad.toml"):
        load_config(p, environ={})


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml", environ={})


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("udp:127.0.0.1:5060", ("udp", "127.0.0.1", 5060)),
        ("TCP:0.0.0.0:0", ("tcp", "0.0.0.0", 0)),
        ("tls:[::1]:5061", ("tls", "::1", 5061)),
    ],
)
def test_parse_listen(spec: str, expected: tuple[str, str, int]) -> None:
    assert parse_listen(spec) == expected
