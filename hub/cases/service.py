"""The case service: open cases, record each step, move through the stages, approve,
archive. Every create and change writes an audit entry in the same transaction; records keep
every version (no silent overwrite). Functions take an :class:`Actor` and work inside the
caller's transaction; the caller commits.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from ..audit.entries import EventType
from ..audit.log import record_event
from ..db.cases_models import (
    Approval,
    Case,
    CaseAttachment,
    CaseMember,
    CaseRecord,
    CaseRecordVersion,
    StageChange,
    User,
)
from ..db.types import utcnow
from ..policy.linking import CaseStep
from ..rules import Rulebook, article_label
from ..rules.model import Condition
from . import links_adapter
from .errors import Conflict, InvalidInput, InvalidTransition, NotFound, NotVisible
from .snapshot import refresh_findings

CHINA = dt.timezone(dt.timedelta(hours=8))
DEFAULT_STEP = dt.timedelta(hours=1)
#: the record kind and field that say when execution ended (第二十八条 starts from it)
EXECUTION_END = ("execution", "ended_at")
#: an application record saying 不予受理 (第六条) closes the case as not started
REJECTED_APPLICATION = ("application", "acceptance", "rejected")
TITLE_MAX = 200


@dataclass(frozen=True)
class Actor:
    """Who is acting: a logged-in user. ``sees_all`` is False for roles that see only the
    cases they are assigned to (decided by the permission matrix of the admin service)."""

    user_id: int
    name: str
    display_name: str
    role: str
    officer_id: str | None
    sees_all: bool

    @property
    def audit(self) -> str:
        return f"user:{self.name}"


# -- visibility ---------------------------------------------------------------------------


def visible(actor: Actor) -> ColumnElement[bool]:
    if actor.sees_all:
        return true()
    return Case.id.in_(select(CaseMember.case_id).where(CaseMember.user_id == actor.user_id))


async def get_case(session: AsyncSession, actor: Actor, case_id: int) -> Case:
    case = await session.get(Case, case_id)
    if case is None:
        raise NotVisible("案件", case_id)
    if not actor.sees_all:
        member = (await session.execute(
            select(CaseMember.id).where(CaseMember.case_id == case_id,
                                        CaseMember.user_id == actor.user_id)
        )).first()
        if member is None:
            raise NotVisible("案件", case_id)
    return case


async def get_record(session: AsyncSession, case: Case, record_id: int) -> CaseRecord:
    rec = await session.get(CaseRecord, record_id)
    if rec is None or rec.case_id != case.id:
        raise NotFound(f"记录「{record_id}」不在本案中。")
    return rec


# -- helpers ------------------------------------------------------------------------------


def _facts(case: Case) -> frozenset[str]:
    return frozenset(json.loads(case.facts or "[]"))


def parse_time(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, str) and value.strip():
        try:
            moment = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    else:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=CHINA)


def _window(rb: Rulebook, kind_id: str, fields: Mapping[str, Any],
            window_end: dt.datetime | None) -> tuple[dt.datetime | None, dt.datetime | None]:
    kind = rb.kind(kind_id)
    for fid, fdef in kind.fields.items():
        if fdef.type == "datetime":
            start = parse_time(fields.get(fid))
            if start is not None:
                end = window_end if window_end is not None and window_end >= start else None
                return start, end or start + DEFAULT_STEP
    return None, None


def _stage_index(rb: Rulebook, stage: str) -> int:
    order = rb.stage_order()
    return order.index(stage) if stage in order else -1


def kind_applies(rb: Rulebook, case: Case, kind_id: str) -> str | None:
    """Why a record kind cannot be recorded on this case now (Chinese), or None."""
    kind = rb.kind(kind_id)
    if case.archived_at is not None:
        return "案件已归档，案卷已锁定，不能再增加或修改记录。"
    if _stage_index(rb, kind.stage) > _stage_index(rb, case.stage):
        return (f"「{kind.name}」属于「{rb.stages[kind.stage].name}」环节，本案尚处于"
                f"「{rb.stages[case.stage].name}」环节：请先推进案件环节。")
    cond = kind.required_when
    if isinstance(cond, Condition) and cond.start_modes is not None \
            and case.start_mode not in cond.start_modes:
        modes = "、".join(rb.start_modes[m].name for m in cond.start_modes)
        return (f"「{kind.name}」（{article_label(kind.article)}）只适用于{modes}的案件，"
                f"本案为{rb.start_modes[case.start_mode].name}。")
    if case.not_started and kind.stage != rb.stage_order()[0]:
        return "本案已决定不启动执法程序，只能补充程序启动环节的记录。"
    return None


def addable_kinds(rb: Rulebook, case: Case) -> list[str]:
    return [k for k in rb.record_kinds if kind_applies(rb, case, k) is None]


async def _check_attachment_refs(session: AsyncSession, rb: Rulebook, case: Case, kind_id: str,
                                 fields: Mapping[str, Any]) -> None:
    kind = rb.kind(kind_id)
    wanted: set[int] = set()
    for fid, fdef in kind.fields.items():
        if fdef.type != "attachment" or fid not in fields or fields[fid] in (None, "", []):
            continue
        value = fields[fid]
        for item in [value] if isinstance(value, str) else (value or []):
            if not isinstance(item, str) or not item.startswith("att-") \
                    or not item[4:].isdigit():
                raise InvalidInput(f"「{fdef.label}」引用的附件「{item}」无效，请从本案附件中选择。")
            wanted.add(int(item[4:]))
    if wanted:
        found = {r[0] for r in await session.execute(
            select(CaseAttachment.id).where(CaseAttachment.id.in_(wanted),
                                            CaseAttachment.case_id == case.id))}
        missing = wanted - found
        if missing:
            raise InvalidInput("引用的附件不在本案中：" + "、".join(f"att-{m}" for m in sorted(missing)))


async def _touch(session: AsyncSession, rb: Rulebook, case: Case) -> None:
    case.updated_at = utcnow()
    await session.flush()
    await refresh_findings(session, rb, case)


async def user_by_id(session: AsyncSession, user_id: int) -> User | None:
    return await session.get(User, user_id)


# -- cases --------------------------------------------------------------------------------


async def create_case(
    session: AsyncSession, rb: Rulebook, actor: Actor, *,
    title: str, enforcement_type: str, start_mode: str, party: str = "",
    handler_id: int | None = None, officer_ids: Iterable[int] = (), facts: Iterable[str] = (),
) -> Case:
    title = (title or "").strip()
    if not title:
        raise InvalidInput("请填写案件名称。")
    if len(title) > TITLE_MAX:
        raise InvalidInput(f"案件名称最多 {TITLE_MAX} 个字。")
    party = (party or "").strip()
    if len(party) > 200:
        raise InvalidInput("当事人最多 200 个字。")
    if enforcement_type not in rb.enforcement_types:
        raise InvalidInput("请选择执法类型（第二条）：" + "、".join(
            t.name for t in rb.enforcement_types.values()) + "。")
    if start_mode not in rb.start_modes:
        raise InvalidInput("请选择启动方式：" + "、".join(
            f"{m.name}（{article_label(m.article)}）" for m in rb.start_modes.values()) + "。")
    facts = sorted(set(facts))
    unknown = [f for f in facts if f not in rb.facts]
    if unknown:
        raise InvalidInput("未知的案件情形：" + "、".join(unknown))
    if handler_id is None and actor.role == "handler":
        handler_id = actor.user_id
    members: dict[int, str] = {}
    if handler_id is not None:
        handler = await session.get(User, handler_id)
        if handler is None or not handler.active or handler.role != "handler":
            raise InvalidInput("承办人无效：请选择一名在职的承办人。")
        members[handler_id] = "handler"
    for oid in officer_ids:
        officer = await session.get(User, oid)
        if officer is None or not officer.active or officer.role not in ("officer", "handler"):
            raise InvalidInput(f"执法人员「{oid}」无效：请选择在职的执法人员。")
        members.setdefault(oid, "officer")
    now = utcnow()
    case = Case(
        case_no=f"tmp-{now.timestamp()}-{actor.user_id}", title=title, party=party,
        enforcement_type=enforcement_type, start_mode=start_mode,
        stage=rb.stage_order()[0], not_started=False, facts=json.dumps(facts),
        handler_id=handler_id, created_by=actor.user_id, created_at=now, updated_at=now,
        finding_errors=0, finding_warnings=0,
    )
    session.add(case)
    await session.flush()
    case.case_no = case_number(case.id, now)
    for uid, role in members.items():
        session.add(CaseMember(case_id=case.id, user_id=uid, role=role))
    await session.flush()
    await record_event(session, EventType.RECORD_CREATED, actor.audit, [f"case:{case.id}"], {
        "what": "case", "case_no": case.case_no, "type": enforcement_type,
        "start_mode": start_mode, "members": sorted(members),
    })
    await refresh_findings(session, rb, case)
    return case


def case_number(case_id: int, at: dt.datetime) -> str:
    return f"新乡执〔{at.astimezone(CHINA).year}〕{case_id:05d}号"


async def set_members(session: AsyncSession, rb: Rulebook, actor: Actor, case: Case,
                      officer_ids: Iterable[int]) -> None:
    existing = {m.user_id: m for m in (await session.execute(
        select(CaseMember).where(CaseMember.case_id == case.id))).scalars()}
    wanted = set(officer_ids)
    for uid in wanted - set(existing):
        u = await session.get(User, uid)
        if u is None or not u.active or u.role not in ("officer", "handler"):
            raise InvalidInput(f"执法人员「{uid}」无效。")
        session.add(CaseMember(case_id=case.id, user_id=uid, role="officer"))
    for uid, m in existing.items():
        if m.role == "officer" and uid not in wanted:
            await session.delete(m)
    await record_event(session, EventType.RECORD_CHANGED, actor.audit, [f"case:{case.id}"],
                       {"what": "members", "officers": sorted(wanted)})
    await _touch(session, rb, case)


async def set_facts(session: AsyncSession, rb: Rulebook, actor: Actor, case: Case,
                    facts: Iterable[str]) -> None:
    new = sorted(set(facts))
    unknown = [f for f in new if f not in rb.facts]
    if unknown:
        raise InvalidInput("未知的案件情形：" + "、".join(unknown))
    if case.archived_at is not None:
        raise InvalidTransition("案件已归档，不能再修改。")
    old = sorted(_facts(case))
    if old == new:
        return
    case.facts = json.dumps(new)
    await record_event(session, EventType.RECORD_CHANGED, actor.audit, [f"case:{case.id}"],
                       {"what": "facts", "from": old, "to": new})
    await _touch(session, rb, case)


async def advance_stage(session: AsyncSession, rb: Rulebook, actor: Actor, case: Case,
                        to_stage: str, note: str = "") -> None:
    """Move the case to the next stage of the rulebook's order (one step forward only)."""
    order = rb.stage_order()
    if to_stage not in order:
        raise InvalidInput(f"未知环节「{to_stage}」。")
    if case.archived_at is not None:
        raise InvalidTransition("案件已归档，环节不能再变更。")
    if case.not_started:
        raise InvalidTransition("本案已决定不启动执法程序，不能推进环节。")
    here = order.index(case.stage)
    if order.index(to_stage) != here + 1:
        nxt = rb.stages[order[here + 1]].name if here + 1 < len(order) else None
        raise InvalidTransition(
            f"环节须按顺序推进：本案处于「{rb.stages[case.stage].name}」，"
            + (f"下一环节为「{nxt}」。" if nxt else "已是最后一个环节，请由党政办归档。"))
    if len(note) > 2000:
        raise InvalidInput("说明最多 2000 字。")
    session.add(StageChange(case_id=case.id, from_stage=case.stage, to_stage=to_stage,
                            by_user=actor.user_id, at=utcnow(), note=note))
    await record_event(session, EventType.RECORD_CHANGED, actor.audit, [f"case:{case.id}"],
                       {"what": "stage", "from": case.stage, "to": to_stage})
    case.stage = to_stage
    await _touch(session, rb, case)


async def decide_not_to_start(session: AsyncSession, rb: Rulebook, actor: Actor, case: Case,
                              note: str) -> None:
    """第七条第二款 / 第八条第二款: the decision not to start; the notice record is then due."""
    if case.stage != rb.stage_order()[0] or case.not_started:
        raise InvalidTransition("只有处于程序启动环节的案件可以决定不启动执法程序。")
    note = (note or "").strip()
    if not note:
        raise InvalidInput("请填写不启动执法程序的理由。")
    if len(note) > 2000:
        raise InvalidInput("理由最多 2000 字。")
    case.not_started = True
    session.add(StageChange(case_id=case.id, from_stage=case.stage, to_stage="not_started",
                            by_user=actor.user_id, at=utcnow(), note=note))
    await record_event(session, EventType.RECORD_CHANGED, actor.audit, [f"case:{case.id}"],
                       {"what": "not_started"})
    await _touch(session, rb, case)


async def archive_case(session: AsyncSession, rb: Rulebook, actor: Actor, case: Case) -> None:
    """第二十八条: 党政办 forms the case file; the case is locked afterwards."""
    last = rb.stage_order()[-1]
    if case.archived_at is not None:
        raise InvalidTransition("案件已归档。")
    if case.stage != last and not case.not_started:
        raise InvalidTransition(f"案件须先推进至「{rb.stages[last].name}」环节，才能归档。")
    case.archived_at = utcnow()
    session.add(StageChange(case_id=case.id, from_stage=case.stage, to_stage="archived",
                            by_user=actor.user_id, at=case.archived_at, note=""))
    await record_event(session, EventType.ARCHIVE, actor.audit, [f"case:{case.id}"],
                       {"case_no": case.case_no})
    await _touch(session, rb, case)


# -- records ------------------------------------------------------------------------------


def _json_fields(fields: Mapping[str, Any]) -> str:
    return json.dumps(dict(fields), ensure_ascii=False, sort_keys=True, default=str)


async def _after_record(session: AsyncSession, rb: Rulebook, actor: Actor, case: Case,
                        rec: CaseRecord, fields: Mapping[str, Any]) -> None:
    kind_id, field_id = EXECUTION_END
    if rec.kind_id == kind_id:
        case.execution_ended_at = parse_time(fields.get(field_id))
    kind_id, field_id, rejected = REJECTED_APPLICATION
    if rec.kind_id == kind_id and fields.get(field_id) == rejected and not case.not_started \
            and case.stage == rb.stage_order()[0]:
        reason = str(fields.get("acceptance_reason") or "")[:1800]
        await decide_not_to_start(session, rb, actor, case, f"不予受理：{reason}".rstrip("："))
    step = await step_for(session, rb, case, rec)
    if step is not None:
        await links_adapter.auto_link_step(session, step, actor="hub")
    await _touch(session, rb, case)


async def add_record(session: AsyncSession, rb: Rulebook, actor: Actor, case: Case,
                     kind_id: str, fields: Mapping[str, Any],
                     window_end: dt.datetime | None = None) -> CaseRecord:
    if not rb.has_kind(kind_id):
        raise InvalidInput(f"未知的记录类型「{kind_id}」，请从规则中选择记录类型。")
    why = kind_applies(rb, case, kind_id)
    if why:
        raise InvalidTransition(why)
    errors = rb.validate_record(kind_id, fields, facts=_facts(case))
    if errors:
        raise InvalidInput(f"「{rb.kind(kind_id).name}」记录未通过校验，请更正后再提交。", errors)
    await _check_attachment_refs(session, rb, case, kind_id, fields)
    start, end = _window(rb, kind_id, fields, window_end)
    now = utcnow()
    rec = CaseRecord(case_id=case.id, kind_id=kind_id, version=1, fields=_json_fields(fields),
                     window_start=start, window_end=end, created_by=actor.user_id,
                     created_at=now, updated_at=now)
    session.add(rec)
    await session.flush()
    session.add(CaseRecordVersion(record_id=rec.id, version=1, fields=rec.fields,
                                  changed_by=actor.user_id, changed_at=now, reason="新建"))
    await record_event(session, EventType.RECORD_CREATED, actor.audit,
                       [f"case:{case.id}", f"record:{rec.id}"],
                       {"what": "record", "kind": kind_id, "version": 1})
    await _after_record(session, rb, actor, case, rec, fields)
    return rec


async def change_record(session: AsyncSession, rb: Rulebook, actor: Actor, case: Case,
                        rec: CaseRecord, fields: Mapping[str, Any], reason: str,
                        expected_version: int | None = None,
                        window_end: dt.datetime | None = None) -> CaseRecord:
    """A new version of a record; the old one stays in ``case_record_versions``."""
    if case.archived_at is not None:
        raise InvalidTransition("案件已归档，案卷已锁定，不能再修改记录。")
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("修改记录须填写修改原因（修改留痕，第四条）。")
    if len(reason) > 2000:
        raise InvalidInput("修改原因最多 2000 字。")
    if expected_version is not None and expected_version != rec.version:
        raise Conflict(f"该记录已被他人修改（当前为第 {rec.version} 版），请刷新后再修改。")
    errors = rb.validate_record(rec.kind_id, fields, facts=_facts(case))
    if errors:
        raise InvalidInput(f"「{rb.kind(rec.kind_id).name}」记录未通过校验，请更正后再提交。",
                           errors)
    await _check_attachment_refs(session, rb, case, rec.kind_id, fields)
    old = json.loads(rec.fields)
    new_json = _json_fields(fields)
    new = json.loads(new_json)
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if not changed:
        raise InvalidInput("记录内容没有变化，无需保存新版本。")
    now = utcnow()
    rec.version += 1
    rec.fields = new_json
    rec.window_start, rec.window_end = _window(rb, rec.kind_id, fields, window_end)
    rec.updated_at = now
    session.add(CaseRecordVersion(record_id=rec.id, version=rec.version, fields=new_json,
                                  changed_by=actor.user_id, changed_at=now, reason=reason))
    await record_event(session, EventType.RECORD_CHANGED, actor.audit,
                       [f"case:{case.id}", f"record:{rec.id}"],
                       {"what": "record", "kind": rec.kind_id, "version": rec.version,
                        "fields": changed})
    await _after_record(session, rb, actor, case, rec, fields)
    return rec


async def record_versions(session: AsyncSession, record_ids: Sequence[int]
                          ) -> dict[int, list[CaseRecordVersion]]:
    out: dict[int, list[CaseRecordVersion]] = {}
    if not record_ids:
        return out
    for v in (await session.execute(
        select(CaseRecordVersion).where(CaseRecordVersion.record_id.in_(list(record_ids)))
        .order_by(CaseRecordVersion.record_id, CaseRecordVersion.version)
    )).scalars():
        out.setdefault(v.record_id, []).append(v)
    return out


async def approve(session: AsyncSession, rb: Rulebook, actor: Actor, case: Case,
                  record_id: int | None, decision: str, opinion: str) -> Approval:
    if decision not in ("approve", "return"):
        raise InvalidInput("请选择「同意」或「退回」。")
    opinion = (opinion or "").strip()
    if not opinion:
        raise InvalidInput("请填写审批（审核）意见。")
    if len(opinion) > 5000:
        raise InvalidInput("意见最多 5000 字。")
    if case.archived_at is not None:
        raise InvalidTransition("案件已归档。")
    if record_id is not None:
        await get_record(session, case, record_id)
    ap = Approval(case_id=case.id, record_id=record_id, user_id=actor.user_id, role=actor.role,
                  decision=decision, opinion=opinion, at=utcnow())
    session.add(ap)
    await session.flush()
    await record_event(session, EventType.APPROVAL, actor.audit,
                       [f"case:{case.id}"] + ([f"record:{record_id}"] if record_id else []),
                       {"decision": decision, "role": actor.role})
    await _touch(session, rb, case)
    return ap


# -- steps (for clip linking) -------------------------------------------------------------


async def case_officer_ids(session: AsyncSession, case_id: int) -> frozenset[str]:
    rows = await session.execute(
        select(User.officer_id).join(CaseMember, CaseMember.user_id == User.id)
        .where(CaseMember.case_id == case_id, User.officer_id.is_not(None))
    )
    return frozenset(r[0] for r in rows if r[0])


async def step_for(session: AsyncSession, rb: Rulebook, case: Case,
                   rec: CaseRecord) -> CaseStep | None:
    """A record of a kind with an audio/video rule and a time window is a case step; its
    assignees are the case's officers (their recorder officer ids)."""
    kind = rb.record_kinds.get(rec.kind_id)
    if kind is None or kind.av is None or rec.window_start is None:
        return None
    return CaseStep(case_id=str(case.id), step_id=str(rec.id), start=rec.window_start,
                    end=rec.window_end, assignees=await case_officer_ids(session, case.id))


class CaseStepSource:
    """hub/oversight's ``StepSource``: the case steps an officer was assigned to in a window."""

    def __init__(self, rulebook: Rulebook) -> None:
        self.rulebook = rulebook
        self._av_kinds = sorted(k.id for k in rulebook.av_kinds())

    async def steps_for(self, session: AsyncSession, officer_id: str, start: dt.datetime,
                        end: dt.datetime) -> Sequence[CaseStep]:
        q = (
            select(CaseRecord)
            .join(CaseMember, CaseMember.case_id == CaseRecord.case_id)
            .join(User, User.id == CaseMember.user_id)
            .where(User.officer_id == officer_id, CaseRecord.kind_id.in_(self._av_kinds),
                   CaseRecord.window_start.is_not(None),
                   CaseRecord.window_start <= end + dt.timedelta(minutes=5),
                   or_(CaseRecord.window_end.is_(None),
                       CaseRecord.window_end >= start - dt.timedelta(minutes=5)))
            .order_by(CaseRecord.window_start, CaseRecord.id)
        )
        steps = []
        for rec in (await session.execute(q)).scalars().unique():
            assert rec.window_start is not None
            steps.append(CaseStep(case_id=str(rec.case_id), step_id=str(rec.id),
                                  start=rec.window_start, end=rec.window_end,
                                  assignees=await case_officer_ids(session, rec.case_id)))
        return steps


# -- search -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CaseQuery:
    q: str = ""
    enforcement_type: str = ""
    stage: str = ""
    handler_id: int | None = None
    has_findings: bool | None = None
    page: int = 1
    per_page: int = 50


def _search_filter(actor: Actor, query: CaseQuery) -> list[ColumnElement[bool]]:
    cond: list[ColumnElement[bool]] = [visible(actor)]
    text = query.q.strip()
    if text:
        like = f"%{text.replace('%', '').replace('_', '')}%"
        cond.append(or_(Case.case_no.like(like), Case.title.like(like), Case.party.like(like)))
    if query.enforcement_type:
        cond.append(Case.enforcement_type == query.enforcement_type)
    if query.stage == "archived":
        cond.append(Case.archived_at.is_not(None))
    elif query.stage == "not_started":
        cond.append(Case.not_started.is_(True))
    elif query.stage:
        cond.append(and_(Case.stage == query.stage, Case.archived_at.is_(None),
                         Case.not_started.is_(False)))
    if query.handler_id is not None:
        cond.append(Case.handler_id == query.handler_id)
    if query.has_findings is True:
        cond.append(Case.finding_errors > 0)
    elif query.has_findings is False:
        cond.append(Case.finding_errors == 0)
    return cond


#: counting stops here ("1000+ 件"): an exact count of a broad search scans every case
COUNT_CAP = 1000


async def search_cases(session: AsyncSession, actor: Actor, query: CaseQuery
                       ) -> tuple[list[tuple[Case, str | None]], int]:
    """A page of matching cases (newest first) and the number of matches, counted up to
    ``COUNT_CAP + 1`` (more than COUNT_CAP means "more than COUNT_CAP")."""
    cond = _search_filter(actor, query)
    per = max(1, min(query.per_page, 200))
    page = max(1, query.page)
    capped = select(Case.id).where(*cond).limit(max(COUNT_CAP, page * per) + 1).subquery()
    total = (await session.execute(select(func.count()).select_from(capped))).scalar_one()
    rows = (await session.execute(
        select(Case, User.display_name).outerjoin(User, User.id == Case.handler_id)
        .where(*cond).order_by(Case.id.desc()).limit(per).offset((page - 1) * per)
    )).all()
    return [(r[0], r[1]) for r in rows], int(total)
