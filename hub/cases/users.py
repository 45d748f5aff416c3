"""Users of the admin service: argon2id password hashes, roles from the rulebook."""

from __future__ import annotations

import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..audit.entries import EventType
from ..audit.log import record_event
from ..db.cases_models import User
from ..db.types import utcnow
from ..rules import Rulebook
from .errors import Conflict, InvalidInput

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
        officer_id=officer_id if officer_id is not None else name,
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


async def set_password(session: AsyncSession, user: User, password: str, actor: str) -> None:
    check_password_rules(password)
    user.password_hash = hash_password(password)
    user.password_changed_at = utcnow()
    await record_event(session, EventType.USER_CHANGED, actor, [f"user:{user.name}"],
                       {"action": "password"})


async def by_name(session: AsyncSession, name: str) -> User | None:
    return (await session.execute(select(User).where(User.name == name))).scalar_one_or_none()
