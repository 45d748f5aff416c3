"""四性检测 (DA/T 70-2018): authenticity, integrity, usability and security of a package,
run at archive time on the staged package and stored inside it (JSON + HTML).

The cryptographic checks are the offline verifier's own (:mod:`lerec.hub.verify.archivecheck`)
so that what was checked at archiving is exactly what a court's expert re-checks later;
usability adds decoding every media file with PyAV and the human-readable indexes (the PDF
index's font coverage comes from :func:`.pdfindex.coverage_item`), security adds file-type and
path checks.
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..verify.findings import ERROR, INFO, WARNING, Report

PROPERTIES = {
    "authenticity": "真实性",
    "integrity": "完整性",
    "usability": "可用性",
    "security": "安全性",
}
#: which verifier checks belong to which property
_CATEGORY = {
    "manifest": "authenticity", "receipt": "authenticity", "checkpoint": "authenticity",
    "proof": "authenticity", "key": "authenticity", "entry": "authenticity",
    "media": "integrity", "chain": "integrity", "bag": "integrity", "segment": "integrity",
    "package": "integrity",
}
_ALLOWED_SUFFIXES = {".json", ".jsonl", ".html", ".txt", ".cbor", ".pub", ".vkey", ".mp4",
                     ".m4a", ".wav", ".jpg", ".jpeg", ".png", ".pdf"}
_MEDIA = {".mp4", ".m4a", ".wav", ".jpg", ".jpeg", ".png"}


@dataclass
class Item:
    property: str
    check: str
    target: str
    result: str  # pass | fail | warn | info | not_performed
    detail: str = ""


@dataclass
class FourReport:
    items: list[Item] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(i.result == "fail" for i in self.items)

    def summary(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {p: {} for p in PROPERTIES}
        for i in self.items:
            out[i.property][i.result] = out[i.property].get(i.result, 0) + 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {"standard": "DA/T 70-2018", "ok": self.ok, "facts": self.facts,
                "summary": self.summary(), "items": [asdict(i) for i in self.items]}


def from_verifier(report: Report, four: FourReport) -> None:
    for check, n in report.passed.items():
        four.items.append(Item(_CATEGORY.get(check, "integrity"), check, f"{n} 项 items", "pass"))
    for f in report.findings:
        result = {ERROR: "fail", WARNING: "warn", INFO: "info"}[f.severity]
        four.items.append(Item(_CATEGORY.get(f.check, "integrity"), f.check, f.where, result,
                               f.what))


def usability(data: Path, four: FourReport) -> None:
    import av

    for media in sorted((data / "segments").glob("*")):
        if media.suffix not in _MEDIA:
            continue
        rel = f"data/segments/{media.name}"
        try:
            with av.open(str(media)) as c:
                decoded = 0
                streams = [s for s in c.streams if s.type in ("video", "audio")]
                if not streams:
                    raise ValueError("no audio or video stream")
                for frame in c.decode(*streams):
                    decoded += 1
                    if decoded >= 5:
                        break
                if decoded == 0:
                    raise ValueError("no frame decodes")
                kinds = "+".join(sorted({s.type for s in streams}))
            four.items.append(Item("usability", "media_decodes", rel, "pass",
                                   f"{kinds}; frames decode (PyAV)"))
        except Exception as exc:  # noqa: BLE001  any demux/decode failure = not usable
            four.items.append(Item("usability", "media_decodes", rel, "fail",
                                   f"cannot be opened or decoded: {exc}"))
    for name in ("case.json", "segments.json", "audit/proofs.json"):
        try:
            json.loads((data / name).read_text("utf-8"))
            four.items.append(Item("usability", "readable", f"data/{name}", "pass", "UTF-8 JSON"))
        except (OSError, ValueError) as exc:
            four.items.append(Item("usability", "readable", f"data/{name}", "fail", str(exc)))
    index = data / "index.html"
    four.items.append(Item("usability", "human_index", "data/index.html",
                           "pass" if index.is_file() else "fail", "人工可读目录 human-readable"))


def metadata(data: Path, four: FourReport) -> None:
    """第二十七条: method, time, producer, object of proof; sound has a transcript."""
    segs = json.loads((data / "segments.json").read_text("utf-8"))
    for s in segs:
        missing = [k for k in ("capture_method", "producer", "object_of_proof", "start", "end")
                   if not s.get(k)]
        four.items.append(Item(
            "integrity", "metadata_27", f"segment {s['segment_id']}",
            "warn" if missing else "pass",
            f"缺少 missing: {', '.join(missing)}" if missing else "制作方法、时间、制作人、证明对象"))
        if s.get("has_sound") and not s.get("transcript"):
            four.items.append(Item("integrity", "transcript_27", f"segment {s['segment_id']}",
                                   "warn", "声音资料缺少文字记录 sound without transcript"))


def security(root: Path, four: FourReport, confidentiality: list[str]) -> None:
    bad = []
    for p in root.rglob("*"):
        if p.is_symlink():
            bad.append((p, "symbolic link"))
        elif p.is_file() and p.parent != root and p.suffix.lower() not in _ALLOWED_SUFFIXES:
            bad.append((p, f"unexpected file type {p.suffix or '(none)'}"))
    for p, why in bad:
        four.items.append(Item("security", "file_types", str(p.relative_to(root)), "fail", why))
    if not bad:
        four.items.append(Item("security", "file_types", "all files", "pass",
                               "只含开放格式、无可执行文件和链接 open formats only, no executables "
                               "or links"))
    four.items.append(Item("security", "confidentiality", "case", "info",
                           "密级 classes: " + (", ".join(confidentiality) or "无 none")))
    four.items.append(Item("security", "virus_scan", "all files", "not_performed",
                           "本系统未集成病毒检测 no virus scanner integrated"))
    four.items.append(Item("security", "write_once", "package", "pass",
                           "归档后只读存放、档案表不可修改 stored read-only; archive rows are "
                           "permanent"))


def render_html(four: FourReport, title: str) -> str:
    rows = []
    colors = {"pass": "#1b7f3b", "fail": "#b00020", "warn": "#b36b00", "info": "#555",
              "not_performed": "#555"}
    labels = {"pass": "通过", "fail": "不通过", "warn": "注意", "info": "说明",
              "not_performed": "未检测"}
    for i in four.items:
        rows.append(
            f"<tr><td>{PROPERTIES[i.property]} {i.property}</td><td>{html.escape(i.check)}</td>"
            f"<td>{html.escape(i.target)}</td><td style='color:{colors[i.result]}'>"
            f"{labels[i.result]} {i.result}</td><td>{html.escape(i.detail)}</td></tr>")
    summary = "".join(
        f"<li>{PROPERTIES[p]} {p}: " + ", ".join(f"{labels[k]} {v}" for k, v in c.items())
        + "</li>" for p, c in four.summary().items())
    facts = "".join(f"<li>{html.escape(str(k))}: {html.escape(str(v))}</li>"
                    for k, v in four.facts.items())
    verdict = "检测通过 PASSED" if four.ok else "检测未通过 FAILED"
    return (
        "<!DOCTYPE html><html lang='zh-CN'><head><meta charset='utf-8'>"
        f"<title>四性检测报告 {html.escape(title)}</title></head><body>"
        f"<h1>电子档案四性检测报告</h1><p>DA/T 70-2018 · {html.escape(title)}</p>"
        f"<h2>{verdict}</h2><ul>{facts}</ul><ul>{summary}</ul>"
        "<table border='1' cellpadding='4' cellspacing='0'><tr><th>属性</th><th>检测项</th>"
        "<th>对象</th><th>结果</th><th>说明</th></tr>" + "".join(rows) + "</table></body></html>"
    )
