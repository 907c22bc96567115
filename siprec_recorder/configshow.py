"""The effective configuration as TOML, for ``config check``: what the recorder will really
use once the file, the defaults and the environment are combined, with secrets masked."""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

from .config import SECRET_KEYS, Config, mask_secret

__all__ = ["render_config"]


def _toml_value(value: Any) -> str:
    if isinstance(value, tuple):
        value = list(value)
    # JSON's strings, numbers, booleans and lists of strings are valid TOML.
    return json.dumps(value, ensure_ascii=False)


def render_config(config: Config) -> str:
    """Every section and key with its effective value; ``database_url`` and ``notify_webhook``
    have their password or query masked."""
    lines: list[str] = []
    for section in fields(config):
        table = getattr(config, section.name)
        if not hasattr(table, "__dataclass_fields__"):
            continue
        lines.append(f"[{section.name}]")
        for f in fields(table):
            value = getattr(table, f.name)
            if (section.name, f.name) in SECRET_KEYS and isinstance(value, str):
                value = mask_secret(value)
            if value is None:
                # TOML has no null: an unset key shows the value the recorder resolves it to.
                resolved = getattr(config, f.name, None)
                if resolved is None:
                    lines.append(f"# {f.name} is not set")
                else:
                    lines.append(f"# {f.name} = {_toml_value(resolved)}  (not set: the default)")
                continue
            lines.append(f"{f.name} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)
