"""第二十九条 as a table: who may request, approve and see what (pure rules)."""

from __future__ import annotations

import datetime as dt

import pytest

from lerec.hub.access.rules import (
    Confidentiality as C,
)
from lerec.hub.access.rules import (
    Grant,
    Marking,
    Principal,
    decide_access,
    decide_approval,
    decide_request,
)

NOW = dt.datetime(2026, 6, 1, 8, 0, tzinfo=dt.UTC)
SOON = NOW + dt.timedelta(days=7)
CASE = "C-1"

HEAD = Principal("user:head", frozenset({"agency_head"}), cleared_state_secret=True)
HEAD2 = Principal("user:deputy", frozenset({"agency_head"}))
OFFICIAL = Principal("user:li", frozenset({"official"}))
CLEARED = Principal("user:wang", frozenset({"official"}), cleared_state_secret=True)
PARTY = Principal("user:zhang", party_of=frozenset({CASE}), persons=frozenset({"p:zhang"}))
OTHER_PARTY = Principal("user:zhao", party_of=frozenset({CASE}), persons=frozenset({"p:zhao"}))
STRANGER = Principal("user:passerby")

NONE: dict[str, Marking] = {}
PRIVACY_ZHANG = {"rec:3": Marking(frozenset({C.PERSONAL_PRIVACY}), "p:zhang")}
TRADE_ZHAO = {"rec:4": Marking(frozenset({C.COMMERCIAL_SECRET}), "org:zhao-shop")}
SECRET_CASE = {"*": Marking(frozenset({C.STATE_SECRET}))}


@pytest.mark.parametrize("rule,who,scope,marks,until,code", [
    ("R1 party of the case may ask", PARTY, ["rec:1"], NONE, SOON, "ok"),
    ("R1 official may ask", OFFICIAL, ["*"], NONE, SOON, "ok"),
    ("R1 stranger may not", STRANGER, ["rec:1"], NONE, SOON, "not_party"),
    ("R1 party of another case may not", Principal("user:x", party_of=frozenset({"C-9"})),
     ["rec:1"], NONE, SOON, "not_party"),
    ("R2 expiry in the past", PARTY, ["rec:1"], NONE, NOW, "expiry"),
    ("R2 expiry too far", PARTY, ["rec:1"], NONE, NOW + dt.timedelta(days=31), "expiry"),
    ("R2 empty scope", PARTY, [], NONE, SOON, "scope"),
    ("R3 party never sees a state secret", PARTY, ["rec:1"], SECRET_CASE, SOON, "state_secret"),
    ("R3 official needs clearance", OFFICIAL, ["*"], SECRET_CASE, SOON,
     "state_secret_clearance"),
    ("R3 cleared official may ask", CLEARED, ["*"], SECRET_CASE, SOON, "ok"),
    ("R4 own privacy", PARTY, ["rec:3"], PRIVACY_ZHANG, SOON, "ok"),
    ("R4 another party's privacy", OTHER_PARTY, ["rec:3"], PRIVACY_ZHANG, SOON,
     "personal_privacy"),
    ("R4 whole case includes another's privacy", OTHER_PARTY, ["*"], PRIVACY_ZHANG, SOON,
     "personal_privacy"),
    ("R4 another's trade secret", PARTY, ["rec:4"], TRADE_ZHAO, SOON, "commercial_secret"),
    ("R4 official may ask for a trade secret", OFFICIAL, ["rec:4"], TRADE_ZHAO, SOON, "ok"),
    ("R4 unmarked item next to a private one", OTHER_PARTY, ["rec:1"], PRIVACY_ZHANG, SOON,
     "ok"),
])
def test_request_rules(rule, who, scope, marks, until, code):
    d = decide_request(who, CASE, scope, "申请复议", until, NOW, marks)
    assert d.code == code, rule
    assert bool(d) == (code == "ok")


def test_request_needs_a_purpose():
    assert decide_request(PARTY, CASE, ["rec:1"], "  ", SOON, NOW, NONE).code == "purpose"


@pytest.mark.parametrize("rule,approver,requester,requested,granted,until,marks,code", [
    ("R5 head approves", HEAD, PARTY, ["rec:1", "rec:2"], ["rec:1"], SOON, NONE, "ok"),
    ("R5 official cannot approve", OFFICIAL, PARTY, ["rec:1"], ["rec:1"], SOON, NONE,
     "not_agency_head"),
    ("R5 no self-approval", HEAD, HEAD, ["rec:1"], ["rec:1"], SOON, NONE, "self_approval"),
    ("R5 grant may not widen scope", HEAD, PARTY, ["rec:1"], ["rec:1", "rec:2"], SOON, NONE,
     "scope"),
    ("R5 grant may not outlast", HEAD, PARTY, ["rec:1"], ["rec:1"],
     SOON + dt.timedelta(days=1), NONE, "expiry"),
    ("R3 approver of a secret needs clearance", HEAD2, CLEARED, ["*"], ["*"], SOON,
     SECRET_CASE, "state_secret_clearance"),
    ("R3 cleared head approves a cleared official", HEAD, CLEARED, ["*"], ["*"], SOON,
     SECRET_CASE, "ok"),
    ("R4 marking added since the request still protects", HEAD, OTHER_PARTY, ["rec:3"],
     ["rec:3"], SOON, PRIVACY_ZHANG, "personal_privacy"),
])
def test_approval_rules(rule, approver, requester, requested, granted, until, marks, code):
    d = decide_approval(approver, requester, CASE, requested, granted, SOON, until, NOW, marks)
    assert d.code == code, rule


G = Grant(7, PARTY.user, CASE, frozenset({"rec:1", "rec:3"}), SOON)


@pytest.mark.parametrize("rule,who,item,marks,grants,now,code", [
    ("R6 granted item", PARTY, "rec:1", NONE, [G], NOW, "ok"),
    ("R6 item outside the scope", PARTY, "rec:2", NONE, [G], NOW, "out_of_scope"),
    ("R6 whole case with an item grant", PARTY, "*", NONE, [G], NOW, "out_of_scope"),
    ("R6 expired", PARTY, "rec:1", NONE, [G], SOON, "expired"),
    ("R6 revoked", PARTY, "rec:1", NONE, [Grant(7, PARTY.user, CASE, G.scope, SOON, True)],
     NOW, "revoked"),
    ("R6 no grant at all", OFFICIAL, "rec:1", NONE, [], NOW, "no_grant"),
    ("R6 someone else's grant", OTHER_PARTY, "rec:1", NONE, [G], NOW, "no_grant"),
    ("R6 grant for another case", PARTY, "rec:1", NONE,
     [Grant(8, PARTY.user, "C-2", frozenset({"*"}), SOON)], NOW, "no_grant"),
    ("R6 whole-case grant covers items", OFFICIAL, "rec:9", NONE,
     [Grant(9, OFFICIAL.user, CASE, frozenset({"*"}), SOON)], NOW, "ok"),
    ("R6 marking added after approval wins", OTHER_PARTY, "rec:3", PRIVACY_ZHANG,
     [Grant(10, OTHER_PARTY.user, CASE, frozenset({"rec:3"}), SOON)], NOW, "personal_privacy"),
    ("R6 the latest of several refusing grants gives the reason", PARTY, "rec:1", NONE,
     [Grant(12, PARTY.user, CASE, G.scope, SOON, True), G], SOON, "revoked"),
    ("R6 an expired grant does not hide a live one", PARTY, "rec:1", NONE,
     [Grant(5, PARTY.user, CASE, G.scope, NOW), G], NOW + dt.timedelta(minutes=1), "ok"),
    ("R7 agency head without a request", HEAD, "rec:1", NONE, [], NOW, "ok"),
    ("R3 even the head needs clearance", HEAD2, "rec:1", SECRET_CASE, [], NOW,
     "state_secret_clearance"),
    ("R3 a grant does not let a party see a secret", PARTY, "rec:1", SECRET_CASE, [G], NOW,
     "state_secret"),
])
def test_access_rules(rule, who, item, marks, grants, now, code):
    d = decide_access(who, CASE, item, marks, grants, now)
    assert d.code == code, rule
