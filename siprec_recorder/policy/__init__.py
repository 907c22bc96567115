"""Recording policy: which numbers are recorded, and when.

* :mod:`.schedule` -- weekly slots (``"mon-fri 08:00-18:00"``), their rules, DST-correct lookup;
* :mod:`.emergency` -- emergency numbers in every form an SRC sends them;
* :mod:`.engine` -- :class:`PolicyEngine.decide <.engine.PolicyEngine>` on every INVITE;
* :mod:`.service` -- numbers, modes, schedules, templates (rules, audit, notifications);
* :mod:`.importer` -- bulk CSV/XLSX import (all or nothing) and export;
* :mod:`.notify` -- delivery of queued notifications to the webhook;
* :mod:`.cli` -- the ``templates`` and ``numbers`` commands.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# The names below are loaded on first use: ``siprec_recorder.config`` imports
# ``policy.settings``, and importing it must not pull in SQLAlchemy and the service layer.
_EXPORTS = {
    "DEFAULT_EMERGENCY_NUMBERS": "settings",
    "PolicySettings": "settings",
    "CsvImportError": "errors",
    "NotFoundError": "errors",
    "PolicyError": "errors",
    "RowProblem": "errors",
    "RuleError": "errors",
    "ScheduleError": "errors",
    "EmergencyMatcher": "emergency",
    "is_emergency": "emergency",
    "Slot": "schedule",
    "WeeklySchedule": "schedule",
    "in_schedule": "schedule",
    "Decision": "engine",
    "PolicyEngine": "engine",
    "NumberView": "service",
    "PolicyService": "service",
    "TemplateView": "service",
}

if TYPE_CHECKING:
    from .emergency import EmergencyMatcher, is_emergency
    from .engine import Decision, PolicyEngine
    from .errors import (
        CsvImportError,
        NotFoundError,
        PolicyError,
        RowProblem,
        RuleError,
        ScheduleError,
    )
    from .schedule import Slot, WeeklySchedule, in_schedule
    from .service import NumberView, PolicyService, TemplateView
    from .settings import DEFAULT_EMERGENCY_NUMBERS, PolicySettings


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


__all__ = [
    "DEFAULT_EMERGENCY_NUMBERS",
    "CsvImportError",
    "Decision",
    "EmergencyMatcher",
    "NotFoundError",
    "NumberView",
    "PolicyEngine",
    "PolicyError",
    "PolicyService",
    "PolicySettings",
    "RowProblem",
    "RuleError",
    "ScheduleError",
    "Slot",
    "TemplateView",
    "WeeklySchedule",
    "in_schedule",
    "is_emergency",
]
