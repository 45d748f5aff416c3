"""The administrator's working-day override table as a YAML or JSON file.

The only IO in ``lerec.hub.policy``. File format (YAML shown; JSON has the same keys)::

    covered_years: [2027]          # years the administrator has entered completely
    overrides:
      - date: 2027-02-06
        working: false
        reason: 春节
        set_by: 党政办 张三
      - date: 2027-02-20
        working: true
        reason: 春节调休上班
        set_by: 党政办 张三

Unknown keys, duplicate dates and missing reasons or authors are rejected with a
:class:`CalendarConfigError` naming the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml  # type: ignore[import-untyped,unused-ignore]
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import CalendarConfigError
from .workdays import Override, WorkdayCalendar


class _OverrideEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)

    day: date = Field(alias="date", description="The day being decided, e.g. 2027-02-06.")
    working: bool = Field(description="true: a working day (调休上班); false: a rest day.")
    reason: str = Field(min_length=1, description="Why, shown to administrators, e.g. 春节.")
    set_by: str = Field(min_length=1, description="Who entered the decision.")


class _OverrideFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    covered_years: list[int] = Field(
        default_factory=list,
        description="Years entered completely: undecided days use Mon–Fri work, Sat/Sun rest.",
    )
    overrides: list[_OverrideEntry] = Field(
        default_factory=list, description="One entry per day that differs from the default."
    )


@dataclass(frozen=True)
class OverrideTable:
    """Parsed override table, ready for :meth:`calendar`."""

    overrides: MappingProxyType[date, Override]
    covered_years: frozenset[int]

    def calendar(self) -> WorkdayCalendar:
        return WorkdayCalendar(self.overrides, self.covered_years)


def parse_override_table(data: Any, source: str = "<data>") -> OverrideTable:
    """Validate already-decoded YAML/JSON data."""
    try:
        parsed = _OverrideFile.model_validate(data if data is not None else {})
    except ValidationError as exc:
        problems = "；".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise CalendarConfigError(source, problems) from exc
    table: dict[date, Override] = {}
    for entry in parsed.overrides:
        if entry.day in table:
            raise CalendarConfigError(source, f"{entry.day} 出现了不止一次")
        table[entry.day] = Override(entry.day, entry.working, entry.reason, entry.set_by)
    return OverrideTable(MappingProxyType(table), frozenset(parsed.covered_years))


def load_override_table(path: str | Path) -> OverrideTable:
    """Read a ``.yaml``/``.yml`` or ``.json`` override table."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CalendarConfigError(str(path), f"无法读取文件（{exc.strerror}）") from exc
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            data = yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise CalendarConfigError(str(path), f"文件格式错误：{exc}") from exc
    return parse_override_table(data, str(path))
