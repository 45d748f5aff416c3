"""Errors raised by the rulebook package (one root: RulebookError)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a rulebook: where it is (dotted path in the file) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '<root>'}: {self.message}"


class RulebookError(ValueError):
    """A rulebook file cannot be used. Carries the file and every problem found in it."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"rulebook {source} is invalid ({len(self.problems)} problem(s)); "
            f"fix the file and load it again:\n{lines}"
        )


class UnknownEntryError(RulebookError, KeyError):
    """A lookup (kind, stage, role ...) asked for an id that the rulebook does not define."""

    def __init__(self, source: str, section: str, entry_id: str, known: list[str]) -> None:
        self.section = section
        self.entry_id = entry_id
        super().__init__(
            source,
            [Problem(f"{section}.{entry_id}", f"not defined; known ids: {', '.join(known)}")],
        )

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return ValueError.__str__(self)
