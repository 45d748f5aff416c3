"""Errors raised by the pure policy functions, rooted at :class:`PolicyError`.

Each error carries its data as attributes. Errors an administrator can act on
(:class:`CalendarNotCovered`, :class:`CalendarConfigError`) have Chinese messages
that say what happened and what to do; :class:`PolicyInputError` signals a bug in
the caller (e.g. a naive datetime) and is worded for developers.

``PolicyError`` should become a subclass of the hub's ``HubError`` once
``hub/errors.py`` exists; it derives from ``Exception`` until then.
"""

from __future__ import annotations


class PolicyError(Exception):
    """Root of every error raised by ``lerec.hub.policy``."""


class CalendarNotCovered(PolicyError, LookupError):
    """The working-day calendar has no data for ``year`` and no override decides the day.

    Raised instead of guessing from the weekday, because a wrong guess silently
    moves a legal deadline (第二十六条).
    """

    def __init__(self, year: int) -> None:
        self.year = year
        super().__init__(f"{year}年的法定节假日安排尚未录入，请在工作日历中补充该年度的调整")


class CalendarConfigError(PolicyError, ValueError):
    """The administrator's override table is inconsistent or unreadable."""

    def __init__(self, source: str, problem: str) -> None:
        self.source = source
        self.problem = problem
        super().__init__(f"工作日历调整表有误（{source}）：{problem}。请修改后重新加载。")


class PolicyInputError(PolicyError, ValueError):
    """A caller passed impossible input (naive datetime, end before start, ...)."""
