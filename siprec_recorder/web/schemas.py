"""Request bodies of the JSON API (pydantic), bounded so that fuzzing finds no 500."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

__all__ = [
    "AccessIn",
    "CaseIn",
    "DecisionIn",
    "LabelIn",
    "LabelRef",
    "LoginIn",
    "PasswordIn",
    "RequestIn",
    "SecondPersonIn",
]

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
    expires_at: datetime


class DecisionIn(BaseModel):
    note: str = Field(default="", max_length=2000)
    expires_at: datetime | None = None
