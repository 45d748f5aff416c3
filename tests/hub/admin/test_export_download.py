"""第二十九条: a requester's approved download is the export — the clip re-encoded with a visible
watermark naming the requester and C2PA content credentials signed by the hub-CA-issued
signer — prepared in the background and served as an attachment, never the raw clip. Through
the admin app (pages and /api/v1) on a real database, real PyAV and real c2pa-python."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import re
import time
from urllib.parse import unquote

import av
import c2pa
import numpy as np
import pytest
from support.admin_client import add_segment, audit_rows, user_id
from support.trust_fixtures import make_mp4

from lerec.hub.export import issue_c2pa_signer, read_mp4

CHINA = dt.timezone(dt.timedelta(hours=8))
WHEN = dt.datetime(2026, 11, 20, 9, 30, tzinfo=CHINA)


@pytest.fixture
def signer_config():
    """How the app's C2PA signer is configured: "hub" (the hub CA's), "none", "missing"
    (configured paths that do not exist) or "wrong_ca" (verified against another CA)."""
    return "hub"


@pytest.fixture
async def app(database_url, tmp_path, pki, signer_config, tmp_path_factory):
    from lerec.deploy.pki import init_pki
    from lerec.hub.admin.app import create_app
    from lerec.hub.admin.settings import AdminSettings

    signer = issue_c2pa_signer(pki.ca_cert, pki.ca_key, pki.root / "hub")  # (made by init_pki)
    files = {"c2pa_cert": signer.cert, "c2pa_key": signer.key, "c2pa_ca": pki.ca_cert}
    if signer_config == "none":
        files = {}
    elif signer_config == "missing":
        files = {k: tmp_path / "nowhere" / v.name for k, v in files.items()}
    elif signer_config == "wrong_ca":
        files["c2pa_ca"] = init_pki(tmp_path_factory.mktemp("other-pki")).ca_cert
    application = create_app(AdminSettings(
        database_url=database_url, storage_dir=tmp_path / "store", migrate=False,
        refresh_minutes=0, export_dir=tmp_path / "exports", **files))
    async with application.router.lifespan_context(application):
        yield application


async def _case_with_clips(app, login, tmp_path):
    """A case with two real clips (H.264 + AAC, dark frames), party_a linked to it."""
    h = await login("handler_a")
    case = await h.create_case(officer_ids=[await user_id(app, "officer_a")])
    cid = case["id"]
    segs, sources = [], []
    for i in range(2):
        data = make_mp4(tmp_path / f"src{i}.mp4", seconds=2.0).read_bytes() + bytes(i)
        seg = await add_segment(app, tmp_path, "officer_a", WHEN + dt.timedelta(minutes=10 * i),
                                data=data)
        r = await h.api("POST", f"/api/v1/cases/{cid}/clips", {"segment_id": seg})
        assert r.status_code == 201, r.text
        segs.append(seg)
        sources.append(data)
    head = await login("agency_head")
    r = await head.api("PATCH", f"/api/v1/users/{await user_id(app, 'party_a')}",
                       {"party_case_ids": [cid]})
    assert r.status_code == 200, r.text
    return h, head, cid, segs, sources


async def _grant(requester, head, cid: int, items: list[str], days: int = 3) -> int:
    until = (dt.datetime.now(dt.UTC) + dt.timedelta(days=days)).isoformat()
    r = await requester.api("POST", f"/api/v1/cases/{cid}/access/requests",
                            {"purpose": "准备行政复议", "scope": items, "until": until})
    assert r.status_code == 201, r.text
    req = r.json()["id"]
    r = await head.api("POST", f"/api/v1/access/requests/{req}/approve", {})
    assert r.status_code == 200 and r.json()["status"] == "approved", r.text
    return req


def _export(cid: int, seg: str) -> str:
    return f"/access/cases/{cid}/clips/{seg}/export"


def _api_export(cid: int, seg: str) -> str:
    return f"/api/v1/cases/{cid}/access/clips/{seg}/export"


async def _wait_page(b, cid: int, seg: str, timeout: float = 180) -> str:
    """Poll the status fragment (what htmx polls) until the export is no longer prepared."""
    deadline = time.monotonic() + timeout
    while True:
        r = await b.get(_export(cid, seg) + "/status")
        assert r.status_code == 200, r.text
        state = re.search(r'data-state="(\w+)"', r.text).group(1)
        if state not in ("queued", "running"):
            return r.text
        assert 'hx-trigger="every 1s"' in r.text and "正在重新编码视频" in r.text
        assert time.monotonic() < deadline, "export not ready in time"
        await asyncio.sleep(0.2)


async def _wait_api(b, cid: int, seg: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        r = await b.get(_api_export(cid, seg))
        assert r.status_code == 200, r.text
        if r.json()["state"] not in ("queued", "running"):
            return r.json()
        assert time.monotonic() < deadline, "export not ready in time"
        await asyncio.sleep(0.2)


def _first_frame(path) -> np.ndarray:
    with av.open(str(path)) as c:
        return next(c.decode(video=0)).to_ndarray(format="rgb24")


def _title(path) -> str:
    with open(path, "rb") as f, c2pa.Reader("video/mp4", f) as r:
        data = json.loads(r.json())
    return data["manifests"][data["active_manifest"]]["title"]


def _filename(resp) -> str:
    cd = resp.headers["content-disposition"]
    assert cd.startswith("attachment;"), cd
    return unquote(cd.split("filename*=UTF-8''", 1)[1])


async def test_party_downloads_the_watermarked_signed_export_trusted_against_the_hub_ca(
        app, login, tmp_path, pki):
    from lerec.hub.export.watermark import _font

    _, head, cid, (seg_a, _), (src_a, _) = await _case_with_clips(app, login, tmp_path)
    party = await login("party_a")
    await _grant(party, head, cid, [f"segment:{seg_a}"])

    page = await party.get(f"/access/cases/{cid}")
    assert "下载（带水印和内容凭证）" in page.text
    assert f'action="{_export(cid, seg_a)}"' in page.text and f"{seg_a}/media?download" not in page.text

    # starting answers at once; the export is prepared in the background
    r = await party.post(_export(cid, seg_a))
    assert r.status_code == 303 and r.headers["location"] == _export(cid, seg_a)
    job = app.state.export_jobs.get("user:party_a", cid, seg_a)
    assert job is not None and job.state in ("queued", "running")
    page = await party.get(r.headers["location"])
    assert page.status_code == 200 and "下载（带水印和内容凭证）" in page.text
    assert (await party.get("/healthz")).status_code == 200  # the service keeps answering
    # asking again while it is prepared does not start a second export
    assert (await party.post(_export(cid, seg_a))).status_code == 303
    assert app.state.export_jobs.get("user:party_a", cid, seg_a) is job

    ready = await _wait_page(party, cid, seg_a)
    assert 'data-state="ready"' in ready and "可信" in ready, ready
    assert f'href="{_export(cid, seg_a)}/file"' in ready

    r = await party.get(_export(cid, seg_a) + "/file")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "video/mp4"
    name = _filename(r)
    assert name.endswith("-导出.mp4") and "/" not in name and "〔" not in name, name
    assert re.search(r'filename="[A-Za-z0-9._-]+\.mp4"', r.headers["content-disposition"])
    assert r.content != src_a
    out = tmp_path / "downloaded.mp4"
    out.write_bytes(r.content)
    sha = hashlib.sha256(r.content).hexdigest()
    assert r.headers["x-content-sha256"] == sha

    # C2PA: Trusted against the hub CA, naming the export (title, requester, case, clip)
    cred = read_mp4(out, pki.ca_cert.read_text())
    assert cred.validation_state == "Trusted", cred.errors
    assert _title(out) == name
    a = cred.assertion
    assert (a["requester"], a["user"], a["case_id"], a["segment_id"]) == (
        "刘当事人", "user:party_a", str(cid), seg_a)
    assert a["source_sha256"] == hashlib.sha256(src_a).hexdigest()
    assert a["access_request"] is not None and a["watermark"][0].endswith("user:party_a")
    # the watermark names the requester, in the pixels: the dark source's top band now has
    # white text, the rest of the frame is untouched
    if _font(12, None)[1]:
        assert a["watermark"][0] == "刘当事人 user:party_a"
    assert "刘当事人 user:party_a" in ready or "user:party_a" in ready
    src, exp = _first_frame(tmp_path / "src0.mp4").astype(int), _first_frame(out).astype(int)
    top = src.shape[0] // 6
    assert (src[:top] > 200).mean() == 0 and (exp[:top] > 200).mean() > 0.02
    assert np.abs(src[src.shape[0] // 2:] - exp[src.shape[0] // 2:]).mean() < 6

    # a second download hands out the same prepared file, and is logged again
    r2 = await party.get(_export(cid, seg_a) + "/file")
    assert r2.status_code == 200 and r2.content == r.content

    rows = [(t, d) for _, t, actor, _, d in await audit_rows(app) if actor == "user:party_a"
            and t in ("export", "download")]
    exports = [d for t, d in rows if t == "export"]
    downloads = [d for t, d in rows if t == "download"]
    assert len(exports) == 1 and exports[0]["allowed"] is True
    assert exports[0]["sha256"] == sha and exports[0]["c2pa_validation"] == "Trusted"
    assert list(exports[0]["watermark"]) == a["watermark"]
    case_no = (await party.get(f"/api/v1/cases/{cid}/access")).json()["case_no"]
    assert a["case_label"] == case_no and a["watermark"][1].endswith(f"仅限 {case_no}")
    assert [(d["item"], d["allowed"], d["code"], d["export_sha256"]) for d in downloads] == [
        (f"segment:{seg_a}", True, "ok", sha)] * 2

    # the raw clip is never a download on the 查阅 route: ?download=1 leads to the export
    r = await party.get(f"/access/cases/{cid}/clips/{seg_a}/media?download=1")
    assert r.status_code == 303 and r.headers["location"] == _export(cid, seg_a)

    # prepared files are temporary: past their time they are deleted
    jobs = app.state.export_jobs
    job = jobs.get("user:party_a", cid, seg_a)
    folder = job.folder
    assert folder.is_dir() and folder.parent == tmp_path / "exports"
    job.finished_at -= jobs.keep
    assert jobs.get("user:party_a", cid, seg_a) is None and not folder.exists()
    r = await party.get(_export(cid, seg_a) + "/file")
    assert r.status_code == 404 and "重新生成" in r.text


async def test_outside_the_grant_or_after_it_expired_the_export_is_refused_and_logged(
        app, login, tmp_path):
    h, head, cid, (seg_a, seg_b), _ = await _case_with_clips(app, login, tmp_path)
    party = await login("party_a")
    req = await _grant(party, head, cid, [f"segment:{seg_a}"])

    # outside the approved scope: refused, with the rule's reason, logged
    r = await party.post(_export(cid, seg_b))
    assert r.status_code == 403 and "不在批准范围内" in r.text
    r = await party.api("POST", _api_export(cid, seg_b))
    assert r.status_code == 403 and "不在批准范围内" in r.json()["detail"]
    page = await party.get(_export(cid, seg_b))
    assert "不在批准范围内" in page.text and "生成导出文件" not in page.text
    # a clip of another case is refused like a missing one
    other = await h.create_case(title="另一案件")
    seg_x = await add_segment(app, tmp_path, "officer_a", WHEN, data=b"\0" * 100)
    assert (await party.post(_export(cid, seg_x))).status_code == 404
    assert (await party.post(_export(other["id"], seg_a))).status_code == 404

    # prepared under the grant, then the grant expires: the download is refused and logged,
    # the prepared file deleted
    assert (await party.post(_export(cid, seg_a))).status_code == 303
    assert 'data-state="ready"' in await _wait_page(party, cid, seg_a)
    folder = app.state.export_jobs.get("user:party_a", cid, seg_a).folder
    from lerec.hub.db.trust_models import AccessRequest

    async with app.state.sessions() as s, s.begin():
        row = await s.get(AccessRequest, req)
        row.granted_until = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    r = await party.get(_export(cid, seg_a) + "/file")
    assert r.status_code == 403 and "授权已过期" in r.text
    assert not folder.exists() and app.state.export_jobs.get("user:party_a", cid, seg_a) is None
    r = await party.post(_export(cid, seg_a))
    assert r.status_code == 403 and "授权已过期" in r.text

    a, b = f"segment:{seg_a}", f"segment:{seg_b}"
    seen = [(t, d.get("item"), d.get("allowed"), d.get("code"))
            for _, t, actor, _, d in await audit_rows(app)
            if actor == "user:party_a" and t in ("export", "download")]
    assert seen == [
        ("export", b, False, "out_of_scope"), ("export", b, False, "out_of_scope"),
        ("export", a, True, "ok"),  # the export itself (export_clip's entry)
        ("download", a, False, "expired"),
        ("export", a, False, "expired"),
    ], seen
    denied = [d for _, t, actor, _, d in await audit_rows(app)
              if t == "access_denied" and actor == "user:party_a"]
    assert {d["reason"] for d in denied} >= {"item_scope", "case_scope"}


async def test_an_approved_official_exports_through_the_json_api(app, login, tmp_path, pki):
    _, head, cid, (seg_a, _), _ = await _case_with_clips(app, login, tmp_path)
    legal = await login("legal")
    url = _api_export(cid, seg_a)
    r = await legal.api("POST", url)
    assert r.status_code == 403 and "未经负责人同意" in r.json()["detail"]
    assert (await legal.get(url + "/file")).status_code == 404  # nothing prepared
    await _grant(legal, head, cid, ["*"])

    r = await legal.api("POST", url)
    assert r.status_code == 202 and r.json()["state"] in ("queued", "running"), r.text
    assert r.json()["status_url"] == url and r.json()["download_url"] is None
    st = await _wait_api(legal, cid, seg_a)
    assert st["state"] == "ready" and st["c2pa_validation"] == "Trusted", st
    assert st["download_url"] == url + "/file" and st["watermark"][0].endswith("user:legal")
    r = await legal.api("POST", url)  # prepared under this grant: handed back, not redone
    assert r.status_code == 200 and r.json()["sha256"] == st["sha256"]

    r = await legal.get(st["download_url"])
    assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == st["sha256"]
    assert _filename(r) == st["filename"]
    out = tmp_path / "official.mp4"
    out.write_bytes(r.content)
    cred = read_mp4(out, pki.ca_cert.read_text())
    assert cred.validation_state == "Trusted" and cred.assertion["requester"] == "陈法制"
    rows = [(t, d) for _, t, actor, _, d in await audit_rows(app)
            if actor == "user:legal" and t in ("export", "download")]
    assert [t for t, _ in rows] == ["export", "export", "download"]
    assert rows[1][1]["sha256"] == st["sha256"] and rows[2][1]["allowed"] is True

    # the openapi lists the routes under the 查阅 tag
    paths = (await legal.get("/api/openapi.json")).json()["paths"]
    assert {"/api/v1/cases/{case_id}/access/clips/{segment_id}/export",
            "/api/v1/cases/{case_id}/access/clips/{segment_id}/export/file"} <= set(paths)


@pytest.mark.parametrize("signer_config", ["none", "missing"])
async def test_without_the_signer_the_download_is_explained_and_no_raw_file_is_served(
        app, login, tmp_path, signer_config):
    _, head, cid, (seg_a, _), (src_a, _) = await _case_with_clips(app, login, tmp_path)
    party = await login("party_a")
    await _grant(party, head, cid, [f"segment:{seg_a}"])
    expected = "未配置内容凭证" if signer_config == "none" else "签名证书文件不存在"

    page = await party.get(f"/access/cases/{cid}")
    assert expected in page.text and "原始文件不提供下载" in page.text
    assert "disabled>下载（带水印和内容凭证）" in page.text
    assert f'action="{_export(cid, seg_a)}"' not in page.text
    r = await party.post(_export(cid, seg_a))
    assert r.status_code == 409 and expected in r.text
    r = await party.api("POST", _api_export(cid, seg_a))
    assert r.status_code == 409 and expected in r.json()["detail"]
    st = (await party.get(_api_export(cid, seg_a))).json()
    assert st["state"] == "unconfigured" and st["configured"] is False and expected in st["message"]
    for url in (_export(cid, seg_a) + "/file", _api_export(cid, seg_a) + "/file",
                f"/access/cases/{cid}/clips/{seg_a}/media?download=1"):
        r = await party.get(url)
        assert r.status_code in (303, 404) and src_a not in r.content, url
    assert not list((tmp_path / "exports").glob("*/*"))
    denied = [d for _, t, actor, _, d in await audit_rows(app)
              if t == "access_denied" and actor == "user:party_a"]
    assert [d["reason"] for d in denied] == ["export_unconfigured"] * 2
    assert not [t for _, t, actor, _, _ in await audit_rows(app)
                if actor == "user:party_a" and t in ("export", "download")]


@pytest.mark.parametrize("signer_config", ["wrong_ca"])
async def test_an_export_not_trusted_by_the_configured_ca_is_not_handed_out(
        app, login, tmp_path, signer_config):
    _, head, cid, (seg_a, _), _ = await _case_with_clips(app, login, tmp_path)
    party = await login("party_a")
    await _grant(party, head, cid, [f"segment:{seg_a}"])
    assert (await party.post(_export(cid, seg_a))).status_code == 303
    page = await _wait_page(party, cid, seg_a)
    assert 'data-state="failed"' in page and "未通过校验" in page and "重新生成" in page
    assert (await party.get(_export(cid, seg_a) + "/file")).status_code == 404
    assert not list((tmp_path / "exports").glob("*/*"))
    ev = [d for _, t, actor, _, d in await audit_rows(app) if actor == "user:party_a"
          and t == "export"]
    assert len(ev) == 1 and ev[0]["c2pa_validation"] != "Trusted"
