"""The portal's own tables, on the product's one declarative ``Base``.

Labels tag recordings; a case owns exactly one label, and a recording is in a case when it
carries the case's label. Those three tables (:class:`Label`, :class:`RecordingLabel`,
:class:`Case`) are declared in :mod:`siprec_recorder.storage.cases`, because the compliance
layer reads them too (export, legal hold), and are re-exported here. A case's access
settings say, for each right (``list``, ``play``, ``label``), who has it without asking:
``owner`` (the admin who owns the case), ``admins`` or ``everyone``. Anyone else gets a
right only through an approved, unexpired, unrevoked :class:`AccessRequest`; every state
change of a request is kept in :class:`AccessRequestEvent`. Web sessions and pending
four-eyes logins are kept in the database (only hashes of their tokens), so a restart does
not log anybody out.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from siprec_recorder.storage.cases import Case, Label, RecordingLabel
from siprec_recorder.storage.models import Base, UTCDateTime

__all__ = [
    "RIGHTS",
    "SETTING_VALUES",
    "AccessRequest",
    "AccessRequestEvent",
    "Case",
    "Label",
    "LoginFailure",
    "PasswordHistory",
    "PendingLogin",
    "RecordingLabel",
    "WebSession",
]

RIGHTS: tuple[str, ...] = ("list", "play", "label")
SETTING_VALUES: tuple[str, ...] = ("owner", "admins", "everyone")


class AccessRequest(Base):
    """A user's request for rights on a case; ``status`` pending|approved|rejected|revoked."""

    __tablename__ = "web_access_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("web_cases.id"), index=True)
    requester: Mapped[str] = mapped_column(String(100), index=True)
    reason: Mapped[str] = mapped_column(Text)
    rights: Mapped[str] = mapped_column(String(40))  # comma-separated subset of RIGHTS
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(10), default="pending")
    decided_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    decision_note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AccessRequestEvent(Base):
    """One step in the history of an access request."""

    __tablename__ = "web_access_request_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("web_access_requests.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(20))
    note: Mapped[str] = mapped_column(Text, default="")


class WebSession(Base):
    """A logged-in browser or API client; only the SHA-256 of the cookie value is stored."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    login: Mapped[str] = mapped_column(String(100), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime())
    second_login: Mapped[str | None] = mapped_column(String(100), nullable=True)
    ended: Mapped[bool] = mapped_column(Boolean, default=False)


class PendingLogin(Base):
    """A four-eyes login whose first person passed and that waits for a second person."""

    __tablename__ = "web_pending_logins"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    login: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used: Mapped[bool] = mapped_column(Boolean, default=False)


class PasswordHistory(Base):
    """An earlier password hash of an account, so that recent ones are not chosen again."""

    __tablename__ = "web_password_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    login: Mapped[str] = mapped_column(String(100), index=True)
    password_hash: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LoginFailure(Base):
    """One failed login, by login typed and source address: the throttles count these."""

    __tablename__ = "web_login_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    login: Mapped[str] = mapped_column(String(100), index=True)
    source: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
