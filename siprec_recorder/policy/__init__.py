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

from .emergency import EmergencyMatcher, is_emergency
from .engine import Decision, PolicyEngine
from .errors import CsvImportError, NotFoundError, PolicyError, RowProblem, RuleError, ScheduleError
from .schedule import Slot, WeeklySchedule, in_schedule
from .service import NumberView, PolicyService, TemplateView
from .settings import DEFAULT_EMERGENCY_NUMBERS, PolicySettings

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
