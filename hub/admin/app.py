"""The admin web service: FastAPI app factory, lifespan, error pages, security headers."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import event
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..access.service import AccessError
from ..cases.errors import CaseError, InvalidInput
from ..db import make_engine, migrate, sessionmaker
from ..oversight.errors import DeletionRefused, HoldRefused, OversightError
from ..oversight.errors import NotFound as OversightNotFound
from ..policy.errors import CalendarConfigError
from ..rules import default_rulebook, load_rulebook
from ..storage import store_for
from . import (
    access_api,
    access_pages,
    api,
    calendar_pages,
    exporting,
    pages,
    retention_pages,
    views,
)
from .archiving import ArchiveJobs
from .security import Denied, LoginRequired, is_api
from .settings import AdminSettings

log = logging.getLogger(__name__)

_STATUS_ZH = {
    400: "请求有误", 401: "请先登录", 403: "无权操作", 404: "页面不存在", 405: "不支持该操作",
    409: "操作冲突", 413: "内容过大", 416: "请求范围无效", 422: "请求有误", 500: "系统错误",
}
_DEFAULT_MSG = {
    404: "您访问的页面不存在，请从导航栏进入。",
    405: "该地址不支持此操作方式。",
    500: "系统出现错误，已记录。请稍后重试或联系管理员。",
}

_CSP = ("default-src 'self'; img-src 'self' data:; media-src 'self'; style-src 'self'; "
        "script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
        "form-action 'self'")


class SecurityHeaders:
    """Pure ASGI middleware (cheap): CSP, no sniffing, no framing, no referrer leaks."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.headers = [
            (b"content-security-policy", _CSP.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"same-origin"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + self.headers
            await send(message)

        await self.app(scope, receive, wrapped)


def templates() -> Jinja2Templates:
    folder = Path(str(resources.files("lerec.hub.admin").joinpath("templates")))
    t = Jinja2Templates(directory=str(folder))
    views.install_filters(t.env)
    return t


def error_response(request: Request, status: int, message: str,
                   errors: list[dict[str, Any]] | None = None) -> Response:
    if is_api(request):
        body: dict[str, Any] = {"detail": message}
        if errors:
            body["errors"] = errors
        return JSONResponse(body, status_code=status)
    from .permissions import allowed

    t = request.app.state.templates
    actor = getattr(request.state, "actor", None)
    return t.TemplateResponse(request, "error.html", {
        "status": status, "title": _STATUS_ZH.get(status, "出错了"), "message": message,
        "errors": errors or [], "actor": actor, "rb": request.app.state.rulebook,
        "csrf": getattr(request.state, "csrf", ""),
        "can": lambda p: actor is not None and allowed(p, actor.role),
    }, status_code=status)


def install_errors(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        if is_api(request):
            return JSONResponse({"detail": exc.message}, status_code=401)
        nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        from urllib.parse import quote
        return RedirectResponse(f"/login?next={quote(nxt)}", status_code=303)

    @app.exception_handler(Denied)
    async def _denied(request: Request, exc: Denied) -> Response:
        return error_response(request, exc.status, exc.message)

    @app.exception_handler(CaseError)
    async def _case(request: Request, exc: CaseError) -> Response:
        errors = [{"field": e.field, "code": e.code, "message": e.message, "label": e.label}
                  for e in exc.errors] if isinstance(exc, InvalidInput) else None
        return error_response(request, exc.status, exc.message, errors)

    @app.exception_handler(AccessError)
    async def _access(request: Request, exc: AccessError) -> Response:
        from .access_views import zh  # (routes turn these into logged refusals first)

        return error_response(request, 404 if exc.code == "not_found" else 403,
                              f"{zh(exc.reason)}。")

    @app.exception_handler(OversightError)
    async def _oversight(request: Request, exc: OversightError) -> Response:
        # calendar and retention actions: the message says what happened and what to do
        status = 404 if isinstance(exc, OversightNotFound) else (
            409 if isinstance(exc, (DeletionRefused, HoldRefused)) else 400)
        return error_response(request, status, f"{exc}。")

    @app.exception_handler(CalendarConfigError)
    async def _calendar(request: Request, exc: CalendarConfigError) -> Response:
        return error_response(request, 400, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = []
        for e in exc.errors():
            loc = ".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path"))
            errors.append({"field": loc, "code": e.get("type", "invalid"),
                           "message": f"「{loc or '请求'}」缺失或格式不正确", "label": loc})
        return error_response(request, 400, "请求内容缺失或格式不正确，请检查后重新提交。", errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        msg = exc.detail if isinstance(exc.detail, str) and not exc.detail.isascii() \
            else _DEFAULT_MSG.get(exc.status_code, _STATUS_ZH.get(exc.status_code, "请求有误"))
        resp = error_response(request, exc.status_code, msg)
        for k, v in (exc.headers or {}).items():
            resp.headers[k] = v
        return resp

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(request, 500, _DEFAULT_MSG[500])


async def _refresh_loop(app: FastAPI, minutes: int) -> None:
    """Time passes: deadlines (第二十六条, 第二十八条) turn into findings without any write."""
    while True:
        await asyncio.sleep(minutes * 60)
        try:
            await views.refresh_all(app)
        except Exception:
            log.exception("periodic compliance refresh failed")


def _has_nul(params: Any) -> bool:
    if isinstance(params, str):
        return "\x00" in params
    if isinstance(params, dict):
        return any(_has_nul(v) for v in params.values())
    if isinstance(params, (list, tuple)):
        return any(_has_nul(v) for v in params)
    return False


def _check_nul(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
               executemany: bool) -> None:
    if _has_nul(parameters):
        raise InvalidInput("提交的内容含有空字符（\\0），无法保存或检索，请删除后重试。")


def refuse_nul_text(engine: Any) -> None:
    """Refuse text with U+0000 before it reaches the database, whatever form, query or JSON
    field it came in: PostgreSQL cannot store it in text at all (asyncpg fails deep in the
    driver, a 500), and SQLite stores it but cuts it off in some functions. The request gets
    a 400 naming the problem (:class:`InvalidInput`) instead; nothing is written."""
    sync = engine.sync_engine
    if not event.contains(sync, "before_cursor_execute", _check_nul):
        event.listen(sync, "before_cursor_execute", _check_nul)


def create_app(settings: AdminSettings, *, engine: Any = None) -> FastAPI:
    rulebook = load_rulebook(settings.rulebook_path) if settings.rulebook_path \
        else default_rulebook()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        eng = engine or make_engine(settings.database_url)
        refuse_nul_text(eng)
        if settings.migrate:
            await migrate(eng)
        app.state.engine = eng
        app.state.sessions = sessionmaker(eng)
        app.state.archive_jobs = ArchiveJobs()
        await app.state.export_jobs.open()
        task = None
        if settings.refresh_minutes > 0:
            task = asyncio.create_task(_refresh_loop(app, settings.refresh_minutes),
                                       name="compliance-refresh")
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
            await app.state.archive_jobs.shutdown()
            await app.state.export_jobs.shutdown()
            if engine is None:
                await eng.dispose()

    app = FastAPI(
        title="lerec 行政执法全过程记录 管理服务 API",
        version="1",
        description=(
            "新乡镇行政执法全过程记录系统的 JSON API。认证：与网页相同的会话 Cookie "
            "（POST /api/v1/session 登录），修改类请求须带请求头 X-CSRF-Token（登录响应中的 "
            "csrf_token）。错误以 {\"detail\": 中文说明, \"errors\": [...]} 返回。"
        ),
        openapi_url="/api/openapi.json", docs_url=None, redoc_url=None, lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.rulebook = rulebook
    app.state.store = store_for(settings.storage, settings.storage_dir)
    app.state.templates = templates()
    app.state.clip_views = {}
    app.state.archive_jobs = ArchiveJobs()  # background package builds (第二十八条)
    app.state.export_jobs = exporting.make_jobs(settings)  # requesters' exports (第二十九条)
    app.state.login_failures = {}
    app.state.started_at = dt.datetime.now(dt.UTC)
    static = Path(str(resources.files("lerec.hub.admin").joinpath("static")))
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    # routes are added as they are (not through include_router) so that ``app.routes`` lists
    # every APIRoute: the permission test walks them
    app.router.routes.extend(pages.router.routes)
    app.router.routes.extend(access_pages.router.routes)
    app.router.routes.extend(api.router.routes)
    app.router.routes.extend(access_api.router.routes)
    for module in (calendar_pages, retention_pages):
        app.router.routes.extend(module.router.routes)
        app.router.routes.extend(module.api_router.routes)
    install_errors(app)
    app.add_middleware(SecurityHeaders)
    return app
