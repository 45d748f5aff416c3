"""Errors of the case service. Messages are for the people using the admin service (Chinese)
and say what to do; subclasses carry data."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import HubError
from ..rules import FieldError


class CaseError(HubError):
    """Root of the case service's errors. ``status`` is the HTTP status the web layer uses."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(CaseError, LookupError):
    status = 404


class NotVisible(NotFound):
    """The case exists but the user may not see it: answered exactly like a missing case."""

    def __init__(self, what: str, ident: object) -> None:
        super().__init__(f"{what}「{ident}」不存在，或您无权查看。请从案件列表中选择。")
        self.what = what
        self.ident = ident


class InvalidInput(CaseError, ValueError):
    """Submitted data was refused; ``errors`` lists the field problems (may be empty)."""

    def __init__(self, message: str, errors: Sequence[FieldError] = ()) -> None:
        super().__init__(message)
        self.errors = list(errors)


class InvalidTransition(CaseError):
    """A stage change that the rulebook's order does not allow."""

    status = 409


class Conflict(CaseError):
    """The thing changed since the form was loaded, or already exists."""

    status = 409
