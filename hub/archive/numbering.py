"""Archive numbers (档号): a configurable pattern and a counter per scope.

The default pattern ``{org}-{year}-{type}-{seq:04d}`` gives e.g. ``新乡镇-2026-行政处罚-0007``.
The counter scope is everything in the pattern except ``seq``, so each (org, year, type)
counts from 1. Numbers are allocated in their own transaction, before the package is built:
a failed build leaves a gap in the numbers, never a duplicate.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..db.trust_models import ArchiveCounter

DEFAULT_PATTERN = "{org}-{year}-{type}-{seq:04d}"
_SAFE = re.compile(r"[^\w.\-]+", re.UNICODE)


@dataclass(frozen=True)
class Numbering:
    pattern: str = DEFAULT_PATTERN
    org: str = "新乡镇"

    def __post_init__(self) -> None:
        names = {f[1] for f in string.Formatter().parse(self.pattern) if f[1]}
        if "seq" not in names or not names <= {"org", "year", "type", "seq"}:
            raise ValueError("archive number pattern needs {seq} and may use {org} {year} "
                             f"{{type}} only: {self.pattern!r}")

    def scope(self, year: int, case_type: str) -> str:
        return f"{self.pattern}|{self.org}|{year}|{case_type}"

    def render(self, year: int, case_type: str, seq: int) -> str:
        return self.pattern.format(org=self.org, year=year, type=case_type, seq=seq)


async def allocate(session: AsyncSession, numbering: Numbering, year: int, case_type: str) -> str:
    """Next archive number in ``numbering``'s scope (call inside a transaction)."""
    scope = numbering.scope(year, case_type)
    seq = (await session.execute(
        update(ArchiveCounter).where(ArchiveCounter.scope == scope)
        .values(last_seq=ArchiveCounter.last_seq + 1).returning(ArchiveCounter.last_seq)
    )).scalar_one_or_none()
    if seq is None:
        existing = (await session.execute(
            select(ArchiveCounter).where(ArchiveCounter.scope == scope))).scalar_one_or_none()
        if existing is not None:  # pragma: no cover - update above would have matched
            raise RuntimeError("archive counter raced")
        session.add(ArchiveCounter(scope=scope, last_seq=1))
        await session.flush()
        seq = 1
    return numbering.render(year, case_type, seq)


def folder_name(archive_no: str) -> str:
    """A file-system-safe folder name for an archive number."""
    return _SAFE.sub("_", archive_no).strip("_") or "archive"
