"""Configuration: defaults work, the shipped file works, errors name the key."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from siprec_recorder.config import build_config, load_config
from siprec_recorder.errors import ConfigError
from siprec_recorder.sip.transport import parse_listen

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_config_equals_defaults() -> None:
    shipped = load_config(ROOT / "config" / "recorder.toml", environ={})
    defaults = load_config(None, environ={})
    assert shipped.sip == defaults.sip
    assert shipped.rtp == defaults.rtp
    # The one difference: a fresh checkout may create ./recordings; a server must not.
    assert shipped.storage.create_recordings_dir and not defaults.storage.create_recordings_dir
    assert replace(shipped.storage, create_recordings_dir=False) == defaults.storage
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
            "[rtp] port_min: must be between 1024 and 65535, got 8",
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


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("0", False), ("1", True), ("no", False), ("yes", True), ("false", False), ("TRUE", True)],
)
def test_booleans_from_the_environment(raw: str, expected: bool) -> None:
    c = load_config(None, environ={"SIPREC__WEB__ENABLED": raw})
    assert c.web.enabled is expected


@pytest.mark.parametrize(("value", "expected"), [(0, False), (1, True), ("off", False)])
def test_booleans_in_the_file(value: object, expected: bool) -> None:
    assert build_config({"web": {"enabled": value}}).web.enabled is expected


def test_a_string_key_takes_the_variable_as_a_string() -> None:
    c = load_config(None, environ={"SIPREC__WEB__LISTEN": "127.0.0.1:48080"})
    assert c.web.listen == "127.0.0.1:48080"
    c = load_config(None, environ={"SIPREC__POLICY__COUNTRY_CODE": "44"})
    assert c.policy.country_code == "44"  # TOML would have made it the integer 44
    with pytest.raises(ConfigError) as info:
        load_config(None, environ={"SIPREC__WEB__LISTEN": "48080"})
    assert str(info.value) == (
        "[web] listen: expected HOST:PORT, got '48080' (from environment SIPREC__WEB__LISTEN)"
    )


def test_a_list_key_takes_a_comma_separated_variable() -> None:
    c = load_config(None, environ={"SIPREC__SIP__ALLOWED_SOURCES": "10.0.0.0/8, 192.0.2.7/32"})
    assert c.sip.allowed_sources == ("10.0.0.0/8", "192.0.2.7/32")
    c = load_config(None, environ={"SIPREC__SIP__ALLOWED_SOURCES": '["10.0.0.0/8"]'})
    assert c.sip.allowed_sources == ("10.0.0.0/8",)


def test_odd_port_bounds_narrow_to_even_ports() -> None:
    c = build_config({"rtp": {"port_min": 30001, "port_max": 31999}})
    assert (c.rtp.port_min, c.rtp.port_max) == (30002, 31998)


def test_overrides_are_listed_and_secrets_masked() -> None:
    c = load_config(
        None,
        environ={
            "SIPREC__RTP__PORT_MIN": "20000",
            "SIPREC__STORAGE__DATABASE_URL": "postgresql+asyncpg://rec:s3cret@db/rec",
            "HOME": "/root",
        },
    )
    assert c.overrides == (
        "SIPREC__RTP__PORT_MIN=20000 -> [rtp] port_min",
        "SIPREC__STORAGE__DATABASE_URL=postgresql+asyncpg://rec:***@db/rec"
        " -> [storage] database_url",
    )
    assert c.warnings == ()


@pytest.mark.parametrize(
    ("name", "meant"),
    [
        ("SIPREC_WEB_LISTEN", "SIPREC__WEB__LISTEN"),
        ("SIPREC_RTP_PORT_MIN", "SIPREC__RTP__PORT_MIN"),
        ("SIPREC_STORAGE__RECORDINGS_DIR", "SIPREC__STORAGE__RECORDINGS_DIR"),
    ],
)
def test_mistyped_variables_are_warned_about_with_the_meant_name(name: str, meant: str) -> None:
    c = load_config(None, environ={name: "x"})
    assert c.warnings == (
        f"environment {name} is not a setting and was ignored; did you mean {meant}?",
    )


def test_our_other_variables_are_not_warned_about() -> None:
    environ = {
        "SIPREC_TEST_DATABASE_URL": "x",
        "SIPREC_RECORDING_KEY": "x",
        "SIPREC_MY_KEY": "x",
        "SIPREC__STORAGE__ENCRYPTION_KEY_ENV": "SIPREC_MY_KEY",
    }
    assert load_config(None, environ=environ).warnings == ()


def test_unknown_key_names_the_closest_one() -> None:
    with pytest.raises(ConfigError) as info:
        build_config({"storage": {"recording_dir": "/x"}})
    assert str(info.value) == ("[storage] recording_dir: unknown key; did you mean recordings_dir?")


def test_mask_secret() -> None:
    from siprec_recorder.config import mask_secret

    assert (
        mask_secret("postgresql+asyncpg://u:pw@h:5432/d") == "postgresql+asyncpg://u:***@h:5432/d"
    )
    assert mask_secret("https://sms.example/send?token=abc") == "https://sms.example/send?***"
    assert (
        mask_secret("sqlite+aiosqlite:////x/index.sqlite3")
        == "sqlite+aiosqlite:////x/index.sqlite3"
    )
    assert mask_secret("") == ""


def test_rendered_configuration_reads_back_to_the_same_config() -> None:
    import tomllib

    from siprec_recorder.configshow import render_config

    c = load_config(
        ROOT / "config" / "recorder.toml",
        environ={"SIPREC__RTP__PORT_MIN": "20000", "SIPREC__WEB__ENABLED": "0"},
    )
    again = build_config(tomllib.loads(render_config(c)))
    for section in ("sip", "rtp", "storage", "recording", "policy", "web", "log", "metrics"):
        assert getattr(again, section) == getattr(c, section)
    c = build_config({"storage": {"database_url": "postgresql+asyncpg://u:pw@h/d"}})
    assert 'database_url = "postgresql+asyncpg://u:***@h/d"' in render_config(c)
