"""A policy change made with the CLI governs the very next call, with no wait in between.

The recorder (the real ``serve``) and the CLI are separate processes on one index: SQLite in
the recordings folder, or the session's PostgreSQL database.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from siprec_recorder.siprec.server import NOT_RECORDED
from siprec_recorder.testing import RecorderProcess, write_config
from tests.integration.test_policy_calls import invite
from tests.integration.test_signalling import header, status

pytestmark = [pytest.mark.integration]

TRADER = "+32470000001"


@pytest.fixture(params=["sqlite", "postgresql"])
def recorder(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RecorderProcess]:
    storage: dict[str, Any] = {}
    if request.param == "postgresql":
        from tests.pgtest import fresh_database

        url = str(request.getfixturevalue("pg_url"))
        import asyncio

        async def reset() -> None:
            await (await fresh_database(url)).close()

        asyncio.run(reset())
        storage["database_url"] = url
    cfg = write_config(tmp_path, storage=storage)
    rp = RecorderProcess(workdir=tmp_path, config_path=cfg, recordings=tmp_path / "recordings")
    rp.start()
    yield rp
    rp.stop()


def test_cli_mode_change_governs_the_very_next_call(recorder: RecorderProcess) -> None:
    rec = recorder
    rec.cli(
        "numbers", "add", TRADER, "--user", "trader1", "--managed", "yes",
        "--status", "manual", "--self-service", "yes", "--slot", "mon-sun 00:00-24:00",
    )  # fmt: skip
    assert status(invite(rec, f"tel:{TRADER}")) == 200  # the engine has its snapshot now
    for _ in range(3):
        rec.cli("numbers", "mode", TRADER, "private", "--by-user")
        resp = invite(rec, f"tel:{TRADER}")
        assert status(resp) == 403
        # every refusal says the same on the wire; the index row keeps the reason
        assert header(resp, "Warning") == NOT_RECORDED
        rec.cli("numbers", "mode", TRADER, "professional", "--by-user")
        assert status(invite(rec, f"tel:{TRADER}")) == 200
    declined = [r for r in rec.search("--number", TRADER) if r["state"] == "declined"]
    assert [r["reason"] for r in declined] == ["private-mode"] * 3
