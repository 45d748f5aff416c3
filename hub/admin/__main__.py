"""``lerec-admin``: the admin web service and its administration commands.

    lerec-admin serve --config hub.toml [--host 127.0.0.1] [--port 8080]
    lerec-admin create-user NAME --role ROLE --config hub.toml [--password-file F]
    lerec-admin seed-demo --config hub.toml
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
import tempfile
from pathlib import Path

from ..errors import HubError
from .permissions import ROLES
from .settings import AdminSettings

log = logging.getLogger(__name__)


def _settings(args: argparse.Namespace) -> AdminSettings:
    database_url, storage_dir = args.database_url, args.storage_dir
    extra: dict[str, object] = {}
    if args.config is not None:
        from ..config import HubConfig

        cfg = HubConfig.load(args.config)
        database_url = database_url or cfg.database_url
        storage_dir = storage_dir or cfg.storage_dir
        extra = {"signing_key": cfg.signing_key, "archive_dir": cfg.archive.dir,
                 "audit_origin": cfg.audit.origin,
                 "c2pa_cert": cfg.export.c2pa_cert, "c2pa_key": cfg.export.c2pa_key,
                 "c2pa_ca": cfg.export.c2pa_ca, "export_dir": cfg.export.dir,
                 "export_keep_minutes": cfg.export.keep_minutes,
                 "export_max_files": cfg.export.max_files, "export_workers": cfg.export.workers,
                 "storage": cfg.storage, "oversight": cfg.oversight.settings()}
    if not database_url or not storage_dir:
        raise SystemExit("请用 --config hub.toml（或 --database-url 与 --storage-dir）指定数据库和存储目录。")
    return AdminSettings(database_url=database_url, storage_dir=Path(storage_dir),
                         cookie_secure=not getattr(args, "insecure_cookies", False),
                         **extra)  # type: ignore[arg-type]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="hub.toml（使用其中的 database_url 和 storage_dir）")
    p.add_argument("--database-url", help="覆盖 hub.toml 的数据库地址（sqlite:///… 或 postgresql://…）")
    p.add_argument("--storage-dir", type=Path, help="覆盖 hub.toml 的存储目录")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lerec-admin",
        description="新乡镇行政执法全过程记录系统 — 管理服务（网页与 JSON API）及管理命令。")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="启动管理服务（网页 + /api/v1）")
    _common(s)
    s.add_argument("--host", default="127.0.0.1", help="监听地址（默认 127.0.0.1）")
    s.add_argument("--port", type=int, default=8080, help="监听端口（默认 8080）")
    s.add_argument("--insecure-cookies", action="store_true",
                   help="会话 Cookie 不带 Secure 标志（仅限无 HTTPS 的开发环境）")
    s.add_argument("--log-level", default="INFO")
    u = sub.add_parser("create-user", help="新建用户（密码从提示输入或 --password-file 读取）")
    u.add_argument("name", help="用户名（小写字母开头）")
    u.add_argument("--role", required=True, choices=ROLES, help="角色")
    u.add_argument("--display-name", help="姓名")
    u.add_argument("--officer-id", help="执法记录仪绑定编号（默认同用户名）")
    u.add_argument("--password-file", type=Path, help="从文件第一行读取密码")
    _common(u)
    d = sub.add_parser("seed-demo", help="写入演示用户、设备、录像和案件")
    d.add_argument("--password", default="lerec-demo-2024", help="演示用户的密码")
    _common(d)
    return p


def _read_password(args: argparse.Namespace) -> str:
    if args.password_file is not None:
        lines = args.password_file.read_text(encoding="utf-8").splitlines()
        return lines[0] if lines else ""
    first = getpass.getpass("密码：")
    if first != getpass.getpass("再次输入密码："):
        raise SystemExit("两次输入的密码不一致。")
    return first


async def _create_user(settings: AdminSettings, args: argparse.Namespace, password: str) -> None:
    from ..cases import users
    from ..db import make_engine, migrate, sessionmaker
    from ..rules import default_rulebook

    engine = make_engine(settings.database_url)
    try:
        await migrate(engine)
        async with sessionmaker(engine)() as s, s.begin():
            await users.create_user(s, default_rulebook(), name=args.name, role=args.role,
                                    password=password, display_name=args.display_name,
                                    officer_id=args.officer_id, actor="hub")
    finally:
        await engine.dispose()


async def _seed(settings: AdminSettings, password: str) -> list[str]:
    from ..db import make_engine, migrate, sessionmaker
    from ..rules import default_rulebook
    from ..storage import LocalBlobStore
    from .demo import seed_demo

    engine = make_engine(settings.database_url)
    try:
        await migrate(engine)
        with tempfile.TemporaryDirectory() as tmp:
            return await seed_demo(sessionmaker(engine), LocalBlobStore(settings.storage_dir),
                                   default_rulebook(), password, Path(tmp))
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = _settings(args)
        if args.command == "serve":
            import uvicorn

            from .app import create_app

            logging.basicConfig(level=args.log_level.upper(),
                                format="%(asctime)s %(levelname)s %(name)s: %(message)s")
            uvicorn.run(create_app(settings), host=args.host, port=args.port,
                        proxy_headers=True, server_header=False, log_level="warning")
        elif args.command == "create-user":
            password = _read_password(args)
            asyncio.run(_create_user(settings, args, password))
            print(f"已创建用户 {args.name}（{args.role}）")
        elif args.command == "seed-demo":
            for line in asyncio.run(_seed(settings, args.password)):
                print("已创建", line)
            print(f"演示用户的密码：{args.password}")
    except HubError as exc:
        print(f"错误：{getattr(exc, 'message', exc)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
