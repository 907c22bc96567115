"""The shipped Prometheus rules and Grafana dashboard: valid, and about metrics that exist.

``promtool`` (Debian ``prometheus``) checks and unit-tests the rules; every dashboard query is
also run through ``promtool check rules`` as a recording rule, which parses its PromQL. The
metric names both use are compared with what a real ``serve`` exports on /metrics.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "packaging" / "prometheus" / "alerts.yml"
RULES_TEST = ROOT / "packaging" / "prometheus" / "alerts_test.yml"
DASHBOARD = ROOT / "packaging" / "grafana" / "siprec-recorder.json"
NAME = re.compile(r"\b(siprec_[a-z0-9_]+)\b")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    assert exe, "promtool not found: install the Debian package prometheus (scripts/run-tests)"
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=60)


def dashboard_queries() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in doc["panels"] for t in p["targets"]]


def test_promtool_checks_and_tests_the_rules() -> None:
    res = promtool("check", "rules", str(RULES))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS: 13 rules found" in res.stdout
    res = promtool("test", "rules", str(RULES_TEST))
    assert res.returncode == 0, res.stdout + res.stderr


def test_dashboard_schema_and_queries_parse(tmp_path: Path) -> None:
    doc = json.loads(DASHBOARD.read_text())
    for key in ("uid", "title", "schemaVersion", "panels", "templating", "time"):
        assert key in doc, key
    assert isinstance(doc["schemaVersion"], int) and doc["schemaVersion"] >= 30
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    titles = " / ".join(p["title"] for p in doc["panels"]).lower()
    for wanted in ("calls live", "setup rate", "loss", "mos", "finaliser", "storage", "declined"):
        assert wanted in titles, wanted
    for p in doc["panels"]:
        assert p["type"] in ("stat", "timeseries", "bargauge", "gauge", "table")
        assert (
            set(p["gridPos"]) == {"h", "w", "x", "y"}
            and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
        )
        assert p["datasource"]["type"] == "prometheus" and p["targets"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs))
    # every query as a recording rule: promtool parses its PromQL
    rules = {"groups": [{"name": "dashboard", "rules": []}]}
    for n, expr in enumerate(dashboard_queries()):
        rules["groups"][0]["rules"].append(
            {"record": f"dashboard:q{n}", "expr": expr.replace("$instance", ".*")}
        )
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(json.dumps(rules))  # JSON is YAML
    res = promtool("check", "rules", str(path))
    assert res.returncode == 0, res.stdout + res.stderr


def exported_names(rec: Any) -> set[str]:
    host, port = rec.listeners["metrics"]
    deadline = time.monotonic() + 20
    while True:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
        # the assurance gauges appear after the first check
        if "siprec_recent_mos" in text or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    return set(re.findall(r"^# TYPE (\S+) ", text, re.M))


@pytest.mark.integration
def test_rules_and_panels_use_metrics_the_recorder_exports(recorder_factory: Any) -> None:
    rec = recorder_factory(alerts={"check_interval": 0.5, "storage_free_mb": 0})
    exported = exported_names(rec)
    used_by_rules = set(NAME.findall(RULES.read_text()))
    used_by_panels = {n for q in dashboard_queries() for n in NAME.findall(q)}
    assert used_by_rules and used_by_panels
    assert used_by_rules - exported == set()
    assert used_by_panels - exported == set()
