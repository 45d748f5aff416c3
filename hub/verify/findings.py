"""What a verification found, in a shape people and tests can both read.

A :class:`Finding` names exactly one thing (``where``: an entry index and field, a node, a
checkpoint size, a blob ref, a segment id, a file in a package) and what is wrong with it.
A :class:`Report` collects findings and the checks that passed; it fails when any finding is
an error. Labels are bilingual (Chinese / English) because the readers are officials, judges
and engineers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

ERROR = "error"
WARNING = "warning"
INFO = "info"

#: Chinese / English labels of every check name used by the verifiers.
LABELS: dict[str, tuple[str, str]] = {
    "entry": ("审计条目", "audit entry"),
    "node": ("默克尔节点", "Merkle node"),
    "head": ("日志树头", "log head"),
    "checkpoint": ("签名检查点", "signed checkpoint"),
    "consistency": ("检查点一致性", "checkpoint consistency"),
    "blob": ("存储对象", "stored blob"),
    "segment": ("音像片段", "recorded segment"),
    "manifest": ("片段签名清单", "signed segment manifest"),
    "receipt": ("接收回执", "hub receipt"),
    "chain": ("哈希链", "hash chain"),
    "bag": ("BagIt 包", "BagIt bag"),
    "media": ("音像文件", "media file"),
    "key": ("公钥", "public key"),
    "proof": ("包含证明", "inclusion proof"),
    "package": ("档案包", "archive package"),
    "report": ("四性检测报告", "four-properties report"),
}


@dataclass(frozen=True)
class Finding:
    check: str  # a key of LABELS
    where: str  # exactly what: "entry 17 field data", "node (2,5)", "checkpoint 40", ...
    what: str  # what is wrong, in plain words
    severity: str = ERROR

    def label(self) -> str:
        zh, en = LABELS.get(self.check, (self.check, self.check))
        return f"{zh} / {en}"

    def line(self) -> str:
        mark = {"error": "✗ 失败 FAIL", "warning": "! 注意 WARN", "info": "· 说明 INFO"}
        return f"{mark[self.severity]}  [{self.label()}] {self.where}: {self.what}"


@dataclass
class Report:
    title: str
    findings: list[Finding] = field(default_factory=list)
    passed: dict[str, int] = field(default_factory=dict)  # check -> items that passed
    facts: dict[str, Any] = field(default_factory=dict)

    def add(self, check: str, where: str, what: str, severity: str = ERROR) -> None:
        self.findings.append(Finding(check, where, what, severity))

    def ok(self, check: str, n: int = 1) -> None:
        self.passed[check] = self.passed.get(check, 0) + n

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def failed(self) -> bool:
        return bool(self.errors)

    def find(self, check: str | None = None, where: str | None = None) -> list[Finding]:
        """Findings matching ``check`` and whose ``where`` contains ``where`` (for tests)."""
        return [
            f for f in self.findings
            if (check is None or f.check == check) and (where is None or where in f.where)
        ]

    def extend(self, findings: Iterable[Finding]) -> None:
        self.findings.extend(findings)

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title, "ok": not self.failed, "facts": self.facts,
            "passed": self.passed, "findings": [asdict(f) for f in self.findings],
        }

    def render(self, out: TextIO) -> None:
        out.write(f"\n== {self.title} ==\n")
        out.writelines(f"  {k}: {v}\n" for k, v in self.facts.items())
        for check, n in sorted(self.passed.items()):
            zh, en = LABELS.get(check, (check, check))
            out.write(f"  ✓ 通过 PASS  [{zh} / {en}] {n}\n")
        out.writelines("  " + f.line() + "\n" for f in self.findings)
        verdict = (
            f"✗ 校验失败 VERIFICATION FAILED: {len(self.errors)} 项错误 errors"
            if self.failed else "✓ 校验通过 VERIFIED"
        )
        out.write(f"  {verdict}\n")

    def dumps(self) -> str:
        return json.dumps(self.to_json(), ensure_ascii=False, indent=2)
