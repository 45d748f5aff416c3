"""The lerec-admin CLI and the OpenAPI schema of /api/v1."""

from __future__ import annotations

import subprocess
import sys

import pytest
from lerec.hub.admin.__main__ import main


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("serve", "create-user", "seed-demo"):
        assert cmd in out
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    assert "--port" in capsys.readouterr().out


def test_create_user_and_seed_demo(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'hub.db'}"
    pw = tmp_path / "pw"
    pw.write_text("a-long-password\n", encoding="utf-8")
    args = ["--database-url", db, "--storage-dir", str(tmp_path / "store")]
    assert main(["create-user", "admin1", "--role", "archivist", "--password-file", str(pw),
                 *args]) == 0
    assert main(["create-user", "admin1", "--role", "archivist", "--password-file", str(pw),
                 *args]) == 2
    err = capsys.readouterr().err
    assert "已存在" in err
    pw.write_text("short\n")
    assert main(["create-user", "x2", "--role", "officer", "--password-file", str(pw),
                 *args]) == 2
    assert "至少" in capsys.readouterr().err
    assert main(["seed-demo", *args]) == 0
    out = capsys.readouterr().out
    assert "占道经营" in out and "演示用户的密码" in out


def test_console_script_entry_point_runs():
    r = subprocess.run([sys.executable, "-m", "lerec.hub.admin", "--help"], capture_output=True,
                       text=True, timeout=60, check=False)
    assert r.returncode == 0 and "lerec-admin" in r.stdout


async def test_openapi_documents_the_json_api_only(client_factory):
    r = await client_factory().get("/api/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    assert all(p.startswith("/api/v1/") for p in paths)
    for p, method in (("/api/v1/cases", "get"), ("/api/v1/cases", "post"),
                      ("/api/v1/cases/{case_id}/records", "post"),
                      ("/api/v1/cases/{case_id}/records/{record_id}", "put"),
                      ("/api/v1/cases/{case_id}/clips", "post"),
                      ("/api/v1/cases/{case_id}/clips/{segment_id}", "delete"),
                      ("/api/v1/findings", "get"), ("/api/v1/users", "post"),
                      ("/api/v1/session", "post")):
        assert method in paths[p], (p, method)
    assert "X-CSRF-Token" in r.json()["info"]["description"]
    assert (await client_factory().get("/docs")).status_code == 404  # no CDN-loaded docs UI
