"""Authentication, sessions, CSRF and THE permission check: :func:`need`.

Every route depends on ``need(permission)``, which in one place:

1. opens the database session for the request,
2. finds the server-side session from the cookie (the cookie holds a random token; the table
   holds its SHA-256) and its active user,
3. refuses a user whose role the permission matrix does not allow,
4. checks the synchronizer CSRF token (form field ``csrf_token`` or header ``X-CSRF-Token``)
   on every state-changing method,
5. refuses ids of cases the user may not see (path parameter ``case_id``; a party's account
   reaches only the cases it is linked to, and there only the ``access.*`` routes),

and writes an audit entry for every refusal. Messages are Chinese.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, Request
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..audit.entries import EventType
from ..audit.log import record_event
from ..cases.errors import NotVisible
from ..cases.service import Actor, get_case
from ..cases.users import get_party_case
from ..db.cases_models import Case, User, WebSession
from ..db.types import utcnow
from ..errors import HubError
from .permissions import MATRIX, PARTY, PUBLIC, allowed, sees_all

COOKIE = "lerec_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ANON_SESSION = dt.timedelta(hours=2)

#: the audit event for a refused request; ACCESS_DENIED once hub/audit/entries.py has it
DENIED_EVENT: EventType = getattr(EventType, "ACCESS_DENIED", EventType.ACCESS_REQUEST)


class Denied(HubError):
    """A refused request: ``status`` and a Chinese message for the person."""

    def __init__(self, status: int, message: str, code: str = "forbidden") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


class LoginRequired(Denied):
    def __init__(self) -> None:
        super().__init__(401, "请先登录。", "login_required")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


@dataclass
class Ctx:
    """What a route gets: the request, an open database session, the user (if any), the
    session's CSRF token and, for routes with ``case_id``, the (visible) case."""

    request: Request
    db: AsyncSession
    permission: str
    actor: Actor | None = None
    user: User | None = None
    web_session: WebSession | None = None
    case: Case | None = None
    csrf: str = ""  # the session's synchronizer token (kept as text: rows expire on rollback)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def app(self) -> Any:
        return self.request.app

    @property
    def rb(self) -> Any:
        return self.request.app.state.rulebook

    async def rollback(self) -> None:
        """Undo this request's changes and reload the rows the route still shows."""
        await self.db.rollback()
        for row in (self.case, self.user, self.web_session):
            if row is not None:
                await self.db.refresh(row)

    def require_actor(self) -> Actor:
        if self.actor is None:
            raise LoginRequired()
        return self.actor

    def require_case(self) -> Case:
        assert self.case is not None, "route without case_id asked for the case"
        return self.case


def actor_for(user: User) -> Actor:
    return Actor(user.id, user.name, user.display_name, user.role, user.officer_id,
                 sees_all(user.role))


async def load_session(db: AsyncSession, request: Request
                       ) -> tuple[WebSession | None, User | None]:
    token = request.cookies.get(COOKIE)
    if not token or len(token) > 128:
        return None, None
    found = (await db.execute(
        select(WebSession, User).outerjoin(User, User.id == WebSession.user_id)
        .where(WebSession.id == token_hash(token))
    )).first()
    if found is None:
        return None, None
    row, user = found
    if row.expires_at <= utcnow():
        return None, None
    if row.user_id is None:
        return row, None
    if user is None or not user.active:
        return None, None
    return row, user


async def deny(ctx: Ctx, status: int, message: str, reason: str,
               event: EventType | None = None, extra: dict[str, Any] | None = None) -> Denied:
    """Write the refusal to the audit log (its own transaction) and build the error."""
    db = ctx.db
    await db.rollback()
    actor = ctx.actor.audit if ctx.actor else "anonymous"
    subjects = [f"user:{ctx.actor.name}"] if ctx.actor else []
    details: dict[str, Any] = {
        "outcome": "denied", "reason": reason, "method": ctx.request.method,
        "path": ctx.request.url.path[:300], "permission": ctx.permission,
    }
    details.update(extra or {})
    async with db.begin():
        await record_event(db, event or DENIED_EVENT, actor, subjects, details)
    return Denied(status, message, reason)


async def _csrf_ok(request: Request, expected: str) -> bool:
    sent = request.headers.get(CSRF_HEADER)
    if not sent:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            try:
                form = await request.form(max_part_size=1024 * 1024)
            except Exception:  # noqa: BLE001  (a malformed body is simply a missing token)
                return False
            value = form.get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
    return bool(sent) and bool(expected) and hmac.compare_digest(str(sent), expected)


def need(permission: str) -> Any:
    """The dependency every route uses: ``ctx: Ctx = need("case.read")``."""
    if permission not in MATRIX:
        raise KeyError(f"permission {permission!r} is not in the matrix")

    async def check(request: Request) -> AsyncIterator[Ctx]:
        async with request.app.state.sessions() as db:
            ctx = Ctx(request=request, db=db, permission=permission)
            ctx.web_session, ctx.user = await load_session(db, request)
            if ctx.user is not None:
                ctx.actor = actor_for(ctx.user)
            ctx.csrf = ctx.web_session.csrf_token if ctx.web_session else ""
            request.state.actor = ctx.actor
            request.state.csrf = ctx.csrf
            length = request.headers.get("content-length", "0")
            limit = request.app.state.settings.max_upload_bytes + 1024 * 1024
            if not length.isdigit() or int(length) > limit:
                raise Denied(413, f"提交的内容过大（最大 {limit // (1024 * 1024)} MB）。", "too_large")
            if permission != PUBLIC:
                if ctx.actor is None:
                    if request.method in SAFE_METHODS and not is_api(request):
                        raise LoginRequired()
                    await deny(ctx, 401, "请先登录。", "login_required",
                               EventType.LOGIN_FAILED)
                    raise LoginRequired()
                if not allowed(permission, ctx.actor.role):
                    role = request.app.state.rulebook.roles.get(ctx.actor.role)
                    name = role.name if role else ctx.actor.role
                    raise await deny(ctx, 403, f"您的角色（{name}）无权{MATRIX[permission][1]}。"
                                     "如需办理，请联系有权限的人员。", "role")
            if request.method not in SAFE_METHODS and (
                    ctx.web_session is None or not await _csrf_ok(request, ctx.csrf)):
                raise await deny(ctx, 403, "请求缺少有效的安全令牌（CSRF），已拒绝。"
                                 "请刷新页面后重新提交。", "csrf")
            case_id = request.path_params.get("case_id")
            if case_id is not None and ctx.actor is not None:
                try:
                    if ctx.actor.role == PARTY:
                        ctx.case = await get_party_case(db, ctx.actor.user_id, int(case_id))
                    else:
                        ctx.case = await get_case(db, ctx.actor, int(case_id))
                except (NotVisible, ValueError):
                    raise await deny(ctx, 404, f"案件「{case_id}」不存在，或您无权查看。"
                                     "请从案件列表中选择。", "case_scope",
                                     extra={"case": str(case_id)[:64]}) from None
            yield ctx

    check.permission = permission  # type: ignore[attr-defined]
    return Depends(check)


# -- sessions -----------------------------------------------------------------------------


async def new_session(db: AsyncSession, user_id: int | None, lifetime: dt.timedelta
                      ) -> tuple[str, WebSession]:
    token = secrets.token_urlsafe(32)
    row = WebSession(id=token_hash(token), user_id=user_id, csrf_token=secrets.token_urlsafe(32),
                     created_at=utcnow(), expires_at=utcnow() + lifetime)
    db.add(row)
    await db.flush()
    return token, row


async def end_session(db: AsyncSession, row: WebSession | None) -> None:
    if row is not None:
        await db.execute(delete(WebSession).where(WebSession.id == row.id))


async def purge_expired(db: AsyncSession) -> None:
    await db.execute(delete(WebSession).where(WebSession.expires_at <= utcnow()))


def set_cookie(response: Any, token: str, secure: bool, max_age: int) -> None:
    response.set_cookie(COOKIE, token, max_age=max_age, httponly=True, secure=secure,
                        samesite="lax", path="/")


async def active_user(db: AsyncSession, name: str) -> User | None:
    return (await db.execute(select(User).where(User.name == name, User.active.is_(True)))
            ).scalar_one_or_none()


#: one dependency per permission of the matrix: routes write ``ctx: Ctx = NEED["case.read"]``
NEED: dict[str, Any] = {permission: need(permission) for permission in MATRIX}
