"""Where alerts go: a signed webhook, e-mail over SMTP with STARTTLS, syslog (RFC 5424).

Each channel has one method, ``deliver(alert)``, that either delivers the alert or raises
:class:`DeliveryError`; retrying is the outbox's business (:mod:`.alerts`), so a channel
never loops or sleeps. ``alert`` is the alert as a JSON-ready dict (``id``, ``rule``,
``severity``, ``subject``, ``summary``, ``details``, ``created_at``).

* Webhook: ``POST`` of the alert as JSON. ``X-Siprec-Alert-Id`` is the alert's id (the same
  on every retry: receivers drop what they have already seen), ``X-Siprec-Timestamp`` the
  Unix time of the attempt and ``X-Siprec-Signature`` ``sha256=`` the hex HMAC-SHA256, with
  the shared secret, of ``"<timestamp>.<body>"``. Any 2xx is a delivery.
* E-mail: ``EHLO``, ``STARTTLS`` (required unless turned off), ``AUTH`` when a user is set,
  one message with the alert id in ``Message-ID`` and a plain text body.
* Syslog: RFC 5424 with structured data ``[siprecAlert@32473 id=... rule=...]`` (32473 is
  the documentation enterprise number of RFC 5612), over UDP (one datagram) or TCP (octet
  counting, RFC 6587).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import smtplib
import socket
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any, Protocol

__all__ = [
    "Channel",
    "DeliveryError",
    "SmtpChannel",
    "SyslogChannel",
    "WebhookChannel",
    "sign",
    "syslog_message",
]

_SEVERITY_CODE = {"critical": 2, "error": 3, "warning": 4, "info": 6}


class DeliveryError(Exception):
    """The channel could not deliver this time (the outbox will try again)."""


class Channel(Protocol):
    name: str

    async def deliver(self, alert: dict[str, Any]) -> None: ...


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Siprec-Signature`` value of ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


@dataclass(frozen=True, slots=True)
class WebhookChannel:
    url: str
    secret: str = ""
    timeout: float = 10.0
    name: str = "webhook"

    async def deliver(self, alert: dict[str, Any]) -> None:
        import httpx

        body = json.dumps(alert, sort_keys=True, ensure_ascii=False).encode()
        ts = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "siprec-recorder-alerts",
            "X-Siprec-Alert-Id": str(alert["id"]),
            "X-Siprec-Timestamp": ts,
        }
        if self.secret:
            headers["X-Siprec-Signature"] = sign(self.secret, ts, body)
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"webhook {self.url}: {exc.__class__.__name__}: {exc}") from None
        if not 200 <= response.status_code < 300:
            raise DeliveryError(f"webhook {self.url}: HTTP {response.status_code}")


@dataclass(frozen=True, slots=True)
class SmtpChannel:
    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    starttls: bool = True
    user: str = ""
    password: str = ""
    ca_file: str = ""
    timeout: float = 15.0
    name: str = "email"

    def _message(self, alert: dict[str, Any]) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = f"[siprec-recorder {alert['severity']}] {alert['summary']}"[:200]
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        msg["Message-ID"] = make_msgid(idstring=str(alert["id"])[:32], domain="siprec-recorder")
        msg["X-Siprec-Alert-Id"] = str(alert["id"])
        lines = [
            str(alert["summary"]),
            "",
            f"rule:     {alert['rule']}",
            f"severity: {alert['severity']}",
            f"subject:  {alert['subject']}",
            f"raised:   {alert['created_at']}",
            f"alert id: {alert['id']}",
            "",
            json.dumps(alert.get("details", {}), indent=2, sort_keys=True, ensure_ascii=False),
        ]
        msg.set_content("\n".join(lines) + "\n")
        return msg

    def _send(self, alert: dict[str, Any]) -> None:
        msg = self._message(alert)
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            smtp.ehlo()
            if self.starttls:
                ctx = ssl.create_default_context(cafile=self.ca_file or None)
                smtp.starttls(context=ctx)
                smtp.ehlo()
            if self.user:
                smtp.login(self.user, self.password)
            smtp.send_message(msg)

    async def deliver(self, alert: dict[str, Any]) -> None:
        try:
            await asyncio.to_thread(self._send, alert)
        except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:
            raise DeliveryError(
                f"smtp {self.host}:{self.port}: {exc.__class__.__name__}: {exc}"
            ) from None


def _sd_value(value: str) -> str:
    # RFC 5424 section 6.3.3: escape '"', '\' and ']' in PARAM-VALUE
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def syslog_message(
    alert: dict[str, Any], *, facility: int = 16, hostname: str = "", app_name: str = ""
) -> bytes:
    """The RFC 5424 message of ``alert`` (facility 16 = local0)."""
    pri = facility * 8 + _SEVERITY_CODE.get(str(alert.get("severity")), 4)
    host = (hostname or socket.gethostname() or "-")[:255]
    app = (app_name or "siprec-recorder")[:48]
    ts = str(alert.get("created_at") or "-")
    sd = (
        f'[siprecAlert@32473 id="{_sd_value(str(alert["id"]))}" '
        f'rule="{_sd_value(str(alert["rule"]))}" '
        f'subject="{_sd_value(str(alert["subject"])[:200])}"]'
    )
    msgid = str(alert["rule"])[:32].replace(" ", "_") or "-"
    text = f"<{pri}>1 {ts} {host} {app} - {msgid} {sd} " + str(alert["summary"])
    return text.encode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class SyslogChannel:
    transport: str  # "udp" or "tcp"
    host: str
    port: int
    facility: int = 16
    app_name: str = "siprec-recorder"
    timeout: float = 5.0
    name: str = "syslog"

    async def deliver(self, alert: dict[str, Any]) -> None:
        data = syslog_message(alert, facility=self.facility, app_name=self.app_name)
        try:
            if self.transport == "udp":
                await asyncio.to_thread(self._send_udp, data)
            else:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port), self.timeout
                )
                try:
                    writer.write(f"{len(data)} ".encode() + data)
                    await asyncio.wait_for(writer.drain(), self.timeout)
                finally:
                    writer.close()
                    try:
                        await writer.wait_closed()
                    except OSError:
                        pass
        except (OSError, TimeoutError) as exc:
            raise DeliveryError(
                f"syslog {self.transport}:{self.host}:{self.port}: {exc.__class__.__name__}: {exc}"
            ) from None

    def _send_udp(self, data: bytes) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.sendto(data, (self.host, self.port))
