"""The rules of a number, as pure functions shared by the service and the bulk importer.

Every check returns ``(column, message)`` pairs; the message names the number and reads well on
its own (the CLI prints it, the importer prefixes the row). Column names are those of the CSV.
"""

from __future__ import annotations

import re

from siprec_recorder.phone import normalize_number

__all__ = [
    "MODES",
    "STATUSES",
    "check_number_rules",
    "normalize_firm_number",
    "parse_bool",
    "parse_choice",
]

MODES = ("professional", "private")
STATUSES = ("auto", "manual")
_TRUE = frozenset({"yes", "y", "on", "true", "1"})
_FALSE = frozenset({"no", "n", "off", "false", "0"})
_E164_RE = re.compile(r"^\+[1-9][0-9]{6,14}$")
_MIN_E164_DIGITS = 7
_MAX_E164_DIGITS = 15


def parse_bool(value: str | bool, what: str) -> bool:
    """``yes/no``, ``on/off``, ``true/false``, ``1/0`` (any case); ValueError names ``what``."""
    if isinstance(value, bool):
        return value
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{what} must be yes or no (or on/off), not {_show(value)}")


def parse_choice(value: str, what: str, choices: tuple[str, ...]) -> str:
    """One of ``choices`` (any case); ValueError names ``what`` and the choices."""
    text = value.strip().lower()
    if text in choices:
        return text
    raise ValueError(f"{what} must be {' or '.join(choices)}, not {_show(value)}")


def _show(value: object) -> str:
    text = str(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return '"' + text.replace('"', "'") + '"'


def normalize_firm_number(text: str, country_code: str) -> str:
    """The E.164 form of a firm number; ValueError when it is not a full E.164 number."""
    raw = text.strip()
    if _E164_RE.match(raw):
        return raw  # already canonical: the common case of a bulk import
    number = normalize_number(raw, country_code=country_code) if raw else None
    if number is None or not number.startswith("+"):
        raise ValueError(f"{_show(raw)} is not a full phone number (E.164, e.g. +32470000001)")
    digits = len(number) - 1
    if not _MIN_E164_DIGITS <= digits <= _MAX_E164_DIGITS:
        raise ValueError(f"{_show(raw)} is not a full phone number (E.164, e.g. +32470000001)")
    return number


def check_number_rules(
    number: str, *, managed: bool, status: str, mode: str, has_slots: bool
) -> list[tuple[str, str]]:
    """Rules that tie managed, status, mode and schedule together."""
    problems: list[tuple[str, str]] = []
    if not managed and status == "auto":
        problems.append(("status", f"number {number}: auto cannot be set on an unmanaged number"))
    if not managed and mode == "private":
        problems.append(
            ("mode", f"number {number}: an unmanaged number can only be manual + professional")
        )
    if managed and not has_slots:
        problems.append(("template", f"number {number}: a managed number has at least one slot"))
    return problems
