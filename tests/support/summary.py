"""Tables printed at the end of a session (the fault and security gauntlets' reports)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Row = tuple[str, Sequence[int], str]  # name, counts, note


def write_table(tr: Any, title: str, key: tuple[str, int], counts: Sequence[tuple[str, int]],
                rows: Sequence[Row]) -> None:
    """A section ``title`` in the terminal report: a header (``key`` and each of ``counts``
    as (heading, width)), a line per row and the totals; nothing when there are no rows."""
    if not rows:
        return
    name, width = key

    def line(first: str, values: Sequence[Any], note: str | None) -> str:
        cells = "".join(f"{v:>{w}}" for v, (_, w) in zip(values, counts, strict=True))
        return f"{first:<{width}}{cells}" + (f"  {note}" if note is not None else "")

    tr.section(title)
    head = line(name, [c for c, _ in counts], "note")
    tr.write_line(head)
    tr.write_line("-" * len(head))
    for first, values, note in rows:
        tr.write_line(line(first, values, note))
    tr.write_line(line("total", [sum(r[1][i] for r in rows) for i in range(len(counts))], None))
