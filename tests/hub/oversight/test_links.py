"""Links between segments and case steps: manual, automatic, never deleted, audited."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pytest
from lerec.hub.audit import log as audit
from lerec.hub.db.oversight_models import SegmentLink
from lerec.hub.oversight import (
    AlreadyLinked,
    AlreadyRemoved,
    NoteRequired,
    auto_link_segment,
    auto_link_step,
    link_segment,
    links_for_case,
    links_for_segment,
    on_segment_stored,
    unlink,
)
from lerec.hub.policy import CaseStep
from sqlalchemy import func, select


class StepBook:
    """A working StepSource: case steps held in memory, queried by officer and time."""

    def __init__(self, steps: Sequence[CaseStep] = ()) -> None:
        self.steps = list(steps)
        self.queries: list[tuple[str, dt.datetime, dt.datetime]] = []

    async def steps_for(self, session, officer_id, start, end):
        self.queries.append((officer_id, start, end))
        return [st for st in self.steps if officer_id in st.assignees and st.start <= end
                and (st.end is None or st.end >= start)]


async def test_manual_link_and_unlink_are_audited_and_never_delete_rows(db, at):
    await db.device("rec-a")
    seg = await db.segment("rec-a", 0, at("2024-05-06", "09:00"))
    async with db.sessions() as s, s.begin():
        with pytest.raises(NoteRequired):
            await link_segment(s, seg.segment_id, "case-1", "inspect", "alice", "")
        link = await link_segment(s, seg.segment_id, "case-1", "inspect", "alice", "现场检查录像")
    async with db.sessions() as s, s.begin():
        with pytest.raises(AlreadyLinked):
            await link_segment(s, seg.segment_id, "case-1", "inspect", "bob", "again")
    async with db.sessions() as s, s.begin():
        await unlink(s, link.id, "bob", "关联错误")
        with pytest.raises(AlreadyRemoved):
            await unlink(s, link.id, "bob", "again")
    async with db.sessions() as s, s.begin():
        relinked = await link_segment(s, seg.segment_id, "case-1", "inspect", "alice", "复核后重新关联")
    async with db.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(SegmentLink)) == 2
        (old,) = [x for x in await links_for_segment(s, seg.segment_id, include_removed=True)
                  if x.id == link.id]
        assert (old.removed_by, old.removed_reason, old.method) == ("bob", "关联错误", "manual")
        assert [x.id for x in await links_for_case(s, "case-1")] == [relinked.id]
        events = [e for _, e in await audit.entries(s, subject="case:case-1")]
        assert [(e.type.value, e.actor) for e in events] == [
            ("link", "user:alice"), ("unlink", "user:bob"), ("link", "user:alice")]
        assert f"segment:{seg.segment_id}" in events[1].subjects
        assert events[1].details["reason"] == "关联错误"


async def test_auto_link_by_officer_and_time(db, at):
    await db.device("rec-a", "officer-7")
    await db.device("rec-u", "unassigned")
    inspect = CaseStep("case-1", "inspect", at("2024-05-06", "09:00"), at("2024-05-06", "10:00"),
                       frozenset({"officer-7", "officer-8"}))
    other = CaseStep("case-2", "seize", at("2024-05-06", "09:00"), None, frozenset({"officer-8"}))
    late = CaseStep("case-3", "serve", at("2024-05-06", "12:00"), None, frozenset({"officer-7"}))
    book = StepBook([inspect, other, late])

    seg = await db.segment("rec-a", 0, at("2024-05-06", "10:03"))  # within the 5 min tolerance
    async with db.sessions() as s, s.begin():
        out = await on_segment_stored(s, seg, source=book, now=seg.received_at)
    assert [(x.case_id, x.step_id, x.method, x.created_by) for x in out.links] == [
        ("case-1", "inspect", "auto", "hub")]
    assert book.queries[0][0] == "officer-7"

    unassigned = await db.segment("rec-u", 0, at("2024-05-06", "09:30"))
    async with db.sessions() as s, s.begin():
        assert await auto_link_segment(s, unassigned, book) == []
        # an administrator removes the auto link; running again must not re-create it
        (link,) = await links_for_segment(s, seg.segment_id)
        await unlink(s, link.id, "alice", "与本案无关")
        assert await auto_link_segment(s, seg, book) == []
        events = [e for _, e in await audit.entries(s, subject="case:case-1")]
        assert [(e.type.value, e.actor, e.details["method"]) for e in events] == [
            ("link", "hub", "auto"), ("unlink", "user:alice", "auto")]


async def test_auto_link_step_finds_stored_segments_of_its_assignees(db, at):
    await db.device("rec-a", "officer-7")
    await db.device("rec-b", "officer-8")
    await db.device("rec-u", "unassigned")
    a0 = await db.segment("rec-a", 0, at("2024-05-06", "08:40"))  # ends 08:45: too early
    a1 = await db.segment("rec-a", 1, at("2024-05-06", "09:10"))
    b0 = await db.segment("rec-b", 0, at("2024-05-06", "09:50"))
    await db.segment("rec-u", 0, at("2024-05-06", "09:20"))
    step = CaseStep("case-9", "inspect", at("2024-05-06", "09:00"), at("2024-05-06", "10:00"),
                    frozenset({"officer-7", "officer-8"}))
    async with db.sessions() as s, s.begin():
        links = await auto_link_step(s, step)
        assert sorted(x.segment_id for x in links) == sorted([a1.segment_id, b0.segment_id])
        assert await auto_link_step(s, step) == []  # idempotent
        assert await links_for_segment(s, a0.segment_id) == []
