"""Attachments in the blob store by content hash, with 第二十七条 metadata; audio needs a
transcript; the speech-recognition plug-in point."""

from __future__ import annotations

import hashlib
import io

import pytest
from support.admin_client import audit_rows

from lerec.hub.cases import transcribe


async def _upload(h, cid, data: bytes, media: str, **fields):
    files = {"file": ("录音.m4a" if media == "audio" else "照片.jpg", io.BytesIO(data),
                      "audio/mp4" if media == "audio" else "image/jpeg")}
    r = await h.c.post(f"/api/v1/cases/{cid}/attachments", files=files,
                       data={"media_type": media, **fields}, headers=h.headers())
    assert r.status_code == 201, r.text
    return r.json()


async def test_photo_is_stored_by_hash_and_metadata_is_checked(app, login):
    h = await login("handler_a")
    cid = (await h.create_case())["id"]
    data = b"\xff\xd8\xff photo bytes"
    att = await _upload(h, cid, data, "photo")
    assert att["sha256"] == hashlib.sha256(data).hexdigest()
    assert await app.state.store.exists("sha256:" + att["sha256"])
    findings = (await h.get(f"/api/v1/cases/{cid}/findings")).json()
    meta = [f for f in findings if f["code"] == "attachment_metadata_missing"]
    assert not meta  # case-level attachments are not record evidence
    rid = (await h.api("POST", f"/api/v1/cases/{cid}/records", {
        "kind": "ex_officio_start", "fields": {
            "reason": "x", "case_source": "x", "party_info": "x", "case_facts": "x",
            "handler_opinion": "x", "unit_opinion": "x", "head_opinion": "x",
            "recorded_at": "2026-11-20T09:00:00+08:00"}})).json()["id"]
    await _upload(h, cid, data + b"2", "photo", record_id=str(rid))
    findings = (await h.get(f"/api/v1/cases/{cid}/findings")).json()
    meta = [f for f in findings if f["code"] == "attachment_metadata_missing"]
    assert meta and meta[0]["article"] == 27 and "制作方法" in meta[0]["message"]
    await _upload(h, cid, data + b"3", "photo", record_id=str(rid), method="手机拍照",
                  made_at="2026-11-20T09:10", maker="张执法", proves="桌椅占道")
    findings = (await h.get(f"/api/v1/cases/{cid}/findings")).json()
    assert len([f for f in findings if f["code"] == "attachment_metadata_missing"]) == 1
    r = await h.get(f"/cases/{cid}/attachments/{att['id'][4:]}", headers={"Range": "bytes=0-3"})
    assert r.status_code == 206 and r.content == data[:4]
    assert any(row[1] == "view" for row in await audit_rows(app))


async def test_audio_without_transcript_is_a_finding_until_transcribed(app, login):
    h = await login("handler_a")
    cid = (await h.create_case())["id"]
    rid = (await h.api("POST", f"/api/v1/cases/{cid}/records", {
        "kind": "ex_officio_start", "fields": {
            "reason": "x", "case_source": "x", "party_info": "x", "case_facts": "x",
            "handler_opinion": "x", "unit_opinion": "x", "head_opinion": "x",
            "recorded_at": "2026-11-20T09:00:00+08:00"}})).json()["id"]
    att = await _upload(h, cid, b"audio", "audio", record_id=str(rid), method="录音笔",
                        made_at="2026-11-20T09:10", maker="张执法", proves="当事人陈述")
    findings = (await h.get(f"/api/v1/cases/{cid}/findings")).json()
    assert [f["article"] for f in findings if f["code"] == "audio_without_transcript"] == [27]
    r = await h.post(f"/cases/{cid}/attachments/{att['id'][4:]}/transcript",
                     {"transcript": "当事人称：晚上客人多。"})
    assert r.status_code == 303
    findings = (await h.get(f"/api/v1/cases/{cid}/findings")).json()
    assert not [f for f in findings if f["code"] == "audio_without_transcript"]


class FakeAsr:
    name = "fake-asr"
    label = "测试识别"

    async def transcribe(self, data: bytes, content_type: str) -> str:
        return f"识别出 {len(data)} 字节"


@pytest.fixture
def fake_asr():
    transcribe.register(FakeAsr())
    yield
    transcribe.unregister("fake-asr")


async def test_a_registered_transcriber_drafts_the_transcript(app, login, fake_asr):
    assert [t.name for t in transcribe.available()] == ["fake-asr"]
    with pytest.raises(TypeError):
        transcribe.register(object())  # type: ignore[arg-type]
    h = await login("handler_a")
    cid = (await h.create_case())["id"]
    att = await _upload(h, cid, b"12345", "audio")
    page = await h.get(f"/cases/{cid}")
    assert "用测试识别生成草稿" in page.text
    r = await h.post(f"/cases/{cid}/attachments/{att['id'][4:]}/transcript",
                     {"engine": "fake-asr"})
    assert r.status_code == 303
    d = (await h.get(f"/api/v1/cases/{cid}")).json()
    assert d["attachments"][0]["transcript"] == "识别出 5 字节"
