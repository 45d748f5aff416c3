"""The lerec-verify CLI: exit 0 on a clean hub, 1 naming what was tampered with."""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import serialization
from lerec.hub.verify.__main__ import main
from lerec.hub.verify.checkpointer import checkpoint_now


def _config(tmp_path, db_url: str, store_dir, key) -> str:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    (tmp_path / "signing.key").write_bytes(pem)
    url = db_url.replace("+aiosqlite", "").replace("+asyncpg", "")
    (tmp_path / "hub.toml").write_text(f'''
database_url = "{url}"
storage_dir = "{store_dir}"
signing_key = "signing.key"
box_key = "box.key"
[broker]
ca = "ca.crt"
cert = "c.crt"
key = "c.key"
''')
    return str(tmp_path / "hub.toml")


async def test_log_and_store_commands(tmp_path, db_url, evidence, tamper, capsys):
    import asyncio

    rows = [await evidence.segment("rec-a", os.urandom(500)) for _ in range(3)]
    await checkpoint_now(evidence.sessions, evidence.hub_key)
    cfg = _config(tmp_path, db_url, evidence.store.root, evidence.hub_key)
    run = lambda *a: asyncio.to_thread(main, ["-q", *a])
    assert await run("log", "--config", cfg, "--workers", "1") == 0
    assert await run("store", "--config", cfg) == 0
    out = capsys.readouterr().out
    assert "校验通过 VERIFIED" in out
    await tamper.sql(*tamper.drop_audit_triggers(),
                     "UPDATE audit_entries SET actor = 'device:x' WHERE idx = 2")
    assert await run("log", "--config", cfg, "--workers", "1") == 1
    assert "entry 2 field actor" in capsys.readouterr().out
    evidence.store.path_for(rows[0].stored_ref).unlink()
    assert await run("--json", "store", "--config", cfg) == 1
    assert rows[0].stored_ref in capsys.readouterr().out
    assert await run("log", "--config", str(tmp_path / "missing.toml")) == 2
