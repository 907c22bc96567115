"""Alerts: each channel against a real receiver on loopback, the durable outbox across a
receiver that is down (time injected, real refused connections), and each rule on a real
index."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text, update

from siprec_recorder.assurance.alerts import AlertSettings, Monitor, NewAlert, Outbox, raise_alert
from siprec_recorder.assurance.channels import (
    DeliveryError,
    SmtpChannel,
    SyslogChannel,
    WebhookChannel,
)
from siprec_recorder.storage.models import LedgerEntry, Recording
from tests.compliance.conftest import Store

from .receivers import Smtp, Syslog, Webhook, self_signed, wait_until

T = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
RFC5424 = re.compile(
    rb"^<(\d+)>1 (\S+) (\S+) siprec-recorder - (\S+) \[siprecAlert@32473 id=\"([0-9a-f]+)\" "
    rb"rule=\"([^\"]+)\" subject=\"[^\"]*\"\] (.*)$"
)


def sample(key: str = "r1") -> NewAlert:
    return NewAlert(
        rule="recording_failed",
        key=key,
        severity="critical",
        subject=f"recording:{key}",
        summary=f"recording of +32470000001 failed: finaliser error ({key})",
        details={"recording_id": key},
    )


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    w = Webhook()
    w.start()
    yield w
    w.stop()


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[Smtp]:
    cert, key = self_signed(tmp_path)
    s = Smtp(cert, key)
    s.start()
    yield s
    s.stop()


@pytest.fixture
def syslog() -> Iterator[Syslog]:
    s = Syslog()
    s.start()
    yield s
    s.stop()


async def test_webhook_is_signed_and_carries_the_alert_id(store: Store, webhook: Webhook) -> None:
    channel = WebhookChannel(webhook.url, secret="s3cret")
    assert await raise_alert(store.db, sample(), ["webhook"], now=T)
    outbox = Outbox(store.db, [channel])
    assert await outbox.deliver_due(T) == 1
    ((headers, body),) = webhook.received
    doc = json.loads(body)
    assert doc["id"] == sample().id == headers["x-siprec-alert-id"]
    assert doc["rule"] == "recording_failed" and doc["created_at"] == "2026-11-02T09:00:00Z"
    mac = hmac.new(b"s3cret", headers["x-siprec-timestamp"].encode() + b"." + body, hashlib.sha256)
    assert headers["x-siprec-signature"] == "sha256=" + mac.hexdigest()
    # delivered once: nothing due any more, and the same fact raised again is not new
    assert await outbox.deliver_due(T + timedelta(hours=1)) == 0
    assert not await raise_alert(store.db, sample(), ["webhook"], now=T + timedelta(minutes=1))
    assert len(webhook.received) == 1


async def test_email_over_starttls(store: Store, smtp: Smtp) -> None:
    channel = SmtpChannel(
        "127.0.0.1", smtp.port, "recorder@firm.test", ("ops@firm.test",), ca_file=str(smtp.cert)
    )
    await raise_alert(store.db, sample(), ["email"], now=T)
    assert await Outbox(store.db, [channel]).deliver_due(T) == 1
    (msg,) = smtp.messages
    assert smtp.tls_seen == [True]
    assert msg["X-Siprec-Alert-Id"] == sample().id
    assert msg["Subject"].startswith("[siprec-recorder critical] recording of +32470000001")
    assert "rule:     recording_failed" in msg.get_payload()
    # a server certificate we do not trust is a delivery failure, not a crash
    untrusting = SmtpChannel("127.0.0.1", smtp.port, "r@firm.test", ("ops@firm.test",))
    with pytest.raises(DeliveryError, match="CERTIFICATE_VERIFY_FAILED|certificate verify"):
        await untrusting.deliver(_as_dict(sample()))


def _as_dict(a: NewAlert) -> dict[str, Any]:
    return {
        "id": a.id,
        "rule": a.rule,
        "severity": a.severity,
        "subject": a.subject,
        "summary": a.summary,
        "details": a.details,
        "created_at": "2026-11-02T09:00:00Z",
    }


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_syslog_rfc5424(syslog: Syslog, transport: str) -> None:
    channel = SyslogChannel(transport, "127.0.0.1", syslog.port)
    await channel.deliver(_as_dict(sample()))
    wait_until(lambda: len(syslog.messages) == 1, 10)
    ((how, data),) = syslog.messages
    assert how == transport
    m = RFC5424.match(data)
    assert m, data
    pri, ts, _host, msgid, alert_id, rule, msg = m.groups()
    assert int(pri) == 16 * 8 + 2  # local0, critical
    assert ts == b"2026-11-02T09:00:00Z" and msgid == b"recording_failed"
    assert alert_id.decode() == sample().id and rule == b"recording_failed"
    assert msg.startswith(b"recording of +32470000001 failed")


async def test_outbox_survives_a_receiver_down_for_a_minute(store: Store) -> None:
    webhook = Webhook()  # its port is free: connections are refused until it starts
    outbox = Outbox(
        store.db, [WebhookChannel(webhook.url, timeout=2)], retry_base_s=5, retry_max_s=20
    )
    await raise_alert(store.db, sample(), ["webhook"], now=T)
    attempts_at = []
    now = T
    while now < T + timedelta(seconds=60):
        if await outbox.deliver_due(now):
            break
        if outbox.failures["webhook"] > len(attempts_at):
            attempts_at.append((now - T).total_seconds())
        now += timedelta(seconds=1)
    assert webhook.received == [] and outbox.pending == {"webhook": 1}
    # backoff: 5, 10, 20, 20 ... seconds after each failure
    assert attempts_at[:4] == [0.0, 5.0, 15.0, 35.0]
    webhook.start()
    try:
        while not await outbox.deliver_due(now):
            now += timedelta(seconds=1)
        assert (now - T).total_seconds() <= 60 + 20
        assert len(webhook.received) == 1 and outbox.pending == {"webhook": 0}
        assert json.loads(webhook.received[0][1])["id"] == sample().id
    finally:
        webhook.stop()


async def test_a_receiver_answering_500_gets_the_same_id_again(
    store: Store, webhook: Webhook
) -> None:
    webhook.status = 500
    outbox = Outbox(store.db, [WebhookChannel(webhook.url)], retry_base_s=1, retry_max_s=1)
    await raise_alert(store.db, sample(), ["webhook"], now=T)
    assert await outbox.deliver_due(T) == 0
    webhook.status = 204
    assert await outbox.deliver_due(T + timedelta(seconds=1)) == 1
    ids = {h["x-siprec-alert-id"] for h, _ in webhook.received}
    assert len(webhook.received) == 2 and ids == {sample().id}


def monitor(store: Store, **kw: Any) -> Monitor:
    settings = AlertSettings(**{"storage_free_mb": 0, "business_hours": (), **kw})
    return Monitor(store.db, settings, store.root, ["webhook"], started_at=T)


async def test_rules_on_a_real_index(store: Store) -> None:
    failed = await store.add(T, state="failed", reason="no media received")
    broken = await store.add(T, state="failed", reason="finaliser crashed: MemoryError")
    ok = await store.add(T)
    m = monitor(store)
    new = await m.check(T + timedelta(minutes=1))
    assert sorted((a.rule, a.key) for a in new) == sorted(
        [("no_media", failed), ("recording_failed", broken)]
    )
    assert m.raised["no_media"] == 1 and m.firing["recording_failed"] == 1
    # the same facts, checked again (or by another node): no new alert
    assert await m.check(T + timedelta(minutes=2)) == []
    assert ok not in {a.key for a in new}

    # storage below the threshold: one alert per episode
    low = monitor(store, storage_free_mb=10**9)
    new = await low.check(T + timedelta(minutes=3))
    assert [a.rule for a in new] == ["storage_low"]
    assert await low.check(T + timedelta(minutes=4)) == []

    # a rewritten ledger entry breaks the chain
    async with store.db.session() as session:
        await session.execute(
            update(LedgerEntry).where(LedgerEntry.seq == 1).values(details='{"forged": true}')
        )
        await session.commit()
    new = await monitor(store).check(T + timedelta(minutes=5))
    assert [a.rule for a in new] == ["ledger_broken"]


async def test_src_silent_during_business_hours_only(store: Store) -> None:
    rec_id = await store.add(T)
    async with store.db.session() as session:
        await session.execute(
            update(Recording).where(Recording.id == rec_id).values(source="udp:10.1.1.1:5060")
        )
        await session.commit()
    m = monitor(
        store,
        src_sources=("10.1.1.1", "10.1.1.2"),
        src_silence_minutes=15,
        business_hours=("mon-fri 08:00-18:00",),
    )
    m.started_at = T - timedelta(hours=1)
    assert [a.subject for a in await m.check(T + timedelta(minutes=10))] == ["src:10.1.1.2"]
    new = await m.check(T + timedelta(minutes=16))
    assert [a.subject for a in new] == ["src:10.1.1.1"]
    assert new[0].details["last_invite"] == T.isoformat()
    # a new call from the second source is seen through the ledger, not a table scan
    later = await store.add(T + timedelta(minutes=20))
    async with store.db.session() as session:
        await session.execute(
            update(Recording).where(Recording.id == later).values(source="tcp:10.1.1.2:5061")
        )
        await session.commit()
    assert await m.check(T + timedelta(minutes=30)) == []
    assert m.firing["src_silent"] == 1  # 10.1.1.1 still silent (alerted already)
    new = await m.check(T + timedelta(minutes=36))
    assert [a.details["last_invite"] for a in new if a.subject == "src:10.1.1.2"] == [
        (T + timedelta(minutes=20)).isoformat()
    ]
    # Saturday: silence is normal
    saturday = datetime(2026, 11, 7, 12, 0, tzinfo=UTC)
    m2 = monitor(store, src_sources=("10.1.1.3",), business_hours=("mon-fri 08:00-18:00",))
    m2.started_at = saturday - timedelta(hours=5)
    assert await m2.check(saturday) == []


async def test_node_gone_reads_the_cluster_lease_table(store: Store) -> None:
    m = monitor(store)
    assert await m.check(T) == []  # no node rows: a single node, nothing to say
    beat = {
        "rec-a": (T - timedelta(minutes=2)).timestamp(),  # died two minutes ago
        "rec-b": (T - timedelta(seconds=5)).timestamp(),  # alive (lease 15 s)
        "rec-c": (T - timedelta(hours=1)).timestamp(),  # stopped cleanly
    }
    async with store.db.engine.begin() as conn:
        for node, state in (("rec-a", "live"), ("rec-b", "live"), ("rec-c", "stopped")):
            await conn.execute(
                text(
                    "INSERT INTO cluster_nodes (node_id, instance, host, pid, state,"
                    " started_at, heartbeat_at) VALUES (:n, 'i', 'h', 1, :s, :b, :b)"
                ),
                {"n": node, "s": state, "b": beat[node]},
            )
    new = await m.check(T)
    assert [(a.rule, a.subject) for a in new] == [("node_gone", "node:rec-a")]
    assert new[0].details["lease_until"] == (T - timedelta(seconds=105)).isoformat()


SD_PARAM = re.compile(rb'(\w+)="((?:[^"\\\]]|\\.)*)"')


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60), st.text(max_size=60))
def test_syslog_structured_data_escapes_anything(subject: str, summary: str) -> None:
    from siprec_recorder.assurance.channels import syslog_message

    alert = {**_as_dict(sample()), "subject": subject, "summary": summary}
    data = syslog_message(alert, hostname="rec1")
    head, sd_and_msg = data.split(b" - recording_failed ", 1)
    assert head.startswith(b"<130>1 2026-11-02T09:00:00Z rec1 siprec-recorder")
    assert sd_and_msg.startswith(b"[siprecAlert@32473 ")
    params = dict(SD_PARAM.findall(sd_and_msg))
    unescaped = re.sub(rb"\\(.)", rb"\1", params[b"subject"]).decode("utf-8", "replace")
    assert unescaped == subject.encode("utf-8", "replace").decode("utf-8", "replace")[:200]
