"""``siprec-recorder users add|set|list`` through the real command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from siprec_recorder.cli import main


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "rec").mkdir()
    cfg = tmp_path / "recorder.toml"
    cfg.write_text(f'[storage]\nrecordings_dir = "{tmp_path / "rec"}"\n', encoding="utf-8")
    return cfg


def test_users_add_set_list(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "--config",
                str(config),
                "users",
                "add",
                "zoe",
                "--role",
                "admin",
                "--name",
                "Zoe",
                "--totp",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "user zoe added (admin)" in out
    assert "first password: " in out and "TOTP secret: " in out
    assert main(["--config", str(config), "users", "add", "zoe"]) == 1
    assert "already exists" in capsys.readouterr().out
    assert (
        main(
            [
                "--config",
                str(config),
                "users",
                "set",
                "zoe",
                "--four-eyes",
                "yes",
                "--totp",
                "no",
                "--role",
                "auditor",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["--config", str(config), "users", "list", "--json"]) == 0
    (user,) = json.loads(capsys.readouterr().out)
    assert user["login"] == "zoe" and user["role"] == "auditor"
    assert user["four_eyes"] is True and user["totp"] is False
    assert user["must_change_password"] is True
    assert main(["--config", str(config), "users", "set", "nobody", "--unlock"]) == 1
