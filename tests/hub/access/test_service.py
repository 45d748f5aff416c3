"""The access service against a real database: request, approve/refuse, view, revoke, audit."""

from __future__ import annotations

import datetime as dt

import pytest
from lerec.hub.access import (
    AccessError,
    Confidentiality,
    approve,
    check_access,
    list_requests,
    mark_confidential,
    refuse,
    request_access,
    revoke,
    status_now,
)
from lerec.hub.access.rules import Principal
from lerec.hub.audit import log as audit

NOW = dt.datetime(2026, 6, 1, 8, 0, tzinfo=dt.UTC)
HEAD = Principal("user:head", frozenset({"agency_head"}))
OFFICIAL = Principal("user:li", frozenset({"official"}))
PARTY = Principal("user:zhang", party_of=frozenset({"C-1"}), persons=frozenset({"p:zhang"}))
OTHER = Principal("user:zhao", party_of=frozenset({"C-1"}), persons=frozenset({"p:zhao"}))


async def test_request_approve_view_revoke_all_logged(sessions):
    async with sessions() as s, s.begin():
        req = await request_access(s, PARTY, "C-1", "准备行政复议", ["segment:a", "record:R2"],
                                   NOW + dt.timedelta(days=10), now=NOW)
        assert req.status == "pending" and req.requester_kind == "party"
        assert not await check_access(s, PARTY, "C-1", "segment:a", NOW)
    async with sessions() as s, s.begin():
        with pytest.raises(AccessError) as e:
            await approve(s, OFFICIAL, req.id, now=NOW)
        assert e.value.code == "not_agency_head"
        await approve(s, HEAD, req.id, requester=PARTY, scope=["segment:a"],
                      until=NOW + dt.timedelta(days=5), now=NOW)
    async with sessions() as s, s.begin():
        t = NOW + dt.timedelta(hours=1)
        d = await check_access(s, PARTY, "C-1", "segment:a", t, action="download")
        assert d and d.grant == req.id
        assert (await check_access(s, PARTY, "C-1", "record:R2", t)).code == "out_of_scope"
        assert (await check_access(s, PARTY, "C-1", "segment:a", NOW + dt.timedelta(days=6))
                ).code == "expired"
        row = (await list_requests(s, case_id="C-1"))[0]
        assert status_now(row, NOW + dt.timedelta(days=6)) == "expired"
    async with sessions() as s, s.begin():
        await revoke(s, HEAD, req.id, "复查", now=NOW + dt.timedelta(hours=2))
    async with sessions() as s, s.begin():
        d = await check_access(s, PARTY, "C-1", "segment:a", NOW + dt.timedelta(hours=3))
        assert d.code == "revoked"
    async with sessions() as s:
        kinds = [(e.type.value, e.details.get("allowed"))
                 for _, e in await audit.entries(s, subject="case:C-1")]
    assert kinds == [("access_request", None), ("view", False), ("approval", None),
                     ("download", True), ("view", False), ("view", False),
                     ("access_revoked", None), ("view", False)]


async def test_refusal_needs_the_head_and_a_reason(sessions):
    async with sessions() as s, s.begin():
        req = await request_access(s, OFFICIAL, "C-1", "内部审查", ["*"],
                                   NOW + dt.timedelta(days=3), now=NOW)
        with pytest.raises(AccessError):
            await refuse(s, HEAD, req.id, " ", now=NOW)
        with pytest.raises(AccessError):
            await refuse(s, OFFICIAL, req.id, "no", now=NOW)
        row = await refuse(s, HEAD, req.id, "与本人工作无关", now=NOW)
        assert row.status == "refused" and row.decided_by == HEAD.user
        with pytest.raises(AccessError, match="not pending"):
            await approve(s, HEAD, req.id, now=NOW)


async def test_confidential_items_are_refused_by_the_rules_and_logged(sessions):
    async with sessions() as s, s.begin():
        await mark_confidential(s, OFFICIAL, "C-1", "record:R3",
                                [Confidentiality.PERSONAL_PRIVACY], owner="p:zhang")
        mine = await request_access(s, PARTY, "C-1", "查阅本人信息", ["record:R3"],
                                    NOW + dt.timedelta(days=3), now=NOW)
        theirs = await request_access(s, OTHER, "C-1", "查阅", ["record:R3"],
                                      NOW + dt.timedelta(days=3), now=NOW)
    assert mine.status == "pending"
    assert theirs.status == "refused" and "personal_privacy" in theirs.decision_reason
    async with sessions() as s, s.begin():
        with pytest.raises(AccessError):
            await mark_confidential(s, PARTY, "C-1", "*", ["state_secret"])
        await mark_confidential(s, OFFICIAL, "C-1", "*", ["state_secret"])
        with pytest.raises(AccessError) as e:
            await approve(s, HEAD, mine.id, requester=PARTY, now=NOW)
        assert e.value.code == "state_secret_clearance"
