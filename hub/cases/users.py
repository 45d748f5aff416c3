"""Users of the admin service: argon2id password hashes, roles from the rulebook; a party's
(当事人) account linked to its cases and the persons it is or represents; state-secret
clearance (第二十九条)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..audit.entries import EventType
from ..audit.log import record_event
from ..db.cases_models import Case, CaseParty, User
from ..db.types import utcnow
from ..rules import Rulebook
from .errors import Conflict, InvalidInput, NotVisible

#: the rulebook role id of a party's account (当事人)
PARTY_ROLE = "party"
PERSON_RE = re.compile(r"^[^\s,，;；]{1,128}$")
MAX_PERSONS = 20
MAX_PARTY_CASES = 200

_hasher = PasswordHasher()
NAME_RE = re.compile(r"^[a-z][a-z0-9_.-]{1,63}$")
MIN_PASSWORD = 10
#: verified against when the user does not exist, so timing does not reveal user names
_DUMMY_HASH = _hasher.hash("lerec-dummy-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"密码至少需要 {MIN_PASSWORD} 个字符，请重新设置。")
    if len(password) > 256:
        raise InvalidInput("密码过长（最多 256 个字符），请重新设置。")


async def create_user(
    session: AsyncSession,
    rulebook: Rulebook,
    *,
    name: str,
    role: str,
    password: str,
    display_name: str | None = None,
    officer_id: str | None = None,
    actor: str = "hub",
) -> User:
    """Create a user (audited as USER_CHANGED) in the caller's transaction."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise InvalidInput("用户名须以小写字母开头，只含小写字母、数字、点、下划线或连字符（2–64 位）。")
    if role not in rulebook.roles:
        names = "、".join(f"{r.name}（{r.id}）" for r in rulebook.roles.values())
        raise InvalidInput(f"未知角色「{role}」，可选：{names}。")
    display = (display_name or name).strip()
    if not display or len(display) > 100:
        raise InvalidInput("姓名不能为空，且不超过 100 个字。")
    check_password_rules(password)
    if (await session.execute(select(User.id).where(User.name == name))).first() is not None:
        raise Conflict(f"用户名「{name}」已存在，请换一个。")
    user = User(
        name=name, display_name=display, role=role,
        # a party wears no recorder: no officer binding unless one is given
        officer_id=officer_id if officer_id is not None else
        (None if role == PARTY_ROLE else name),
        password_hash=hash_password(password), active=True, created_at=utcnow(),
        password_changed_at=utcnow(),
    )
    session.add(user)
    await session.flush()
    await record_event(session, EventType.USER_CHANGED, actor, [f"user:{name}"],
                       {"action": "create", "role": role})
    return user


async def set_active(session: AsyncSession, user: User, active: bool, actor: str) -> None:
    user.active = active
    await record_event(session, EventType.USER_CHANGED, actor, [f"user:{user.name}"],
                       {"action": "activate" if active else "deactivate"})


async def set_role(session: AsyncSession, rulebook: Rulebook, user: User, role: str,
                   actor: str) -> None:
    if role not in rulebook.roles:
        raise InvalidInput(f"未知角色「{role}」。")
    old, user.role = user.role, role
    await record_event(session, EventType.USER_CHANGED, actor, [f"user:{user.name}"],
                       {"action": "role", "from": old, "to": role})
    if old == PARTY_ROLE and role != PARTY_ROLE:
        await set_party_cases(session, user, [], actor)  # a party's links go with the role
    if role == PARTY_ROLE:
        await set_clearance(session, user, False, actor)


async def set_password(session: AsyncSession, user: User, password: str, actor: str) -> None:
    check_password_rules(password)
    user.password_hash = hash_password(password)
    user.password_changed_at = utcnow()
    await record_event(session, EventType.USER_CHANGED, actor, [f"user:{user.name}"],
                       {"action": "password"})


async def by_name(session: AsyncSession, name: str) -> User | None:
    return (await session.execute(select(User).where(User.name == name))).scalar_one_or_none()


# -- parties (第二十九条) ----------------------------------------------------------------


def persons_of(user: User) -> list[str]:
    """The person ids ``user`` is or represents (owners of markings they may see)."""
    try:
        value = json.loads(user.persons or "[]")
    except ValueError:
        return []
    return [str(p) for p in value] if isinstance(value, list) else []


async def set_persons(session: AsyncSession, user: User, persons: Iterable[str],
                      actor: str) -> None:
    """Set the persons (e.g. 身份证号、统一社会信用代码 or an internal person id) the user is
    or represents; audited."""
    clean: list[str] = []
    for p in persons:
        p = str(p).strip()
        if not p:
            continue
        if not PERSON_RE.fullmatch(p):
            raise InvalidInput(f"身份标识「{p[:40]}」无效：不能含空格或逗号，最多 128 个字符。")
        if p not in clean:
            clean.append(p)
    if len(clean) > MAX_PERSONS:
        raise InvalidInput(f"身份标识最多 {MAX_PERSONS} 个。")
    old, user.persons = persons_of(user), json.dumps(clean, ensure_ascii=False)
    if old != clean:
        await record_event(session, EventType.USER_CHANGED, actor, [f"user:{user.name}"],
                           {"action": "persons", "from": old, "to": clean})


async def set_clearance(session: AsyncSession, user: User, cleared: bool, actor: str) -> None:
    """Grant or withdraw state-secret clearance (涉密资格); audited. Parties never get it."""
    if cleared and user.role == PARTY_ROLE:
        raise InvalidInput("当事人账号不能具有涉密资格。")
    if bool(user.cleared_state_secret) != cleared:
        user.cleared_state_secret = cleared
        await record_event(session, EventType.USER_CHANGED, actor, [f"user:{user.name}"],
                           {"action": "clearance", "cleared_state_secret": cleared})


async def party_case_ids(session: AsyncSession, user_id: int) -> list[int]:
    return sorted((await session.execute(
        select(CaseParty.case_id).where(CaseParty.user_id == user_id))).scalars())


async def set_party_cases(session: AsyncSession, user: User, case_ids: Iterable[int],
                          actor: str) -> list[int]:
    """Link a party's account to exactly these cases (the link shows nothing by itself: every
    item still needs an approved access request); audited."""
    wanted = sorted(set(case_ids))
    if wanted and user.role != PARTY_ROLE:
        raise InvalidInput("只有「当事人」角色的账号可以关联案件。")
    if len(wanted) > MAX_PARTY_CASES:
        raise InvalidInput(f"一个当事人账号最多关联 {MAX_PARTY_CASES} 个案件。")
    found = set((await session.execute(select(Case.id).where(Case.id.in_(wanted)))).scalars()
                ) if wanted else set()
    missing = [c for c in wanted if c not in found]
    if missing:
        raise InvalidInput(f"案件「{missing[0]}」不存在，请检查后重新填写。")
    rows = list((await session.execute(
        select(CaseParty).where(CaseParty.user_id == user.id))).scalars())
    have = {r.case_id for r in rows}
    for r in rows:
        if r.case_id not in found:
            await session.delete(r)
    for cid in wanted:
        if cid not in have:
            session.add(CaseParty(case_id=cid, user_id=user.id, linked_by=actor,
                                  linked_at=utcnow()))
    if sorted(have) != wanted:
        await record_event(session, EventType.USER_CHANGED, actor, [f"user:{user.name}"] + [
            f"case:{c}" for c in sorted(have ^ set(wanted))],
            {"action": "party_cases", "from": sorted(have), "to": wanted})
    await session.flush()
    return wanted


async def case_ids_by_number(session: AsyncSession, numbers: Iterable[str]) -> list[int]:
    """Case numbers (案件编号) as typed on the users page -> case ids."""
    wanted = [n.strip() for n in numbers if n.strip()]
    if not wanted:
        return []
    rows = {no: cid for no, cid in (await session.execute(
        select(Case.case_no, Case.id).where(Case.case_no.in_(wanted)))).all()}
    for n in wanted:
        if n not in rows:
            raise InvalidInput(f"案件编号「{n[:64]}」不存在，请检查后重新填写。")
    return [rows[n] for n in wanted]


async def get_party_case(session: AsyncSession, user_id: int, case_id: int) -> Case:
    """The case, if ``user_id`` is linked to it as a party; answered like a missing case
    otherwise."""
    link = (await session.execute(select(CaseParty.id).where(
        CaseParty.case_id == case_id, CaseParty.user_id == user_id))).first()
    case = await session.get(Case, case_id) if link is not None else None
    if case is None:
        raise NotVisible("案件", case_id)
    return case


def split_list(text: str) -> list[str]:
    """A list typed in one box: separated by spaces, commas, semicolons or 、."""
    return [p for p in re.split(r"[\s,，;；、]+", text) if p]


async def party_case_numbers(session: AsyncSession) -> dict[int, list[str]]:
    """user id -> the case numbers (案件编号) the party's account is linked to."""
    out: dict[int, list[str]] = {}
    for uid, no in (await session.execute(
            select(CaseParty.user_id, Case.case_no).join(Case, Case.id == CaseParty.case_id)
            .order_by(Case.case_no))).all():
        out.setdefault(uid, []).append(no)
    return out
