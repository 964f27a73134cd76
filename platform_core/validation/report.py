"""The validation report: every problem at once, each naming where it is and the rule broken."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class DatasetKind(str, Enum):
    IMAGE = "image"
    SENTIMENT = "sentiment"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Problem:
    """One broken rule. ``where`` names the entry or rows; ``code`` is stable for programs."""

    code: str
    message: str
    where: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "where": self.where, "message": self.message}


@dataclass
class ValidationReport:
    kind: DatasetKind = DatasetKind.UNKNOWN
    classes: dict[str, int] = field(default_factory=dict)
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    # The normalised dataset to store (a zip we wrote, or a UTF-8 CSV); None when invalid.
    normalised: bytes | None = None
    normalised_name: str = ""

    @property
    def valid(self) -> bool:
        return not self.errors

    def error(self, code: str, message: str, where: str = "") -> None:
        self.errors.append(Problem(code, message, where))

    def warn(self, code: str, message: str, where: str = "") -> None:
        self.warnings.append(Problem(code, message, where))

    def as_dict(self) -> dict[str, Any]:
        """The `mlbot validate --json` shape, plus structured ``problems``."""
        return {
            "valid": self.valid,
            "kind": self.kind.value,
            "classes": dict(self.classes),
            "errors": [p.message for p in self.errors],
            "warnings": [p.message for p in self.warnings],
            "problems": [dict(p.as_dict(), severity="error") for p in self.errors]
            + [dict(p.as_dict(), severity="warning") for p in self.warnings],
        }


def summarise_items(items: list[str], limit: int = 8) -> str:
    """'a, b, c' or 'a, b, c and 12 more' so a report names entries without flooding a chat."""
    shown = ", ".join(items[:limit])
    if len(items) > limit:
        shown += f" and {len(items) - limit} more"
    return shown


def plural(count: int, word: str, many: str | None = None) -> str:
    """'1 problem', '3 problems'."""
    return f"{count} {word if count == 1 else (many or word + 's')}"


def size_text(n: float) -> str:
    """'512 bytes', '3.4 KB', '50 MB', '1.5 GB': a size a person reads at a glance."""
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= scale:
            value = n / scale
            return f"{value:.0f} {unit}" if value >= 10 or value == int(value) else f"{value:.1f} {unit}"
    return plural(int(n), "byte")


def over_limit(size: float, cap: float) -> str:
    """'52 MB, over the limit of 50 MB'; the size is left out when it would print like the limit."""
    shown, limit = size_text(size), size_text(cap)
    return f"over the limit of {limit}" if shown == limit else f"{shown}, over the limit of {limit}"
