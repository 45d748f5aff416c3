"""``lerec-hub``: the hub ingest daemon and its fleet commands."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from ..config import HubConfig
from ..db import make_engine, migrate, sessionmaker
from ..errors import ConfigError
from .. import fleet


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lerec-hub",
        description="lerec hub: collects recorder clips over MQTT into write-once storage, "
        "verifies them and answers with signed receipts.",
    )
    p.add_argument("--config", type=Path, default=Path("hub.toml"), help="hub config (TOML)")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("run", help="run the ingest daemon until interrupted")
    sub.add_parser("migrate", help="create or upgrade the database schema")
    e = sub.add_parser("enroll", help="enroll a recorder's signing key and certificate")
    e.add_argument("device_id")
    e.add_argument("--signing-pub", type=Path, required=True, help="recorder signing.pub (PEM)")
    e.add_argument("--cert", type=Path, help="recorder client certificate (PEM)")
    e.add_argument("--label", default="", help="human-readable label")
    sub.add_parser("devices", help="list enrolled recorders")
    return p


async def _run(cfg: HubConfig) -> None:
    from .service import HubService

    async with HubService(cfg) as hub:
        await hub.serve()


async def _admin(cfg: HubConfig, args: argparse.Namespace) -> int:
    engine = make_engine(cfg.database_url)
    await migrate(engine)
    sessions = sessionmaker(engine)
    try:
        if args.cmd == "enroll":
            dev = await fleet.enroll(
                sessions, args.device_id, args.signing_pub.read_bytes(),
                args.cert.read_bytes() if args.cert else None, args.label,
            )
            print(f"enrolled {dev.device_id}")
        elif args.cmd == "devices":
            for d in await fleet.list_devices(sessions):
                state = "revoked" if d.revoked_at else "active"
                print(f"{d.device_id}\t{state}\tofficer={d.officer_id}\tlast_seen={d.last_seen_at}")
    finally:
        await engine.dispose()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        cfg = HubConfig.load(args.config)
    except ConfigError as exc:
        print(f"lerec-hub: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=cfg.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.cmd == "run":
            asyncio.run(_run(cfg))
        elif args.cmd == "migrate":
            asyncio.run(migrate(make_engine(cfg.database_url)))
        else:
            return asyncio.run(_admin(cfg, args))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
