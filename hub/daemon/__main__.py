"""``lerec-hub``: the hub ingest daemon and its fleet commands."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any

from lerec.protocol import keys, topics

from .. import fleet
from ..config import HubConfig
from ..db import make_engine, migrate, sessionmaker
from ..errors import ConfigError, HubError
from .logs import configure_logging

log = logging.getLogger("lerec.hub")

EPILOG = """Every fleet command writes the database (and the audit log) first, then publishes the
hub-signed DeviceConfig retained on lerec/v1/hub/<id>/config. If the broker is down the change is
kept; run 'lerec-hub push-configs' later."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lerec-hub",
        description="lerec hub: collects recorder clips over MQTT into write-once storage, "
        "verifies them and answers with signed receipts; manages the recorder fleet.",
        epilog=EPILOG,
    )
    p.add_argument("--config", type=Path, default=Path("hub.toml"),
                   help="hub config (TOML; default ./hub.toml)")
    p.add_argument("--log-json", action="store_true",
                   help="log one JSON object per line (overrides log_format in the config)")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    r = sub.add_parser("run", help="run the ingest daemon until interrupted",
                       description="Run the ingest daemon (and /metrics if configured).")
    r.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    r.add_argument("--trace-memory", type=Path, metavar="FILE",
                   default=os.environ.get("LEREC_TRACE_MEMORY") or None,
                   help="diagnostics: trace Python allocations and rewrite FILE every minute "
                   "with what grew since a baseline taken after one minute, by call stack "
                   "(costs CPU; also $LEREC_TRACE_MEMORY)")
    sub.add_parser("migrate", help="create or upgrade the database schema",
                   description="Apply every Alembic head (idempotent).")

    e = sub.add_parser(
        "enroll", help="enroll a recorder: issue its certificate, record its signing key",
        description="Enroll a recorder. Production: the recorder sends a CSR for its TLS key and "
        "its signing.pub; the hub CA (pki_dir) issues the certificate. Development: --generate "
        "makes every key in <pki_dir>/devices/<id>/. Afterwards the CRL and broker ACL are "
        "regenerated.",
    )
    e.add_argument("device_id", help="recorder id, e.g. rec-001 (becomes the certificate CN)")
    how = e.add_mutually_exclusive_group(required=True)
    how.add_argument("--csr", type=Path, help="the recorder's certificate signing request (PEM)")
    how.add_argument("--generate", action="store_true",
                     help="dev: generate TLS and signing keys on the hub")
    how.add_argument("--cert", type=Path, help="an already issued client certificate (PEM)")
    e.add_argument("--signing-pub", type=Path,
                   help="the recorder's Ed25519 signing.pub (PEM); required with --csr/--cert")
    e.add_argument("--label", default="", help="human-readable label, e.g. the asset tag")
    e.add_argument("--out", type=Path, help="also write the issued certificate here")

    v = sub.add_parser(
        "revoke", help="revoke a recorder (hub refuses it at once; broker after reload)",
        description="Revoke a recorder: the hub refuses its messages from now on, its "
        "certificates go on the CRL and the ACL denies it. Reload or restart mosquitto so the "
        "broker rejects the certificate too (systemctl reload mosquitto).",
    )
    v.add_argument("device_id")
    v.add_argument("--reason", default="", help="why (kept in the audit log)")

    a = sub.add_parser("assign", help="bind an officer to a recorder",
                       description="Bind an officer to a recorder and push the signed config.")
    a.add_argument("device_id")
    a.add_argument("officer_id", help="officer id (执法证号), e.g. 41070012")
    u = sub.add_parser("unassign", help="unbind the officer from a recorder",
                       description="Unbind the officer (recorder becomes 'unassigned').")
    u.add_argument("device_id")
    t = sub.add_parser(
        "time-sync", help="push a freshly signed config carrying the hub's time",
        description="Sign a config with the current hub time (issued_ms) for the given recorders "
        "(default: all active). An online recorder sets offset = receive time - issued_ms.",
    )
    t.add_argument("device_ids", nargs="*", metavar="device_id")
    sub.add_parser("push-configs", help="republish the latest config of every active recorder",
                   description="Republish (retained) the latest signed config of each recorder.")
    sub.add_parser("devices", help="list enrolled recorders", description="List recorders.")
    return p


async def _run(cfg: HubConfig, trace_memory: Path | None = None) -> None:
    from .memory import limit_arenas
    from .service import HubService

    limit_arenas()  # before any worker thread exists (see hub/daemon/memory.py)

    async with HubService(cfg, trace_memory=trace_memory) as hub:
        await hub.serve()


def _hub_key(cfg: HubConfig) -> Any:
    return keys.ed25519_private(cfg.signing_key.read_bytes())


def _pki(cfg: HubConfig) -> Any:
    from lerec.deploy.pki import Pki

    if cfg.pki_dir is None:
        raise ConfigError("this command needs pki_dir (the hub CA folder) in the hub config")
    pki = Pki(cfg.pki_dir)
    if not pki.ca_key.exists():
        raise ConfigError(f"no hub CA in {cfg.pki_dir} (create it with 'lerec-pki init')")
    return pki


async def _refresh_broker_files(cfg: HubConfig, sessions: Any) -> None:
    if cfg.pki_dir is None:
        return
    from lerec.deploy.pki import write_acl, write_crl

    pki = _pki(cfg)
    ids, serials = await fleet.revoked(sessions)
    write_crl(pki, serials)
    write_acl(pki, ids)
    print(f"CRL ({len(serials)} revoked) and ACL rewritten in {pki.root}")


def _push(cfg: HubConfig, configs: list[fleet.SignedConfig]) -> None:
    from .oneshot import publish_retained

    publish_retained(cfg.broker, [(topics.hub_topic(c.device_id, "config"), c.wire)
                                  for c in configs])
    for c in configs:
        print(f"{c.device_id}: config {c.config.config_seq} pushed "
              f"(officer {c.config.officer_id}, hub time {c.config.issued_ms})")


async def _enroll(cfg: HubConfig, sessions: Any, args: argparse.Namespace) -> None:
    from lerec.deploy import pki as pkimod

    signing_pub = args.signing_pub.read_bytes() if args.signing_pub else None
    if args.generate:
        files = pkimod.issue_device(_pki(cfg), args.device_id)
        cert_pem = files.cert.read_bytes()
        signing_pub = signing_pub or files.signing_pub.read_bytes()
    elif args.csr:
        if signing_pub is None:
            raise fleet.FleetError("--csr needs --signing-pub (the recorder's signing.pub)")
        cert = pkimod.issue_from_csr(_pki(cfg), args.device_id, args.csr.read_bytes())
        from cryptography.hazmat.primitives.serialization import Encoding

        cert_pem = cert.public_bytes(Encoding.PEM)
    else:
        if signing_pub is None:
            raise fleet.FleetError("--cert needs --signing-pub (the recorder's signing.pub)")
        cert_pem = args.cert.read_bytes()
    dev = await fleet.enroll(sessions, args.device_id, signing_pub, cert_pem, args.label,
                             actor="cli")
    if args.out:
        args.out.write_bytes(cert_pem)
    print(f"enrolled {dev.device_id} (certificate serial {dev.cert_serial})")
    await _refresh_broker_files(cfg, sessions)


async def _admin(cfg: HubConfig, args: argparse.Namespace) -> int:
    engine = make_engine(cfg.database_url)
    await migrate(engine)
    sessions = sessionmaker(engine)
    try:
        if args.cmd == "enroll":
            await _enroll(cfg, sessions, args)
        elif args.cmd == "revoke":
            await fleet.revoke(sessions, args.device_id, args.reason, actor="cli")
            print(f"revoked {args.device_id}: the hub refuses it from now on")
            await _refresh_broker_files(cfg, sessions)
            from .oneshot import publish_retained

            publish_retained(cfg.broker, [(topics.hub_topic(args.device_id, "config"), b"")])
            print("reload the broker so it rejects the certificate: systemctl reload mosquitto")
        elif args.cmd in ("assign", "unassign"):
            officer = args.officer_id if args.cmd == "assign" else fleet.UNASSIGNED
            signed = await fleet.assign(sessions, args.device_id, officer, _hub_key(cfg),
                                        cfg.devices, actor="cli")
            _push(cfg, [signed])
        elif args.cmd == "time-sync":
            _push(cfg, await fleet.time_sync(sessions, args.device_ids or None, _hub_key(cfg),
                                             cfg.devices))
        elif args.cmd == "push-configs":
            _push(cfg, await fleet.latest_configs(sessions))
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
    if args.cmd == "run" and args.metrics_port is not None:
        cfg = cfg.model_copy(update={"metrics": cfg.metrics.model_copy(
            update={"port": args.metrics_port})})
    configure_logging(cfg.log_level, "json" if args.log_json else cfg.log_format)
    try:
        if args.cmd == "run":
            asyncio.run(_run(cfg, args.trace_memory))
        elif args.cmd == "migrate":
            asyncio.run(migrate(make_engine(cfg.database_url)))
        else:
            return asyncio.run(_admin(cfg, args))
    except KeyboardInterrupt:
        pass
    except (HubError, ValueError, OSError) as exc:
        # FleetError, ConfigError, PublishError, CsrError, missing files: one readable line.
        print(f"lerec-hub {args.cmd}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
