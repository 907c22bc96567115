"""Request bodies of the JSON API (pydantic), bounded so that fuzzing finds no 500."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field

__all__ = [
    "IsoTime",
    "AccessIn",
    "CaseIn",
    "DecisionIn",
    "HoldIn",
    "LabelIn",
    "LabelRef",
    "LoginIn",
    "PasswordIn",
    "ReleaseIn",
    "RequestIn",
    "SecondPersonIn",
]

_ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _iso_only(value: Any) -> Any:
    """Only ISO 8601 text (or a datetime) is a date here: pydantic would also read numbers
    as Unix times, which no form sends and nobody means."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO_RE.match(value):
        raise ValueError("expected an ISO 8601 date and time, e.g. 2026-11-20T09:00:00+01:00")
    return value


IsoTime = Annotated[datetime, BeforeValidator(_iso_only)]

Setting = Literal["owner", "admins", "everyone"]
Right = Literal["list", "play", "label"]


class LoginIn(BaseModel):
    login: str = Field(min_length=1, max_length=255)
    password: str = Field(min_length=1, max_length=1024)
    otp: str = Field(default="", max_length=16)


class SecondPersonIn(BaseModel):
    pending_token: str = Field(min_length=1, max_length=200)
    login: str = Field(min_length=1, max_length=255)
    password: str = Field(min_length=1, max_length=1024)
    otp: str = Field(default="", max_length=16)


class PasswordIn(BaseModel):
    current: str = Field(min_length=1, max_length=1024)
    new: str = Field(min_length=1, max_length=1024)


class LabelIn(BaseModel):
    title: str = Field(min_length=1, max_length=80)
    colour: str = Field(pattern=r"^#[0-9a-fA-F]{6}$")


class CaseIn(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=4000)
    label_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    new_label: LabelIn | None = None
    list_access: Setting = "admins"
    play_access: Setting = "admins"
    label_access: Setting = "owner"


class AccessIn(BaseModel):
    list_access: Setting | None = None
    play_access: Setting | None = None
    label_access: Setting | None = None


class LabelRef(BaseModel):
    label_id: int = Field(ge=1, le=2**31 - 1)


class RequestIn(BaseModel):
    case_id: int = Field(ge=1, le=2**31 - 1)
    reason: str = Field(min_length=1, max_length=2000)
    rights: list[Right] = Field(min_length=1, max_length=3)
    expires_at: IsoTime


class DecisionIn(BaseModel):
    note: str = Field(default="", max_length=2000)
    expires_at: IsoTime | None = None


class HoldIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)  # the case reference, in the ledger


class ReleaseIn(BaseModel):
    reason: str = Field(default="", max_length=2000)
