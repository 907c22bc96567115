"""Every miarec SIPp SIPREC scenario against one running recorder (issue 3, "Interop").

All jobs (see :mod:`tests.interop.miarec`) run once per transport (TCP, then UDP), a dozen
at a time, against a recorder and, at the same time, against the permissive baseline UAS.
Each scenario file is then one test case per transport: no SIPp failure that is the
recorder's fault; every answered call that carried media ends with exactly one finished
recording whose participants are the numbers of the metadata the call sent (merged over
INVITE, re-INVITE and UPDATE; From/To for the Cisco CUBE network-based scenarios that send
none), departed parties with ``left_at``; every SDP answer echoes every label, recvonly.
"""

from __future__ import annotations

import subprocess
import threading
import time
from typing import Any

import pytest

from .conftest import RESULTS, ROOT, require_tool, write_results
from .miarec import FINISHED_STATES, JobResult, RunSettings, all_jobs, judge, run_jobs
from .permissive_uas import PermissiveUas

pytestmark = [pytest.mark.integration, pytest.mark.slow]

JOBS = all_jobs()
SCENARIO_FILES = [p.scenario for j in JOBS for p in j.parts]
PARALLEL = 12
SETTLE_TIMEOUT = 90.0


def _git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


@pytest.fixture(scope="module", params=["tcp", "udp"])
def miarec_run(module_recorders: Any, request: pytest.FixtureRequest) -> dict[str, Any]:
    """All jobs over one transport (TCP as the README does it, then UDP)."""
    require_tool("sipp")
    transport: str = request.param
    settings = RunSettings(transport=transport)
    rec = module_recorders(
        f"miarec-{transport}",
        # The scenarios replay captured SDP (c= the capture's real addresses) from loopback,
        # as an SRC behind NAT would: media is latched, not taken from the offer's address.
        # Cisco CUBE network-based recording and BiB send INVITEs without SIPREC markers.
        rtp={"inactivity_timeout": 20.0, "latch_source": True},
        sip={"accept_plain_invite": True},
    )
    target = rec.listeners[transport]
    uas = PermissiveUas().start()
    work = RESULTS / "sipp" / transport  # kept after the run: scenario copies and SIPp logs
    started = time.monotonic()
    out: dict[str, dict[str, JobResult]] = {}
    try:

        def baseline() -> None:
            out["baseline"] = run_jobs(
                JOBS,
                ("127.0.0.1", uas.ports[transport]),
                work,
                label="baseline",
                parallel=PARALLEL // 2,
                settings=settings,
            )

        t = threading.Thread(target=baseline, name="baseline-run")
        t.start()
        out["recorder"] = run_jobs(
            JOBS, target, work, label="recorder", parallel=PARALLEL, settings=settings
        )
        t.join(600)
    finally:
        uas.stop()
    sipp_seconds = time.monotonic() - started

    wanted = {c.call_id for r in out["recorder"].values() for c in r.calls() if c.answered}
    deadline = time.monotonic() + SETTLE_TIMEOUT
    rows: list[dict[str, Any]] = []
    while True:
        rows = rec.search()
        pending = [
            r
            for r in rows
            if r.get("call_id") in wanted
            and r.get("state") not in FINISHED_STATES
            and r.get("state") != "failed"
        ]
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    verdicts: dict[str, dict[str, Any]] = {}
    for name, result in out["recorder"].items():
        for v in judge(result, out["baseline"].get(name), rows):
            verdicts[v["scenario"]] = v
    payload = {
        "suite": "miarec",
        "commit": _git_commit(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "sipp_seconds": round(sipp_seconds, 1),
        "transport": transport,
        "verdicts": [verdicts[s] for s in SCENARIO_FILES if s in verdicts],
        "recorder_log_tail": rec.log()[-20000:],
    }
    write_results(f"miarec_{transport}", payload)
    return {"verdicts": verdicts, "rec": rec, "rows": rows}


def test_every_scenario_file_is_in_one_job() -> None:
    on_disk = sorted(
        p.relative_to(ROOT / "tests/data/interop/miarec_sipp/scenarios").as_posix()
        for p in (ROOT / "tests/data/interop/miarec_sipp/scenarios").rglob("*.xml")
    )
    assert sorted(SCENARIO_FILES) == on_disk
    assert len(on_disk) == 87


# Open recorder bugs (docs/interop.md): strict xfail, so that the fix shows up as XPASS.
# None is open. The scenarios that were (F5 delayed offer: cisco_bib_call_slave1; F6 left_at
# after a complete update: broadworks_3way_call_2, broadworks_redirect and
# cisco_webex_calling/outbound_blind_xfer_01; F8 held call that never resumes: both
# 19b_shared_line_callA files) stay as regression tests.
KNOWN_BUGS: dict[str, str] = {}


def _params() -> list[Any]:
    return [
        pytest.param(s, marks=[pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[s])])
        if s in KNOWN_BUGS
        else s
        for s in SCENARIO_FILES
    ]


@pytest.mark.parametrize("scenario", _params())
def test_scenario(miarec_run: dict[str, Any], scenario: str) -> None:
    verdict = miarec_run["verdicts"].get(scenario)
    assert verdict is not None, f"{scenario} did not run"
    detail = "\n".join(verdict["problems"])
    if verdict["problems"]:
        log = miarec_run["rec"].log()
        ids = [c["call_id"] for c in verdict["calls"]]
        related = [line for line in log.splitlines() if any(i in line for i in ids)]
        detail += "\n--- recorder log lines for these calls:\n" + "\n".join(related[-40:])
    assert not verdict["problems"], detail


def test_recorder_survived(miarec_run: dict[str, Any]) -> None:
    rec = miarec_run["rec"]
    assert rec.proc is not None and rec.proc.poll() is None, rec.log()[-4000:]
    assert "Traceback" not in rec.log(), rec.log()[-6000:]
