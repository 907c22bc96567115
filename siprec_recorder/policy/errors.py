"""Errors of the policy layer.

Every rule of the recording policy fails with a :class:`PolicyError` whose message names the
number or template, the slot and (for bulk imports) the row, so that the message can be shown
to the fleet manager as-is. Bulk imports collect every bad row in a :class:`CsvImportError`.
"""

from __future__ import annotations

from dataclasses import dataclass

from siprec_recorder.errors import RecorderError, RemoteProtocolError

__all__ = [
    "CsvImportError",
    "NotFoundError",
    "PolicyError",
    "RowProblem",
    "RuleError",
    "ScheduleError",
]


class PolicyError(RecorderError):
    """A policy rule was broken; ``str(error)`` is the message for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ScheduleError(PolicyError):
    """A slot could not be parsed, or a set of slots breaks a schedule rule.

    ``problems`` holds every problem found (the message joins them with ``"; "``).
    """

    def __init__(self, problems: list[str] | tuple[str, ...] | str) -> None:
        if isinstance(problems, str):
            problems = (problems,)
        self.problems: tuple[str, ...] = tuple(problems)
        super().__init__("; ".join(self.problems))


class NotFoundError(PolicyError):
    """A number or template does not exist."""


class RuleError(PolicyError):
    """A change would break a rule (managed/status, self service, active, ...)."""


@dataclass(frozen=True, slots=True)
class RowProblem:
    """One problem of a bulk import: 1-based ``row`` (the header is row 1), ``column`` name."""

    row: int
    column: str
    message: str

    def __str__(self) -> str:
        return f"row {self.row}, {self.column}: {self.message}"


class CsvImportError(RemoteProtocolError):
    """A bulk import was refused; nothing was changed. ``problems`` lists every bad row."""

    def __init__(self, problems: list[RowProblem], *, limit: int = 20) -> None:
        self.problems: tuple[RowProblem, ...] = tuple(problems)
        shown = "\n".join(str(p) for p in self.problems[:limit])
        more = len(self.problems) - limit
        if more > 0:
            shown += f"\n... and {more} more"
        noun = "problem" if len(self.problems) == 1 else "problems"
        super().__init__(
            f"import refused, nothing changed: {len(self.problems)} {noun}\n{shown}",
            status_hint=None,
        )
