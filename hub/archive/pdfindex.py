"""The PDF index of an archive package (``data/index.pdf``): the HTML index for print.

The same content as ``index.html`` — archive and case number, the case's metadata, its
written records, every clip with its full SHA-256, attachments with theirs, the audit
material, the 四性检测 summary and how to verify the package — on A4 pages whose header carries
the archive number and whose footer numbers the pages. It lives in the bag's payload, so
both bag manifests cover it and ``lerec-verify archive`` catches any change to it.

Rendered with fpdf2 and a Chinese font embedded as a subset (only the glyphs used), so the
file reads the same on any machine years later. The font is found on the machine
(:data:`KNOWN_FONTS`; Debian's ``fonts-noto-cjk`` first) or given as :class:`PdfFont`; without
one, archiving stops with :class:`FontMissing` rather than print empty boxes. Characters of
the case that the font lacks are listed in the 四性检测 report (``human_index``, warn); the
JSON files stay the authoritative text. The file's dates are the archive time, so the same
input gives the same bytes.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import HubError
from .fourcheck import PROPERTIES, FourReport, Item
from .model import CaseFile

_NOTO = Path("/usr/share/fonts/opentype/noto")
_WQY = Path("/usr/share/fonts/truetype/wqy")
_FAMILY = "cjk"
#: what every index prints whatever the case: a font must have these to be used at all
_PROBE = "行政执法案卷档号编号文字记录音像四性检测如何验证第页共"
_LABELS = {"title": "案件名称", "case_no": "案件编号", "party": "当事人", "case_type": "案件类型",
           "enforcement_type": "执法类别", "start_mode": "启动方式", "stage": "办理环节",
           "org": "执法机关", "created_at": "创建时间", "not_started": "决定不启动执法程序",
           "rulebook": "制度文号"}
_RESULTS = {"pass": "通过", "fail": "不通过", "warn": "注意", "info": "说明",
            "not_performed": "未检测"}


class FontMissing(HubError, FileNotFoundError):
    """No usable Chinese font for the PDF index; the message says what to install."""


@dataclass(frozen=True)
class PdfFont:
    """A font to embed: a .ttf/.otf file or one face of a .ttc/.otc collection, and
    optionally a bold one for headings (else the regular face is used for them too)."""

    path: Path
    face: int = 0
    bold_path: Path | None = None
    bold_face: int = 0


#: looked for in this order; each comment names the Debian package that ships it
KNOWN_FONTS: tuple[PdfFont, ...] = (
    PdfFont(_NOTO / "NotoSansCJK-Regular.ttc", 2,  # fonts-noto-cjk; face 2 = Noto Sans CJK SC
            _NOTO / "NotoSansCJK-Bold.ttc", 2),
    PdfFont(_WQY / "wqy-microhei.ttc"),  # fonts-wqy-microhei
    PdfFont(_WQY / "wqy-zenhei.ttc"),  # fonts-wqy-zenhei
)

_INSTALL = ("install the Debian package fonts-noto-cjk (apt-get install fonts-noto-cjk) or give "
            "a .ttf/.otf/.ttc font with Chinese glyphs as PdfFont; "
            "未找到可嵌入 PDF 目录的中文字体，请安装 fonts-noto-cjk")


@functools.lru_cache(maxsize=8)
def _font_info(path: Path, face: int) -> tuple[str, frozenset[int]]:
    """(full name, code points with a glyph) of one face; raises OSError or font errors."""
    from fontTools.ttLib import TTFont  # type: ignore[import-untyped]

    with TTFont(path, fontNumber=face, lazy=True) as f:
        name = f["name"].getDebugName(4) or path.stem
        return name, frozenset(f.getBestCmap() or {})


def _usable(font: PdfFont) -> str | None:
    """Why ``font`` cannot be used, or None."""
    for path, face in ((font.path, font.face), (font.bold_path, font.bold_face)):
        if path is None:
            continue
        if not Path(path).is_file():
            return f"{path}: no such font file"
        try:
            _name, cmap = _font_info(Path(path), face)
        except Exception as exc:  # noqa: BLE001  any parse failure: not a usable font
            return f"{path} (face {face}): not a readable TrueType/OpenType font: {exc}"
        if missing := [c for c in _PROBE if ord(c) not in cmap]:
            return f"{path} (face {face}): no glyphs for Chinese text ({''.join(missing)})"
    return None


def find_font(font: PdfFont | None = None,
              candidates: Iterable[PdfFont] = KNOWN_FONTS) -> PdfFont:
    """``font`` if it is usable, else the first usable of ``candidates``; raise
    :class:`FontMissing` (saying what to install) if there is none."""
    if font is not None:
        if why := _usable(font):
            raise FontMissing(f"the PDF index font is not usable: {why}; {_INSTALL}")
        return font
    tried = []
    for c in candidates:
        if (why := _usable(c)) is None:
            return c
        tried.append(why)
    raise FontMissing("no font with Chinese glyphs for the PDF index (data/index.pdf) "
                      f"[{'; '.join(tried) or 'no candidates'}]: {_INSTALL}")


def font_name(font: PdfFont) -> str:
    return _font_info(Path(font.path), font.face)[0]


@dataclass(frozen=True)
class IndexContent:
    """What the index shows; ``segments`` are the rows of ``segments.json`` and
    ``file_sha256`` maps payload paths (``data/...``) to their SHA-256."""

    archive_no: str
    case: CaseFile
    segments: list[dict[str, Any]]
    file_sha256: dict[str, str]
    archived_at: dt.datetime
    archived_by: str
    audit_entries: int
    tree_size: int
    hub_vkey: str
    four: FourReport


def _s(v: Any) -> str:
    if isinstance(v, bool):
        return "是" if v else "否"
    return "" if v is None else str(v)


def _case_no(case: CaseFile) -> str:
    return _s(case.metadata.get("case_no")) or case.case_id


def _record_row(r: dict[str, Any]) -> tuple[str, str, str, str]:
    kind = _s(r.get("kind_name") or r.get("kind"))
    when = _s(r.get("at") or r.get("time") or r.get("created_at"))
    summary = _s(r.get("summary") or r.get("title"))
    if not summary and isinstance(r.get("fields"), dict):
        summary = "；".join(f"{k}：{v}" for k, v in r["fields"].items() if v not in (None, ""))
    if len(summary) > 300:
        summary = summary[:300] + "…（全文见 case.json）"
    return _s(r.get("id")), kind, when, summary


def case_texts(c: IndexContent) -> Iterator[str]:
    """Every text of the index that comes from the case (the rest is fixed wording)."""
    case = c.case
    yield from (c.archive_no, case.case_id, c.archived_by, *case.confidentiality)
    for k, v in case.metadata.items():
        yield from (_LABELS.get(str(k), ""), str(k), _s(v))
    for r in case.records:
        yield from _record_row(r)
    for s in c.segments:
        yield from (_s(s.get(k)) for k in ("media", "device_id", "object_of_proof", "start"))
    for a in case.attachments:
        yield from (a.name, a.media_type, a.description)


def coverage_item(font: PdfFont, c: IndexContent) -> Item:
    """四性检测 (usability) of the PDF index: pass, or warn listing the characters the font
    has no glyph for."""
    name, cmap = _font_info(Path(font.path), font.face)
    missing = sorted({ch for t in case_texts(c) for ch in t
                      if ch.isprintable() and not ch.isspace() and ord(ch) not in cmap})
    if missing:
        return Item("usability", "human_index", "data/index.pdf", "warn",
                    f"PDF 目录的字体 {name} 缺少字形，以下字符显示为空框（原文见 case.json）"
                    f" glyphs missing: {' '.join(missing)}")
    return Item("usability", "human_index", "data/index.pdf", "pass",
                f"PDF 人工可读目录，嵌入字体子集 embedded font subset: {name}")


def render(font: PdfFont, c: IndexContent) -> bytes:
    """The PDF index; the same content and font give the same bytes."""
    from fpdf import FPDF, FontFace
    from fpdf.enums import WrapMode

    case = c.case
    head = f"行政执法案卷 · 档号 {c.archive_no}"
    right = f"案件编号 {_case_no(case)}"

    class Doc(FPDF):
        def header(self) -> None:
            self.set_font(_FAMILY, "", 8)
            self.set_text_color(90)
            self.cell(self.epw / 2, 5, head)
            self.cell(self.epw / 2, 5, right, align="R")
            self.ln(6)
            self.set_draw_color(150)
            self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())
            self.ln(3)
            self.set_text_color(0)

        def footer(self) -> None:
            self.set_y(-13)
            self.set_font(_FAMILY, "", 8)
            self.set_text_color(90)
            self.cell(0, 6, f"第 {self.page_no()} 页，共 " + "{nb}" + " 页", align="C")

    pdf = Doc(format="A4")
    pdf.set_margins(15, 15, 15)
    pdf.set_auto_page_break(True, 18)
    pdf.add_font(_FAMILY, "", str(font.path), collection_font_number=font.face)
    bold = (font.bold_path, font.bold_face) if font.bold_path else (font.path, font.face)
    pdf.add_font(_FAMILY, "B", str(bold[0]), collection_font_number=bold[1])
    pdf.set_creation_date(c.archived_at)
    pdf.set_lang("zh-CN")
    pdf.set_title(f"行政执法案卷 {c.archive_no}")
    pdf.set_subject(f"案件 {_case_no(case)} 的档案包目录")
    pdf.set_author(_s(case.metadata.get("org")) or c.archived_by)
    pdf.set_creator("lerec")
    pdf.add_page()

    def h1(text: str) -> None:
        pdf.set_font(_FAMILY, "B", 17)
        pdf.multi_cell(0, 9, text, align="L")
        pdf.ln(2)

    def h2(text: str) -> None:
        if pdf.get_y() > pdf.h - 50:
            pdf.add_page()
        pdf.ln(3)
        pdf.set_font(_FAMILY, "B", 12.5)
        pdf.multi_cell(0, 7, text, align="L")
        pdf.ln(1)

    def para(text: str, size: float = 9.5) -> None:
        pdf.set_font(_FAMILY, "", size)
        pdf.multi_cell(0, size * 0.55, text, align="L", wrapmode=WrapMode.CHAR)  # Chinese prose
        pdf.ln(1)

    def table(headings: tuple[str, ...], rows: Iterable[tuple[str, ...]],
              widths: tuple[int, ...], size: float = 8.5) -> None:
        pdf.set_font(_FAMILY, "", size)
        with pdf.table(col_widths=widths, text_align="LEFT", line_height=size * 0.5,
                       headings_style=FontFace(emphasis="BOLD", fill_color=235),
                       padding=1.2, v_align="TOP") as t:
            t.row(headings)
            for r in rows:
                t.row(r)
        pdf.ln(2)

    def wrap_hash(h: str) -> str:
        return f"{h[:32]}\n{h[32:]}" if len(h) > 32 else h

    h1(f"行政执法案卷目录\n档号 {c.archive_no}")
    table(("项目", "内容"), [
        ("档号", c.archive_no),
        ("案件编号", _case_no(case)),
        ("系统案件标识", case.case_id),
        ("案件名称", _s(case.metadata.get("title"))),
        ("执行终结", _s(case.execution_ended_at)),
        ("归档时间", c.archived_at.isoformat()),
        ("归档人", c.archived_by),
        ("密级", "、".join(case.confidentiality) or "无"),
    ], (1, 4), 9.5)

    h2("案件信息")
    table(("项目", "内容"), [
        (f"{_LABELS[str(k)]} {k}" if str(k) in _LABELS else str(k), _s(v))
        for k, v in case.metadata.items()] or [("—", "无")], (1, 3))

    h2(f"文字记录（{len(case.records)} 份）")
    table(("编号", "种类", "时间", "摘要"),
          [_record_row(r) for r in case.records] or [("—", "", "", "无")], (2, 3, 3, 6))
    para("全文见档案包中的 data/case.json。")

    h2(f"音像记录（{len(c.segments)} 段）")
    table(("文件", "记录仪 · 序号", "开始时间 (UTC)", "证明对象", "文字记录", "SHA-256"),
          [(f"data/{s['media']}", f"{s['device_id']} · {s['seq']}", _s(s.get("start")),
            _s(s.get("object_of_proof")), f"data/{s['transcript']}" if s.get("transcript")
            else "—", wrap_hash(_s(s.get("sha256")))) for s in c.segments]
          or [("—", "", "", "", "", "无")], (5, 3, 4, 3, 4, 8), 7)
    para("每段的 SHA-256 与记录仪签名的清单（.manifest.cbor）一致，并由汇聚端回执"
         "（.receipt.cbor）确认。", 8.5)

    h2(f"附件（{len(case.attachments)} 件）")
    table(("文件", "类型", "说明", "SHA-256"),
          [(f"data/attachments/{a.name}", a.media_type, a.description,
            wrap_hash(c.file_sha256.get(f"data/attachments/{a.name}", "")))
           for a in case.attachments] or [("—", "", "无", "")], (5, 3, 4, 6), 7)

    h2("审计记录")
    para(f"{c.audit_entries} 条审计日志条目（data/audit/entries.jsonl），每条附包含证明"
         f"（data/audit/proofs.json），均可对照汇聚端签名的检查点（data/audit/checkpoint.txt，"
         f"日志大小 {c.tree_size}）验证。")

    four = c.four
    h2("四性检测（DA/T 70-2018）")
    para(("检测通过" if four.ok else "检测未通过") + f"，检测时间 {c.archived_at.isoformat()}。"
         "完整报告见 data/report/four-properties.html 与 four-properties.json。")
    summary = four.summary()
    table(("属性", *(_RESULTS[k] for k in _RESULTS)),
          [(f"{PROPERTIES[p]} {p}", *(str(summary[p].get(k, 0)) for k in _RESULTS))
           for p in PROPERTIES], (3, 1, 1, 1, 1, 1), 8.5)
    notable = [i for i in four.items if i.result not in ("pass", "not_performed")]
    if notable:
        table(("属性", "检测项", "对象", "结果", "说明"),
              [(PROPERTIES[i.property], i.check, i.target, _RESULTS[i.result], i.detail)
               for i in notable], (2, 3, 4, 2, 7), 7.5)

    h2("如何验证")
    para("无需数据库和网络，在任何装有 lerec 的计算机上运行：")
    pdf.set_font(_FAMILY, "", 8.5)
    pdf.set_fill_color(242)
    pdf.multi_cell(0, 5, f'lerec-verify archive <本档案包路径> --hub-key "{c.hub_vkey}"',
                   fill=True, padding=2, align="L", wrapmode=WrapMode.CHAR)
    pdf.ln(2)
    para("该命令校验 BagIt 清单（manifest-sha256.txt、manifest-sha512.txt，覆盖本 PDF 在内的"
         "每个文件）、记录仪签名、哈希链、媒体哈希、汇聚端接收回执、审计条目包含证明和检查点签名。"
         "--hub-key 应取自可信来源（而非本档案包）。纸质打印件仅供阅读，以电子档案包为准。")
    return bytes(pdf.output())
