"""Fleet commands of ``lerec-hub`` against a real broker and hub: enroll from a CSR, assign and
unassign an officer (hub-signed retained config applied by the recorder), time sync, revoke
(refused by the hub at once, by the broker after a restart with the new CRL)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from lerec.deploy.broker import Broker
from lerec.deploy.pki import init_pki, make_csr
from lerec.hub.daemon.__main__ import main
from lerec.hub.daemon.runner import HubThread
from lerec.hub.db import Rejection
from lerec.hub.db.fleet_models import DeviceConfigRecord, OfficerAssignment
from lerec.protocol import DeviceConfig
from sqlalchemy import select
from support.rig import (
    drop_databases,
    fake_segment,
    hub_config,
    make_store,
    make_uploader,
    raw_client,
)

_PEM = serialization.Encoding.PEM


def _write_toml(path: Path, cfg) -> Path:
    b = cfg.broker
    path.write_text(f"""
hub_id = "hub"
database_url = "{cfg.database_url}"
storage_dir = "{cfg.storage_dir}"
signing_key = "{cfg.signing_key}"
box_key = "{cfg.box_key}"
pki_dir = "{cfg.pki_dir}"
[broker]
host = "127.0.0.1"
port = {b.port}
ca = "{b.ca}"
cert = "{b.cert}"
key = "{b.key}"
""")
    return path


def recorder_keys(pki, device_id: str) -> tuple[bytes, Path]:
    """What a recorder does at provisioning: make its own keys, hand out only CSR + signing.pub."""
    files = pki.device(device_id)
    files.root.mkdir(parents=True, exist_ok=True)
    tls_key = ec.generate_private_key(ec.SECP256R1())
    files.key.write_bytes(tls_key.private_bytes(_PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
    signing = ed25519.Ed25519PrivateKey.generate()
    files.signing_key.write_bytes(signing.private_bytes(
        _PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    files.signing_pub.write_bytes(signing.public_key().public_bytes(
        _PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    csr = files.root / "request.csr"
    csr.write_bytes(make_csr(tls_key, device_id))
    return csr.read_bytes(), csr


#: How long a delivery through broker and hub may take on a loaded machine.
DELIVERY = 30.0


def wait_until(cond, timeout: float = DELIVERY) -> None:  # type: ignore[no-untyped-def]
    """Poll ``cond`` until it holds or ``timeout`` passed (the caller asserts it)."""
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.05)


def can_connect(pki, device_id: str, port: int, wait: float = 15.0) -> bool:
    """Whether ``device_id`` gets a CONNACK within ``wait`` seconds. Negative checks pass a
    short ``wait``, after a positive check showed the broker serving."""
    ok = threading.Event()
    c = raw_client(pki, device_id, port)
    c.on_connect = lambda cl, u, f, rc, p: (not rc.is_failure) and ok.set()
    try:
        c.connect("127.0.0.1", port)
    except OSError:
        return False
    c.loop_start()
    try:
        return ok.wait(wait)
    finally:
        c.disconnect()
        c.loop_stop()


@pytest.fixture
def fleet_env(tmp_path):
    pki = init_pki(tmp_path / "pki")  # own CA: revocations must not leak into other tests
    broker = Broker(pki, tmp_path / "broker")
    broker.start()
    cfg = hub_config(pki, broker.port, tmp_path / "hub", pki_dir=pki.root)
    toml = _write_toml(tmp_path / "hub.toml", cfg)
    try:
        yield pki, broker, cfg, toml
    finally:
        broker.stop()
        drop_databases(tmp_path / "hub")


def test_enroll_assign_time_sync_revoke(fleet_env, tmp_path, capsys):
    pki, broker, cfg, toml = fleet_env
    _, csr = recorder_keys(pki, "rec-x")
    files = pki.device("rec-x")
    assert main(["--config", str(toml), "enroll", "rec-x", "--csr", str(csr),
                 "--signing-pub", str(files.signing_pub), "--label", "asset 7"]) == 0
    assert files.cert.exists() and files.hub_box_pub.exists()
    assert main(["--config", str(toml), "enroll", "rec-y", "--generate"]) == 0
    out = capsys.readouterr().out
    assert "enrolled rec-x" in out and "enrolled rec-y" in out

    hub = HubThread(cfg).start()
    try:
        configs: list[DeviceConfig] = []
        store = make_store(pki, "rec-x", tmp_path / "rec-x")
        up = make_uploader(pki, store, broker.port, on_config=configs.append)
        up.start()
        assert up.connected.wait(DELIVERY)

        before = int(time.time() * 1000)
        assert main(["--config", str(toml), "assign", "rec-x", "officer-41"]) == 0
        wait_until(lambda: configs)
        assert configs and configs[-1].officer_id == "officer-41"
        assert configs[-1].issued_ms >= before - 5
        first_seq = configs[-1].config_seq

        assert main(["--config", str(toml), "time-sync"]) == 0
        wait_until(lambda: len(configs) >= 2)
        assert configs[-1].config_seq == first_seq + 1
        assert configs[-1].officer_id == "officer-41"

        # Retained: a recorder connecting later still gets the binding.
        late: list[DeviceConfig] = []
        store2 = make_store(pki, "rec-x", tmp_path / "rec-x2")
        up2 = make_uploader(pki, store2, broker.port, on_config=late.append)
        up2.client._client_id = b"rec-rec-x-late"
        up2.start()
        wait_until(lambda: late)
        up2.stop()
        assert late and late[-1].officer_id == "officer-41"

        assert main(["--config", str(toml), "unassign", "rec-x"]) == 0
        wait_until(lambda: configs[-1].officer_id == "unassigned")
        assert configs[-1].officer_id == "unassigned"

        async def history():
            async with hub.service.sessions() as s:
                a = (await s.execute(select(OfficerAssignment))).scalars().all()
                c = (await s.execute(select(DeviceConfigRecord.reason).where(
                    DeviceConfigRecord.device_id == "rec-x").order_by(
                    DeviceConfigRecord.config_seq))).scalars().all()
            return a, c

        assignments, reasons = hub.call(history())
        assert [(a.officer_id, a.ended_at is not None) for a in assignments] == \
            [("officer-41", True)]
        assert reasons == ["assign", "time_sync", "unassign"]

        # Uploads work while enrolled.
        store.seal(fake_segment(store, 50_000))
        assert up.wait_idle(30)

        # Revoke: the hub refuses the still-connected recorder at once.
        assert main(["--config", str(toml), "revoke", "rec-x", "--reason", "lost"]) == 0
        assert "rec-x" in pki.acl.read_text()
        row = store.seal(fake_segment(store, 50_000))
        t0 = time.monotonic()
        while store.journal.get(row.seq).state != "refused" and time.monotonic() - t0 < 30:
            time.sleep(0.05)
        assert store.journal.get(row.seq).state == "refused"

        async def rejections():
            async with hub.service.sessions() as s:
                return (await s.execute(select(Rejection.code).where(
                    Rejection.device_id == "rec-x"))).scalars().all()

        assert "revoked" in hub.call(rejections())
        up.stop()

        # The broker refuses the certificate once it restarts with the new CRL and ACL.
        assert can_connect(pki, "rec-x", broker.port), "still accepted before the reload"
        broker.restart()
        # The positive check first (the restarted broker serves), then the revoked one.
        assert can_connect(pki, "rec-y", broker.port), "other recorders are unaffected"
        assert not can_connect(pki, "rec-x", broker.port, wait=4.0), \
            "revoked certificate connected"
    finally:
        hub.stop()


def test_commands_have_help_and_readable_errors(fleet_env, capsys):
    pki, broker, cfg, toml = fleet_env
    for cmd in ("run", "migrate", "enroll", "revoke", "assign", "unassign", "time-sync",
                "push-configs", "devices"):
        with pytest.raises(SystemExit) as exc:
            main([cmd, "--help"])
        assert exc.value.code == 0
        assert "usage: lerec-hub " + cmd in capsys.readouterr().out
    assert main(["--config", str(toml), "assign", "nobody", "officer-1"]) == 1
    assert "nobody is not enrolled" in capsys.readouterr().err
    assert main(["--config", str(toml), "enroll", "rec-z", "--csr", str(toml),
                 "--signing-pub", str(pki.hub_signing_pub)]) == 1
    assert "certificate signing request" in capsys.readouterr().err
    assert main(["--config", str(toml), "enroll", "rec-z", "--csr", str(toml)]) == 1
    assert "--signing-pub" in capsys.readouterr().err
    assert main(["--config", str(Path(toml).with_name("missing.toml")), "devices"]) == 2
    assert "does not exist" in capsys.readouterr().err
