"""The requests the recorder itself sends inside a dialog (the BYE), through its route set.

A BYE of ours (shutdown, RTP inactivity, session expiry, missing ACK) is built by
:class:`~siprec_recorder.sip.dialog.Dialog` from the INVITE we answered, so it carries the
Record-Route set as Route headers (RFC 3261 12.2.1.1; a strict first hop gets the request
addressed to itself) and goes to the first hop: the first route's host and port when that is
an IP address, else (a name we would have to resolve by RFC 3263) the address the INVITE came
from, which is the first hop in every deployment behind a proxy.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
from dataclasses import replace
from typing import Any

from ..sip.dialog import Dialog, DialogId
from ..sip.events import Address
from ..sip.message import SipRequest

__all__ = ["bye_for", "dialog_of"]

log = logging.getLogger(__name__)


def dialog_of(invite: SipRequest, local_tag: str) -> Dialog | None:
    """The dialog an accepted INVITE creates (None when its Contact or routes are unusable:
    the BYE then goes straight back to the source)."""
    try:
        return Dialog.from_invite(invite, local_tag)
    except Exception as exc:  # noqa: BLE001 - a bad Contact must not refuse the call
        log.info("call %s: no usable dialog route (%s)", invite.call_id, exc)
        return None


def _fallback(s: Any) -> Dialog:
    return Dialog(
        DialogId(s.call_id, s.local_tag, s.remote_tag),
        s.local_uri,
        s.remote_uri,
        s.remote_target,
        (),
        s.local_cseq,
        0,
    )


def bye_for(s: Any, via_hostport: str) -> tuple[SipRequest, Address]:
    """The BYE for recording session ``s`` and where to send it; advances its dialog."""
    dialog = s.dialog if s.dialog is not None else _fallback(s)
    transport = s.source.transport
    via = f"SIP/2.0/{transport.upper()} {via_hostport};branch=z9hG4bK{secrets.token_hex(10)};rport"
    dialog, request = dialog.request("BYE", extra=(("Via", via), ("Content-Length", "0")))
    s.dialog = dialog
    s.local_cseq = dialog.local_cseq
    destination = s.source
    hop = dialog.next_hop() if dialog.route_set else None
    if hop is not None:
        try:
            ipaddress.ip_address(hop.host.strip("[]"))
        except ValueError:
            pass
        else:
            port = hop.port or (5061 if hop.scheme == "sips" else 5060)
            destination = replace(s.source, host=hop.host.strip("[]"), port=port)
    return request, destination
