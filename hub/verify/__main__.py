"""``lerec-verify``: check the audit log, the evidence store or an archive package.

    lerec-verify log --config hub.toml          # every entry, node and signed checkpoint
    lerec-verify store --config hub.toml        # every blob, manifest, receipt, hash chain
    lerec-verify archive CASE.tar [--hub-key K] # a package, offline (directory, .tar, .zip)
    lerec-verify checkpoint --config hub.toml   # sign a checkpoint of the log now

Exit status: 0 verified, 1 something failed verification (each failure is named), 2 the
command could not run (bad config, unreadable input).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from lerec.protocol import keys

from ..audit import log as audit
from ..config import HubConfig
from ..errors import HubError
from .findings import Report


def _hub_key(cfg: HubConfig):  # type: ignore[no-untyped-def]
    return keys.ed25519_private(cfg.signing_key.read_bytes())


async def _log(args: argparse.Namespace) -> Report:
    from ..db import make_engine
    from .logcheck import verify_log

    cfg = HubConfig.load(args.config)
    verifier = audit.signer_from_key(_hub_key(cfg), args.origin).verifier()
    engine = make_engine(cfg.database_url)
    try:
        return await verify_log(engine, verifier, progress=not args.quiet,
                                check_columns=not args.no_columns, workers=args.workers)
    finally:
        await engine.dispose()


async def _store(args: argparse.Namespace) -> Report:
    from ..db import make_engine, sessionmaker
    from ..storage import open_store
    from .storecheck import verify_store

    cfg = HubConfig.load(args.config)
    engine = make_engine(cfg.database_url)
    try:
        return await verify_store(sessionmaker(engine), open_store(cfg),
                                  _hub_key(cfg).public_key(), progress=not args.quiet)
    finally:
        await engine.dispose()


async def _checkpoint(args: argparse.Namespace) -> Report:
    from ..audit.checkpoint import read_checkpoint_unverified
    from ..db import make_engine, sessionmaker
    from .checkpointer import checkpoint_now

    cfg = HubConfig.load(args.config)
    engine = make_engine(cfg.database_url)
    try:
        note = await checkpoint_now(sessionmaker(engine), _hub_key(cfg), args.origin)
    finally:
        await engine.dispose()
    report = Report("签名检查点 / signed checkpoint")
    cp = read_checkpoint_unverified(note)
    report.facts.update({"size": cp.size, "root": cp.root_hash.hex()})
    sys.stdout.write(note.decode())
    return report


def _archive(args: argparse.Namespace) -> Report:
    from .archivecheck import verify_archive

    return verify_archive(args.path, trusted_hub_key=args.hub_key, progress=not args.quiet)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lerec-verify",
        description="校验审计日志、证据存储或档案包 / verify the audit log, the evidence store "
        "or an archive package. Exit 0: verified; 1: tampering or damage found; 2: error.",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name, text in [
        ("log", "re-verify every audit entry, Merkle node and signed checkpoint"),
        ("store", "re-hash every stored blob; check manifests, receipts and hash chains"),
        ("checkpoint", "sign a checkpoint of the audit log now"),
    ]:
        p = sub.add_parser(name, help=text)
        p.add_argument("--config", type=Path, required=True, help="hub.toml")
        p.add_argument("--origin", default=audit.DEFAULT_ORIGIN, help="checkpoint origin")
        if name == "log":
            p.add_argument("--no-columns", action="store_true",
                           help="skip checking the search columns against the entry data")
            p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                           help="processes for a SQLite log (default: CPUs, at most 4)")
    p = sub.add_parser("archive", help="verify an archive package offline")
    p.add_argument("path", type=Path, help="package directory, .tar or .zip")
    p.add_argument("--hub-key", default=None,
                   help="trusted hub key: a note verifier key string or a file holding one "
                        "(or the hub's signing.pub PEM); the package must match it")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.cmd == "archive":
            report = _archive(args)
        else:
            report = asyncio.run({"log": _log, "store": _store,
                                  "checkpoint": _checkpoint}[args.cmd](args))
    except (HubError, OSError, ValueError) as exc:
        print(f"lerec-verify: 无法执行 cannot run: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(report.dumps())
    else:
        report.render(sys.stdout)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
