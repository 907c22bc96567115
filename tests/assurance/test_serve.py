"""Alerts, metrics and the watched CDR folder in the real ``serve`` process.

A call whose streams carry no media raises ``no_media`` alerts; the webhook receiver is down
when they are raised and comes back a few seconds later: they are delivered then, with the
same ids, and also by e-mail (STARTTLS) and syslog. ``alerts test`` reaches each receiver.
A CDR file dropped into the watched folder is reconciled by serve itself.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from siprec_recorder.replay.src import SrcOptions, replay_call

from .receivers import Smtp, Syslog, Webhook, self_signed, wait_until
from .test_reconcile_calls import one_second_call

pytestmark = [pytest.mark.integration]


def metrics(rec: Any) -> str:
    host, port = rec.listeners["metrics"]
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as r:
        return str(r.read().decode())


def test_alerts_reach_every_receiver_after_an_outage(recorder_factory: Any, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    webhook, smtp, syslog = Webhook(), Smtp(cert, key), Syslog()
    smtp.start()
    syslog.start()
    watch = tmp_path / "cdr-in"
    watch.mkdir()
    try:
        rec = recorder_factory(
            alerts={
                "check_interval": 1.0,
                "retry_base": 0.5,
                "retry_max": 1.0,
                "webhook_url": webhook.url,
                "webhook_secret": "k",
                "smtp_host": "127.0.0.1",
                "smtp_port": smtp.port,
                "smtp_from": "recorder@firm.test",
                "smtp_to": ["ops@firm.test"],
                "smtp_ca_file": str(cert),
                "syslog": f"udp:127.0.0.1:{syslog.port}",
                "storage_free_mb": 0,
            },
            reconcile={"watch_dir": str(watch), "watch_interval": 1.0},
        )
        for channel, check in (
            ("email", lambda: len(smtp.messages) == 1),
            ("syslog", lambda: len(syslog.messages) == 1),
        ):
            res = rec.cli("alerts", "test", "--channel", channel)
            assert "ok: test alert" in res.stdout
            wait_until(check, 10)
        res = rec.cli("alerts", "test", "--channel", "webhook", check=False)
        assert res.returncode == 1 and "webhook http://127.0.0.1" in res.stderr

        call = one_second_call("+32470000001", "+3222000001")
        options = SrcOptions(
            to=rec.listeners["udp"], caller_aor="tel:+32470000001", skip_seconds=100.0
        )
        result = asyncio.run(replay_call(call, options))
        assert result.status == 200
        # no media on either stream: the call fails ("no media received"), one no_media
        # alert for the recording, queued while the webhook is down
        wait_until(lambda: 'siprec_alerts_raised_total{rule="no_media"} 1' in metrics(rec), 30)
        wait_until(lambda: len(syslog.messages) == 2 and len(smtp.messages) == 2, 30)
        time.sleep(3)  # a few failed attempts
        text = metrics(rec)
        assert 'siprec_alert_outbox_pending{channel="webhook"} 1' in text
        failures = [
            line for line in text.splitlines()
            if line.startswith('siprec_alert_delivery_failures_total{channel="webhook"}')
        ]  # fmt: skip
        assert int(failures[0].split()[-1]) >= 2
        webhook.start()
        wait_until(lambda: len(webhook.received) == 1, 30)
        ids = sorted(h["x-siprec-alert-id"] for h, _ in webhook.received)
        syslog_ids = sorted(
            m.split(b'id="', 1)[1].split(b'"', 1)[0].decode() for _, m in syslog.messages[1:]
        )
        assert ids == syslog_ids
        assert {json.loads(b)["rule"] for _, b in webhook.received} == {"no_media"}
        wait_until(lambda: 'siprec_alert_outbox_pending{channel="webhook"} 0' in metrics(rec), 10)

        # the watched folder: serve reconciles what is dropped there
        (watch / "day.csv").write_text(
            "start,end,caller,callee\n2026-11-02T09:00:00Z,2026-11-02T09:01:00Z,"
            "+32470000009,+3222000009\n",
            encoding="utf-8",
        )
        report = watch / "done" / "day.csv.report.json"
        wait_until(report.exists, 30)
        doc = json.loads(report.read_text())
        assert [e["category"] for e in doc["exceptions"]] == ["never_offered"]
        assert (watch / "done" / "day.csv.exceptions.csv").exists()
        wait_until(
            lambda: 'siprec_reconcile_exceptions{category="never_offered"} 1' in metrics(rec), 10
        )
        wait_until(lambda: len(webhook.received) == 2, 30)
        assert json.loads(webhook.received[1][1])["rule"] == "reconciliation_exceptions"
        (watch / "bad.csv").write_text("a,b\n1,2\n", encoding="utf-8")
        error = watch / "failed" / "bad.csv.error.txt"
        wait_until(error.exists, 30)
        assert "unknown CDR layout" in error.read_text()
    finally:
        webhook.stop()
        smtp.stop()
        syslog.stop()
