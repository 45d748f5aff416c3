"""The PDF index of an archive package (data/index.pdf): content, embedded font, bag coverage,
tamper detection, determinism, and a clear refusal when no Chinese font is installed.

Text and fonts are read back with poppler-utils (pdftotext, pdffonts), as a reader would."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from lerec.hub.archive import (
    ArchiveError,
    CaseFile,
    FontMissing,
    PdfFont,
    build_archive,
    is_locked,
    pdfindex,
)
from lerec.hub.archive.fourcheck import FourReport, Item
from lerec.hub.audit import log as audit
from lerec.hub.verify.__main__ import main
from lerec.hub.verify.archivecheck import verify_archive

NOW = dt.datetime(2026, 6, 20, 3, 0, tzinfo=dt.UTC)


def _poppler(tool: str, *args: str) -> str:
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is missing: apt-get install poppler-utils")
    return subprocess.run([tool, *args], check=True, capture_output=True, text=True).stdout


def pdf_text(path: Path) -> str:
    return _poppler("pdftotext", "-enc", "UTF-8", str(path), "-")


def pdf_fonts(path: Path) -> list[list[str]]:
    """pdffonts rows: name, type..., emb, sub, uni, object, generation."""
    lines = _poppler("pdffonts", str(path)).splitlines()[2:]
    return [line.split() for line in lines if line.strip()]


def embedded_font_files(raw: bytes) -> list[bytes]:
    """The /FontFile2 (TrueType) or /FontFile3 (CFF) keys of every font descriptor."""
    return re.findall(rb"/FontDescriptor.*?(/FontFile[23]?) \d+ 0 R", raw, re.DOTALL)


def hub_vkey(evidence) -> str:
    return audit.signer_from_key(evidence.hub_key, audit.DEFAULT_ORIGIN).verifier().encode()


async def test_package_holds_a_pdf_index_covered_by_both_bag_manifests(archived):
    ev, _case, _segs, result = archived
    pdf = result.path / "data/index.pdf"
    raw = pdf.read_bytes()
    assert raw.startswith(b"%PDF-")
    for alg in ("sha256", "sha512"):
        manifest = (result.path / f"manifest-{alg}.txt").read_text().splitlines()
        assert f"{hashlib.new(alg, raw).hexdigest()}  data/index.pdf" in manifest
    report = verify_archive(result.path, trusted_hub_key=hub_vkey(ev))
    assert not report.failed, [f.line() for f in report.findings]
    four = json.loads((result.path / "data/report/four-properties.json").read_text())
    item = next(i for i in four["items"] if i["target"] == "data/index.pdf")
    assert (item["property"], item["check"], item["result"]) == ("usability", "human_index",
                                                                 "pass")
    assert "index.pdf" in (result.path / "data/index.html").read_text()


async def test_pdf_index_text_has_the_case_clips_hashes_report_and_how_to_verify(archived):
    ev, case, segs, result = archived
    text = pdf_text(result.path / "data/index.pdf")
    flat = re.sub(r"\s+", "", text)
    for expected in ("行政执法案卷目录", result.archive_no, case.case_id, "某餐馆占道经营案",
                     "案件信息", "文字记录（2份）", "立案审批表", "现场检查笔录",
                     "音像记录（4段）", "附件（1件）", "notice.txt", "审计记录",
                     "四性检测", "检测通过", "真实性", "完整性", "可用性", "安全性", "如何验证",
                     "lerec-verify", "archive", "个人隐私", hub_vkey(ev).replace(" ", "")):
        assert expected.replace(" ", "") in flat, expected
    for s in segs:
        sha = hashlib.sha256(ev.store.path_for(s.stored_ref).read_bytes()).hexdigest()
        assert s.segment_id in flat and sha in flat, s.segment_id
    notice = hashlib.sha256("处罚决定书".encode()).hexdigest()
    assert notice in flat
    pages = text.count("\f")
    assert pages >= 2  # header and page numbers on every page
    for n in range(1, pages + 1):
        assert f"第 {n} 页，共 {pages} 页" in text
    assert text.count(f"档号 {result.archive_no}") >= pages  # the running header


async def test_pdf_index_embeds_its_font_and_dates_from_the_archive_time(archived):
    _ev, _case, _segs, result = archived
    pdf = result.path / "data/index.pdf"
    raw = pdf.read_bytes()
    assert embedded_font_files(raw) and set(embedded_font_files(raw)) <= {b"/FontFile2",
                                                                          b"/FontFile3"}
    fonts = pdf_fonts(pdf)
    assert fonts and all(row[-5:-2] == ["yes", "yes", "yes"] for row in fonts), fonts  # emb sub uni
    assert any("CJK" in row[0] or "WenQuanYi" in row[0] for row in fonts)
    assert b"/CreationDate (D:20260620030000Z" in raw


@pytest.fixture
async def writable_copy(archived, tmp_path):
    ev, _case, _segs, result = archived
    work = tmp_path / "copy" / result.path.name
    shutil.copytree(result.path, work)
    for p in work.rglob("*"):
        p.chmod(p.stat().st_mode | stat.S_IWUSR)
    return work, hub_vkey(ev)


def test_changed_pdf_index_is_named_by_the_verifier(writable_copy, capsys):
    work, vkey = writable_copy
    pdf = work / "data/index.pdf"
    pdf.write_bytes(pdf.read_bytes().replace(b"/Creator (lerec)", b"/Creator (forge)"))
    report = verify_archive(work, trusted_hub_key=vkey)
    assert [(f.check, f.where) for f in report.errors] == [("bag", "data/index.pdf")]
    assert main(["-q", "archive", str(work), "--hub-key", vkey]) == 1
    assert "data/index.pdf" in capsys.readouterr().out


def test_removed_pdf_index_is_named_by_the_verifier(writable_copy):
    work, vkey = writable_copy
    (work / "data/index.pdf").unlink()
    report = verify_archive(work, trusted_hub_key=vkey)
    assert ("bag", "data/index.pdf") in [(f.check, f.where) for f in report.errors]


async def test_archiving_without_a_chinese_font_is_refused_before_anything_is_written(
        tmp_path, evidence, mp4_bytes, make_case):
    case, _segs = await make_case(evidence, mp4_bytes)
    root = tmp_path / "archives"
    with pytest.raises(ArchiveError, match="fonts-noto-cjk") as info:
        await build_archive(evidence.sessions, evidence.store, case, hub_key=evidence.hub_key,
                            archived_by="user:a", archive_root=root, now=NOW,
                            pdf_font=PdfFont(tmp_path / "gone.ttc"))
    assert "gone.ttc" in info.value.reason
    assert not root.exists()
    async with evidence.sessions() as s:
        assert not await is_locked(s, case.case_id)
    result = await build_archive(evidence.sessions, evidence.store, case,
                                 hub_key=evidence.hub_key, archived_by="user:a",
                                 archive_root=root, now=NOW)
    assert result.archive_no.endswith("-0001")  # the refusal used no number


def test_font_search_names_the_package_to_install(tmp_path):
    with pytest.raises(FontMissing, match="apt-get install fonts-noto-cjk"):
        pdfindex.find_font(candidates=[PdfFont(tmp_path / "a.ttc"), PdfFont(tmp_path / "b.ttf")])
    not_a_font = tmp_path / "x.ttf"
    not_a_font.write_bytes(b"\0" * 100)
    with pytest.raises(FontMissing, match="not a readable"):
        pdfindex.find_font(PdfFont(not_a_font))
    latin = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    if latin.is_file():
        with pytest.raises(FontMissing, match="no glyphs for Chinese text"):
            pdfindex.find_font(PdfFont(latin))
    assert pdfindex.find_font() in pdfindex.KNOWN_FONTS  # the machine has one (fonts-noto-cjk)


def _content(**changes) -> pdfindex.IndexContent:
    case = CaseFile("C-9", {"title": "测试案", "case_no": "新乡综执罚〔2026〕9号",
                            "org": "新乡镇"},
                    [{"id": "1", "kind": "inspection", "kind_name": "现场检查笔录",
                      "created_at": "2026-05-03T01:00:00+00:00",
                      "fields": {"地点": "新乡镇场镇", "内容": "占道经营"}}],
                    execution_ended_at=dt.date(2026, 6, 1))
    four = FourReport([Item("integrity", "metadata_27", "segment x", "warn", "缺少 missing")])
    content = pdfindex.IndexContent("新乡镇-2026-行政处罚-0009", case, [], {}, NOW,
                                    "user:a", 3, 10, "lerec+0123abcd+AAAA", four)
    return dataclasses.replace(content, **changes)


@pytest.mark.parametrize("font", pdfindex.KNOWN_FONTS, ids=lambda f: f.path.name)
def test_each_known_font_renders_the_same_bytes_twice_with_the_text_extractable(font, tmp_path):
    assert font.path.is_file(), (f"{font.path} is not installed: ./dev.sh test installs every "
                                 "font the index knows (fonts-noto-cjk, fonts-wqy-*)")
    content = _content()
    raw = pdfindex.render(font, content)
    assert raw == pdfindex.render(font, content)
    assert embedded_font_files(raw)
    (tmp_path / "i.pdf").write_bytes(raw)
    text = pdf_text(tmp_path / "i.pdf")
    for expected in ("新乡综执罚〔2026〕9号", "现场检查笔录", "地点：新乡镇场镇", "注意",
                     "缺少 missing"):
        assert expected in text, expected


def test_characters_the_font_lacks_are_a_warning_in_the_report():
    font = pdfindex.find_font()
    assert pdfindex.coverage_item(font, _content()).result == "pass"
    odd = _content(archived_by="user:\U0001F600")
    item = pdfindex.coverage_item(font, odd)
    assert (item.target, item.result) == ("data/index.pdf", "warn")
    assert "\U0001F600" in item.detail and "case.json" in item.detail
