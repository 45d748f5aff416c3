"""``lerec-demo``: the whole system on one machine, on the embedded defaults.

Creates a dev PKI, starts mosquitto (mutual TLS + ACL), the hub ingest daemon (SQLite + a local
folder), the admin service, and two simulated recorders that each record a clip by pressing
their (gpiozero MockFactory) record button; waits until every clip is stored, verified and
receipted and the recorders' local copies are gone; prints where to look; then keeps serving
until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from .broker import Broker, free_ports
from .pki import Pki, init_pki, issue_device

RECORDERS = ("rec-001", "rec-002")
OFFICERS = {"rec-001": "zf-1001", "rec-002": "zf-1002"}
#: Demo users, one or more per role of the rulebook; the two officers wear the recorders.
USERS = (
    ("zhangwei", "officer", "张伟", "zf-1001"),
    ("lina", "officer", "李娜", "zf-1002"),
    ("wangqiang", "handler", "王强", None),
    ("chenjie", "unit_head", "陈杰", None),
    ("yangmin", "legal_reviewer", "杨敏", None),
    ("zhoujun", "agency_head", "周军", None),
    ("wuhong", "archivist", "吴红", None),
    ("zhengli", "auditor", "郑丽", None),
    ("liuyang", "party", "刘洋", None),
)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _bin(name: str) -> str:
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else name


def write_hub_config(root: Path, pki: Pki, port: int) -> Path:
    from lerec.hub.export.certs import issue_c2pa_signer

    # the content-credentials signer of exported clips (第二十九条), issued by the hub CA (a
    # demo folder made before lerec-pki issued it gets one here)
    c2pa = issue_c2pa_signer(pki.ca_cert, pki.ca_key, pki.root / "hub")
    cfg = root / "hub.toml"
    cfg.write_text(
        f"""# lerec hub configuration (demo). Paths are relative to this file.
hub_id = "hub"
database_url = "sqlite:///hub/lerec.db"
storage_dir = "hub/store"
storage_reserve_bytes = 0
signing_key = "{pki.hub_signing_key.relative_to(root)}"
box_key = "{pki.hub_box_key.relative_to(root)}"
log_level = "INFO"

[broker]
host = "127.0.0.1"
port = {port}
ca = "{pki.ca_cert.relative_to(root)}"
cert = "{pki.hub_cert.relative_to(root)}"
key = "{pki.hub_key.relative_to(root)}"
client_id = "lerec-hub"

[export]
c2pa_cert = "{c2pa.cert.relative_to(root)}"
c2pa_key = "{c2pa.key.relative_to(root)}"
c2pa_ca = "{c2pa.ca.relative_to(root)}"
"""
    )
    return cfg


def write_recorder_config(root: Path, pki: Pki, device_id: str, port: int) -> Path:
    files = pki.device(device_id)
    d = root / device_id
    d.mkdir(parents=True, exist_ok=True)
    cfg = d / "recorder.toml"
    rel = lambda p: os.path.relpath(p, d)  # noqa: E731
    cfg.write_text(
        f"""# lerec recorder configuration (simulated demo recorder).
data_dir = "card"

[recorder]
device_id = "{device_id}"
officer_id = "{OFFICERS[device_id]}"
prerecord_seconds = 3
segment_seconds = 300

[recorder.video]
backend = "sim"
width = 640
height = 360
fps = 15
osd_timezone = "Asia/Shanghai"

[recorder.audio]
backend = "sim"

[recorder.gpio]
pin_factory = "mock"

[recorder.storage]
low_space_bytes = 0
floor_bytes = 0

[hub]
host = "127.0.0.1"
port = {port}
ca = "{rel(files.ca)}"
cert = "{rel(files.cert)}"
key = "{rel(files.key)}"
signing_key = "{rel(files.signing_key)}"
hub_signing_pub = "{rel(files.hub_signing_pub)}"
hub_box_pub = "{rel(files.hub_box_pub)}"
heartbeat_seconds = 5
"""
    )
    return cfg


def create_users(hub_cfg: Path, password: str) -> None:
    """The demo's people (idempotent). Cases are theirs to open in the admin UI; the clips
    the recorders upload are real, signed and verified — nothing is fabricated here."""
    from sqlalchemy import select

    from lerec.hub.cases import users as user_service
    from lerec.hub.config import HubConfig
    from lerec.hub.db import make_engine, migrate, sessionmaker
    from lerec.hub.db.cases_models import User
    from lerec.hub.rules import default_rulebook

    cfg = HubConfig.load(hub_cfg)

    async def run() -> None:
        engine = make_engine(cfg.database_url)
        await migrate(engine)
        async with sessionmaker(engine)() as s, s.begin():
            for name, role, display, officer in USERS:
                if (await s.execute(select(User.id).where(User.name == name))).first():
                    continue
                await user_service.create_user(
                    s, default_rulebook(), name=name, role=role, password=password,
                    display_name=display, officer_id=officer, actor="hub")
        await engine.dispose()

    asyncio.run(run())


def _check(root: Path, hub_cfg: Path) -> list[tuple[str, str, int, str]]:
    """Every stored segment, re-hashed from the store; returns (device, seq, bytes, path)."""
    from sqlalchemy import select

    from lerec.hub.config import HubConfig
    from lerec.hub.db import Segment, make_engine, sessionmaker
    from lerec.hub.storage import LocalBlobStore

    cfg = HubConfig.load(hub_cfg)
    store = LocalBlobStore(cfg.storage_dir)

    async def rows() -> list[Segment]:
        engine = make_engine(cfg.database_url)
        async with sessionmaker(engine)() as s:
            result = list((await s.execute(select(Segment).order_by(Segment.device_id))).scalars())
        await engine.dispose()
        return result

    out = []
    for row in asyncio.run(rows()):
        path = store.path_for(row.stored_ref)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != row.sha256:
            raise SystemExit(f"stored clip {path} does not match its hash!")
        out.append((row.device_id, str(row.seq), row.length, str(path)))
    return out


def _admin_up(port: int, timeout: float = 60.0) -> bool:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2) as r:
                if r.status == 200 and "登录" in r.read().decode("utf-8", "replace"):
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="lerec-demo",
        description="Run broker, hub, admin and two simulated recorders on this machine; "
        "record and upload one clip per recorder; print where to look; serve until Ctrl-C.",
    )
    p.add_argument("--data", type=Path, default=Path("var/demo"), help="demo folder")
    p.add_argument("--mqtt-port", type=int, default=8883, help="broker port (free one if busy)")
    p.add_argument("--admin-port", type=int, default=8080, help="admin web port")
    p.add_argument("--once", action="store_true", help="exit after the clips are verified")
    p.add_argument("--fresh", action="store_true", help="delete the demo folder first")
    args = p.parse_args(argv)

    root = args.data.resolve()
    if args.fresh and root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    pki = init_pki(root / "pki")
    for d in RECORDERS:
        issue_device(pki, d)
    spare = free_ports(2)  # (two different ones: asked one at a time, both could be the same)
    mqtt_port = args.mqtt_port if args.mqtt_port and _port_free(args.mqtt_port) else spare[0]
    admin_port = (args.admin_port if args.admin_port and _port_free(args.admin_port)
                  else spare[1])
    hub_cfg = write_hub_config(root, pki, mqtt_port)
    logs = root / "logs"
    logs.mkdir(exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(name: str, cmd: list[str]) -> subprocess.Popen[bytes]:
        f = open(logs / f"{name}.log", "ab")
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=root)
        f.close()
        procs.append(proc)
        return proc

    broker = Broker(pki, root / "broker", port=mqtt_port)
    print(f"[1/5] starting mosquitto (mutual TLS 1.3, per-recorder ACL) on 127.0.0.1:{mqtt_port}")
    broker.start()
    try:
        print("[2/5] enrolling recorders and starting the hub ingest daemon")
        for d in RECORDERS:
            files = pki.device(d)
            subprocess.run(
                [_bin("lerec-hub"), "--config", str(hub_cfg), "enroll", d, "--signing-pub",
                 str(files.signing_pub), "--cert", str(files.cert)],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        spawn("hub", [_bin("lerec-hub"), "--config", str(hub_cfg), "run"])
        print(f"[3/5] starting the admin service on http://127.0.0.1:{admin_port}/")
        pw_file = root / "admin-password.txt"
        if not pw_file.exists():
            pw_file.write_text(f"Demo-{secrets.token_urlsafe(9)}\n")
            pw_file.chmod(0o600)
        password = pw_file.read_text().strip()
        create_users(hub_cfg, password)
        spawn("admin", [_bin("lerec-admin"), "serve", "--config", str(hub_cfg),
                        "--port", str(admin_port), "--insecure-cookies"])
        print("[4/5] two simulated recorders press record, record ~5 s, press stop, upload")
        recs = [
            spawn(d, [_bin("lerec-recorder"), "--config",
                      str(write_recorder_config(root, pki, d, mqtt_port)), "simulate",
                      "--press-after", "2", "--record-seconds", "5", "--exit-when-uploaded",
                      "--timeout", "180"])
            for d in RECORDERS
        ]
        for d, proc in zip(RECORDERS, recs):
            rc = proc.wait(240)
            if rc != 0:
                print(f"recorder {d} failed (exit {rc}); see {logs / (d + '.log')}")
                return 1
        print("[5/5] checking: every clip stored, re-hashed, in the database, gone from the card")
        stored = _check(root, hub_cfg)
        for d in RECORDERS:
            sealed = list((root / d / "card" / "sealed").glob("*.seg"))
            spool = list((root / d / "card" / "spool").glob("*.mp4*"))
            if sealed or spool:
                print(f"recorder {d} still holds {sealed + spool}")
                return 1
        if not _admin_up(admin_port):
            print(f"the admin service did not answer; see {logs / 'admin.log'}")
            return 1
        if {s[0] for s in stored} != set(RECORDERS):
            print(f"expected clips from {RECORDERS}, found {stored}")
            return 1
        print()
        print("lerec demo is up. Every clip below is verified, stored write-once and receipted;")
        print("the recorders' local copies are gone.")
        for device, seq, length, path in stored:
            print(f"  {device} seq {seq}: {length} bytes  {path}")
        print(f"  clips (content-addressed store): {root / 'hub' / 'store' / 'objects'}")
        print(f"  database (SQLite):               {root / 'hub' / 'lerec.db'}")
        print(f"  admin page:                      http://127.0.0.1:{admin_port}/")
        print(f"    log in as wangqiang (承办人), zhoujun (行政机关负责人), wuhong (党政办) ... "
              f"password: {password}  (also in {pw_file})")
        print(f"  logs:                            {logs}")
        print(f"  broker:                          mqtts://127.0.0.1:{mqtt_port}")
        if args.once:
            return 0
        print("\nServing until Ctrl-C. Simulate more: lerec-recorder --config "
              f"{root / RECORDERS[0] / 'recorder.toml'} simulate")
        stop = False

        def _stop(*_: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGTERM, _stop)
        try:
            while not stop:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        return 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        broker.stop()


if __name__ == "__main__":
    sys.exit(main())
