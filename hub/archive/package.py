"""Building the archive package: a BagIt bag (RFC 8493) that verifies itself offline.

Layout (all under ``data/``)::

    case.json                      case metadata and records (第六条–第二十五条), as given
    index.html                     human-readable index in Chinese
    index.pdf                      the same index as PDF (A4, page numbers, embedded font
                                   subset; see :mod:`.pdfindex`), written after the 四性检测
    attachments/<name>             documents of the case
    segments/<segment>.<ext>       the stored media, byte for byte
    segments/<segment>.manifest.cbor / .receipt.cbor   device-signed manifest, hub receipt
    segments.json                  index of the segments (unsigned; the .cbor files are proof)
    transcripts/<segment>.txt      第二十七条 text of sound recordings
    audit/entries.jsonl            {"idx": n, "data": "<canonical entry JSON>"} per line
    audit/proofs.json              inclusion proofs of every entry for the checkpoint's size
    audit/checkpoint.txt           the hub-signed C2SP checkpoint the proofs lead to
    keys/hub.vkey, keys/hub-signing.pub, keys/devices/<device>.pub
    report/four-properties.json / .html    四性检测 at archive time

Media are hard-linked from the write-once store when it is on the same file system (no copy),
hashed once (SHA-256 and SHA-512 in one read, two threads), and those digests serve the
integrity check and both bag manifests. Media downloaded from a store without local files
arrive with their digests (hashed while downloading) and are not read again. Progress (phases,
media bytes) goes to a :class:`~.progress.Tracker`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
import os
import shutil
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from lerec.protocol import SegmentManifest, decode_signed

from ..verify import archivecheck
from ..verify.findings import Report
from . import fourcheck, pdfindex
from .model import CaseFile
from .progress import BAG, CHECK, COPY, INDEX, QUIET, Tracker

#: digests (per algorithm) and length of a file
Digests = tuple[dict[str, str], int]

ALGORITHMS = ("sha256", "sha512")
_EXT = {"video/mp4": ".mp4", "audio/mp4": ".m4a", "image/jpeg": ".jpg", "audio/wav": ".wav"}
_SOUND = {"mp4a", "opus", "aac", "pcm", "alaw", "ulaw"}


@dataclass(frozen=True)
class AuditMaterial:
    """The case's audit entries, their proofs and the checkpoint they prove against."""

    entries: list[tuple[int, bytes]]
    proofs: dict[int, list[bytes]]
    checkpoint: bytes
    tree_size: int
    hub_vkey: str


@dataclass(frozen=True)
class Built:
    path: Path
    package_sha256: str  # SHA-256 of tagmanifest-sha256.txt (covers every file in the bag)
    four: fourcheck.FourReport
    payload_bytes: int


def _pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=2, default=str).encode("utf-8")


def _place(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _hash_files(root: Path, rels: Iterable[str], threads: int = 2,
                progress: Tracker | None = None, media: Iterable[str] = ()
                ) -> dict[str, Digests]:
    """Hash ``rels`` (SHA-256 and SHA-512, one read each); the bytes of ``media`` files go to
    ``progress``."""
    rels = list(rels)
    counted = set(media) if progress is not None else set()

    def one(rel: str) -> Digests:
        if rel not in counted:
            return archivecheck._hash_one(root / rel, list(ALGORITHMS), QUIET)
        assert progress is not None
        result = archivecheck._hash_one(root / rel, list(ALGORITHMS), progress)
        progress.file_done()
        return result

    with ThreadPoolExecutor(threads) as pool:
        return dict(zip(rels, pool.map(one, rels)))


def stage(case: CaseFile, data: Path, blob_path: Callable[[str], Path], *, archive_no: str,
          archived_by: str, archived_at: dt.datetime, device_keys: dict[str, Ed25519PublicKey],
          hub_key: Ed25519PublicKey, audit: AuditMaterial,
          media_files: dict[str, str | None] | None = None) -> list[dict[str, Any]]:
    """Write the payload of the package into ``data`` (all but the 四性检测 report and the PDF
    index, which need it checked); return the rows of ``segments.json``. ``media_files``, if
    given, receives the package path (``data/...``) of every segment and attachment file and
    the blob reference it came from (None for an attachment given as bytes)."""
    placed: dict[str, str | None] = {} if media_files is None else media_files
    (data / "segments").mkdir(parents=True)
    segs: list[dict[str, Any]] = []
    transcripts = {t.segment_id: t for t in case.transcripts}
    for link in case.segments:
        m = decode_signed(link.manifest, SegmentManifest).message
        base = f"segments/{m.segment_id}"
        media = base + _EXT.get(m.media_type, ".bin")
        _place(blob_path(link.stored_ref), data / media)
        placed[f"data/{media}"] = link.stored_ref
        (data / f"{base}.manifest.cbor").write_bytes(link.manifest)
        (data / f"{base}.receipt.cbor").write_bytes(link.receipt)
        t = transcripts.get(m.segment_id)
        if t is not None:
            (data / "transcripts").mkdir(exist_ok=True)
            (data / f"transcripts/{m.segment_id}.txt").write_text(
                f"# 文字记录 transcript of {m.segment_id}\n# 记录人 by: {t.produced_by}  "
                f"时间 at: {t.produced_at or ''}  方法 method: {t.method}\n\n{t.text}\n", "utf-8")
        segs.append({
            "segment_id": m.segment_id, "device_id": m.device_id, "seq": m.seq,
            "officer_id": m.officer_id, "record_id": link.record_id,
            "media": media, "manifest": f"{base}.manifest.cbor",
            "receipt": f"{base}.receipt.cbor",
            "transcript": f"transcripts/{m.segment_id}.txt" if t else None,
            "media_type": m.media_type, "codecs": list(m.codecs), "length": m.length,
            "sha256": m.sha256.hex(),
            "start": dt.datetime.fromtimestamp(m.start_ms / 1000, dt.UTC).isoformat(),
            "end": dt.datetime.fromtimestamp(m.end_ms / 1000, dt.UTC).isoformat(),
            "capture_method": m.capture_method, "producer": m.producer,
            "object_of_proof": m.object_of_proof, "clock": m.clock.state,
            "has_sound": m.media_type.startswith("audio/")
            or any(c.split(".")[0] in _SOUND for c in m.codecs),
        })
    segs.sort(key=lambda s: (s["device_id"], s["seq"]))
    (data / "segments.json").write_bytes(_json(segs))
    if case.attachments:
        (data / "attachments").mkdir()
    for a in case.attachments:
        if "/" in a.name or a.name.startswith("."):
            raise ValueError(f"attachment name {a.name!r} must be a plain file name")
        if a.data is not None:
            (data / "attachments" / a.name).write_bytes(a.data)
            placed[f"data/attachments/{a.name}"] = None
        elif a.stored_ref is not None:
            _place(blob_path(a.stored_ref), data / "attachments" / a.name)
            placed[f"data/attachments/{a.name}"] = a.stored_ref
    (data / "case.json").write_bytes(_json({
        "archive_no": archive_no, "case_id": case.case_id, "metadata": case.metadata,
        "records": case.records, "execution_ended_at": case.execution_ended_at,
        "archived_at": archived_at.isoformat(), "archived_by": archived_by,
        "confidentiality": case.confidentiality,
        "attachments": [{"name": a.name, "media_type": a.media_type,
                         "description": a.description} for a in case.attachments],
    }))
    (data / "audit").mkdir()
    with open(data / "audit/entries.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"idx": idx, "data": raw.decode("utf-8")}, ensure_ascii=False)
                    + "\n" for idx, raw in audit.entries)
    (data / "audit/proofs.json").write_bytes(_json({
        "tree_size": audit.tree_size,
        "proofs": {str(i): [h.hex() for h in p] for i, p in sorted(audit.proofs.items())},
    }))
    (data / "audit/checkpoint.txt").write_bytes(audit.checkpoint)
    (data / "keys/devices").mkdir(parents=True)
    (data / "keys/hub.vkey").write_text(audit.hub_vkey + "\n")
    (data / "keys/hub-signing.pub").write_bytes(_pem(hub_key))
    for device, key in sorted(device_keys.items()):
        (data / f"keys/devices/{device}.pub").write_bytes(_pem(key))
    (data / "index.html").write_text(index_html(case, segs, archive_no, archived_at, audit),
                                     "utf-8")
    return segs


def index_html(case: CaseFile, segs: list[dict[str, Any]], archive_no: str,
               archived_at: dt.datetime, audit: AuditMaterial) -> str:
    e = html.escape
    meta = "".join(f"<tr><th>{e(str(k))}</th><td>{e(str(v))}</td></tr>"
                   for k, v in case.metadata.items())
    recs = "".join(
        f"<tr><td>{e(str(r.get('id', '')))}</td><td>{e(str(r.get('kind', '')))}</td>"
        f"<td>{e(str(r.get('at', r.get('time', ''))))}</td>"
        f"<td>{e(str(r.get('summary', r.get('title', ''))))}</td></tr>" for r in case.records)
    segrows = "".join(
        f"<tr><td>{e(s['device_id'])}</td><td>{s['seq']}</td><td>{e(s['start'])}</td>"
        f"<td><a href='{e(s['media'])}'>{e(s['segment_id'])}</a></td>"
        f"<td>{e(s['object_of_proof'])}</td><td>"
        + (f"<a href='{e(s['transcript'])}'>文字记录</a>" if s["transcript"] else "—")
        + f"</td><td><code>{s['sha256'][:16]}…</code></td></tr>" for s in segs)
    atts = "".join(f"<li><a href='attachments/{e(a.name)}'>{e(a.name)}</a> "
                   f"{e(a.description)}</li>" for a in case.attachments)
    return f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>案卷 {e(archive_no)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #999;padding:4px 8px;text-align:left}}</style></head><body>
<h1>行政执法案卷 {e(archive_no)}</h1>
<p>可打印的 PDF 版目录：<a href="index.pdf">index.pdf</a></p>
<p>案件编号 {e(case.case_id)} · 执行终结 {e(str(case.execution_ended_at))} ·
归档时间 {e(archived_at.isoformat())} · 密级 {e(', '.join(case.confidentiality) or '无')}</p>
<h2>案件信息</h2><table>{meta}</table>
<h2>文字记录（{len(case.records)} 份）</h2>
<table><tr><th>编号</th><th>种类</th><th>时间</th><th>摘要</th></tr>{recs}</table>
<p>全文见 <a href="case.json">case.json</a>。</p>
<h2>音像记录（{len(segs)} 段）</h2>
<table><tr><th>记录仪</th><th>序号</th><th>开始时间 (UTC)</th><th>文件</th><th>证明对象</th>
<th>文字记录</th><th>SHA-256</th></tr>{segrows}</table>
<h2>附件</h2><ul>{atts or '<li>无</li>'}</ul>
<h2>审计记录</h2><p>{len(audit.entries)} 条审计日志条目，附包含证明，均可对照签名检查点
（日志大小 {audit.tree_size}）验证：<a href="audit/checkpoint.txt">checkpoint.txt</a>。</p>
<h2>四性检测</h2><p><a href="report/four-properties.html">四性检测报告</a></p>
<h2>如何验证</h2><p>无需数据库和网络：<code>lerec-verify archive 本档案包 --hub-key
"{e(audit.hub_vkey)}"</code>。该命令校验 BagIt 清单（SHA-256、SHA-512）、记录仪签名、
哈希链、媒体哈希、接收回执、审计条目包含证明和检查点签名。</p>
</body></html>
"""


def _write_bag(root: Path, digests: dict[str, tuple[dict[str, str], int]],
               bag_info: dict[str, str]) -> None:
    (root / "bagit.txt").write_text("BagIt-Version: 0.97\nTag-File-Character-Encoding: UTF-8\n",
                                    "utf-8")
    for alg in ALGORITHMS:
        with open(root / f"manifest-{alg}.txt", "w", encoding="utf-8") as f:
            f.writelines(f"{digests[rel][0][alg]}  {rel}\n" for rel in sorted(digests))
    total = sum(n for _d, n in digests.values())
    info = dict(bag_info)
    info["Bagging-Date"] = dt.date.today().isoformat()
    info["Payload-Oxum"] = f"{total}.{len(digests)}"
    with open(root / "bag-info.txt", "w", encoding="utf-8") as f:
        f.writelines(f"{k}: {v}\n" for k, v in info.items())
    tags = ["bagit.txt", "bag-info.txt"] + [f"manifest-{a}.txt" for a in ALGORITHMS]
    for alg in ALGORITHMS:  # (bagit's own helper needs the process's cwd in the bag)
        with open(root / f"tagmanifest-{alg}.txt", "w", encoding="utf-8") as f:
            f.writelines(f"{hashlib.new(alg, (root / name).read_bytes()).hexdigest()}  {name}\n" for name in tags)


def build_package(case: CaseFile, dest: Path, blob_path: Callable[[str], Path], *,
                  archive_no: str,
                  archived_by: str, archived_at: dt.datetime,
                  device_keys: dict[str, Ed25519PublicKey], hub_key: Ed25519PublicKey,
                  audit: AuditMaterial, threads: int = 2,
                  pdf_font: pdfindex.PdfFont | None = None, progress: Tracker | None = None,
                  known: dict[str, Digests] | None = None) -> Built:
    """Stage, check (四性) and bag the package at ``dest`` (which must not exist).

    Raises :class:`~.pdfindex.FontMissing` before writing anything if there is no Chinese
    font for the PDF index (``pdf_font``, else one of :data:`~.pdfindex.KNOWN_FONTS`).
    ``known`` holds the digests of blobs already hashed (by reference: downloaded ones);
    ``progress`` gets the phases from 复制音像记录 to 校验封包 and the media bytes. If anything
    fails (or the progress callback raises), the partial package is removed."""
    dest = Path(dest)
    font = pdfindex.find_font(pdf_font)
    work = dest.with_name(dest.name + ".partial")
    if work.exists():
        shutil.rmtree(work)
    try:
        return _build(case, dest, work, blob_path, font, archive_no=archive_no,
                      archived_by=archived_by, archived_at=archived_at,
                      device_keys=device_keys, hub_key=hub_key, audit=audit, threads=threads,
                      progress=progress, known=known or {})
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _build(case: CaseFile, dest: Path, work: Path, blob_path: Callable[[str], Path],
           font: pdfindex.PdfFont, *, archive_no: str, archived_by: str,
           archived_at: dt.datetime, device_keys: dict[str, Ed25519PublicKey],
           hub_key: Ed25519PublicKey, audit: AuditMaterial, threads: int,
           progress: Tracker | None, known: dict[str, Digests]) -> Built:
    if progress is not None and progress.state.phase != COPY:
        progress.phase(COPY)
    data = work / "data"
    media: dict[str, str | None] = {}
    segs = stage(case, data, blob_path, archive_no=archive_no, archived_by=archived_by,
                 archived_at=archived_at, device_keys=device_keys, hub_key=hub_key, audit=audit,
                 media_files=media)
    rels = sorted(str(p.relative_to(work)) for p in data.rglob("*") if p.is_file())
    hashed = {rel: known[ref] for rel, ref in media.items() if ref is not None and ref in known}
    digests = _hash_files(work, [r for r in rels if r not in hashed], threads, progress,
                          [r for r in media if r not in hashed])
    digests.update(hashed)
    if progress is not None:
        progress.phase(CHECK)

    checks = Report("四性检测")
    vkey, hub, devices = archivecheck.load_keys(data, checks, audit.hub_vkey)
    actual = {rel: d["sha256"] for rel, (d, _n) in digests.items()}
    good = archivecheck.check_segments(data, checks, hub, devices, actual)
    archivecheck.check_audit(data, checks, vkey, good)
    four = fourcheck.FourReport(facts={
        "档号 archive no.": archive_no, "案件 case": case.case_id,
        "检测时间 checked at": archived_at.isoformat(), "检测人 by": archived_by,
        "检查点 checkpoint size": audit.tree_size,
    })
    fourcheck.from_verifier(checks, four)
    four.items.append(fourcheck.Item("integrity", "bag_manifests", "all payload files", "pass",
                                     f"{len(rels)} 个文件 files, SHA-256 + SHA-512"))
    fourcheck.metadata(data, four)
    fourcheck.usability(data, four)
    fourcheck.security(work, four, case.confidentiality)
    index = pdfindex.IndexContent(
        archive_no=archive_no, case=case, segments=segs,
        file_sha256={rel: d["sha256"] for rel, (d, _n) in digests.items()},
        archived_at=archived_at, archived_by=archived_by, audit_entries=len(audit.entries),
        tree_size=audit.tree_size, hub_vkey=audit.hub_vkey, four=four)
    if progress is not None:
        progress.phase(INDEX)
    four.items.append(pdfindex.coverage_item(font, index))
    pdf = pdfindex.render(font, index)  # shows the report's summary
    if progress is not None:
        progress.phase(BAG)
    (data / "report").mkdir()
    (data / "report/four-properties.json").write_bytes(_json(four.to_json()))
    (data / "report/four-properties.html").write_text(
        fourcheck.render_html(four, archive_no), "utf-8")
    (data / "index.pdf").write_bytes(pdf)
    digests.update(_hash_files(work, ["data/report/four-properties.json",
                                      "data/report/four-properties.html", "data/index.pdf"], 1))
    _write_bag(work, digests, {
        "Source-Organization": str(case.metadata.get("org", "")),
        "External-Identifier": archive_no,
        "External-Description": f"行政执法案卷 case {case.case_id}",
        "Internal-Sender-Identifier": case.case_id,
        "Contact-Name": archived_by,
        "Confidentiality": " ".join(case.confidentiality) or "none",
        "Four-Properties-Check": "pass" if four.ok else "fail",
    })
    tag = (work / "tagmanifest-sha256.txt").read_bytes()
    os.replace(work, dest)
    for p in dest.rglob("*"):
        if p.is_file():
            os.chmod(p, 0o444)
    return Built(dest, hashlib.sha256(tag).hexdigest(), four,
                 sum(n for _d, n in digests.values()))


def make_tar(bag: Path, out: Path) -> str:
    """Write ``bag`` as an uncompressed tar (for handing over); return the tar's SHA-256."""
    import tarfile

    with tarfile.open(out, "w") as t:
        t.add(bag, arcname=bag.name)
    digests, _n = archivecheck._hash_one(out, ["sha256"], archivecheck._NoBar())
    return digests["sha256"]
