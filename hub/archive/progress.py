"""Progress of building an archive package: named phases and the media bytes done.

:func:`~.service.build_archive` reports through a :class:`Tracker` to an optional callback
(``on_progress``) with immutable :class:`Progress` values:

=========  ================  ==============================================================
phase      shown as          what happens
=========  ================  ==============================================================
collect    收集记录          the case's records, linked segments, device keys, blob checks,
                             the archive number, the audit entries and their proofs
copy       复制音像记录      segments and attachments placed in the package and hashed
                             (SHA-256 + SHA-512): ``bytes_done`` of ``bytes_total``
check      四性检测          signatures, receipts, hash chain, audit proofs, metadata,
                             usability (decoding), security
index      生成索引          index.html and the PDF index (which carries the 四性检测 summary,
                             so it follows the check)
bag        校验封包          the 四性检测 report, bag manifests and tag manifests, the package
                             moved into place read-only
done       完成              the archive row written: the case is archived with its package
=========  ================  ==============================================================

``bytes_total`` is the size of every segment and attachment as it will sit in the package
(an object placed twice counts twice); each byte counts once, when it has been copied into
the package and hashed — for a local store the hard link costs nothing and the hash is the
one read; for a store without local files (S3) download and hash are the same pass.

The callback runs in whichever thread does the work (the event loop, or a worker thread while
files are hashed), serialised by the tracker's lock: it must be quick. It may raise (e.g.
:class:`BuildAborted`) to stop the build; the exception propagates out of ``build_archive``
and the partial package is removed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

COLLECT, COPY, CHECK, INDEX, BAG, DONE = "collect", "copy", "check", "index", "bag", "done"
PHASES: tuple[str, ...] = (COLLECT, COPY, CHECK, INDEX, BAG, DONE)
PHASE_ZH: dict[str, str] = {
    COLLECT: "收集记录", COPY: "复制音像记录", CHECK: "四性检测", INDEX: "生成索引（HTML/PDF）",
    BAG: "校验封包", DONE: "完成",
}
#: the share of the whole job (percent) each phase starts and ends at; the copy dominates
_SPAN: dict[str, tuple[int, int]] = {
    COLLECT: (0, 5), COPY: (5, 90), CHECK: (90, 94), INDEX: (94, 97), BAG: (97, 99),
    DONE: (100, 100),
}
#: report bytes at least this often (and at every file's end and every phase change)
REPORT_EVERY = 256 * 1024


class BuildAborted(Exception):
    """Raised by a progress callback to stop a build (e.g. the service is shutting down)."""


@dataclass(frozen=True)
class Progress:
    phase: str = COLLECT
    bytes_done: int = 0
    bytes_total: int = 0
    files_done: int = 0
    files_total: int = 0

    @property
    def label(self) -> str:
        return PHASE_ZH.get(self.phase, self.phase)

    @property
    def percent(self) -> int:
        """The whole job, 0–100 (the copy phase by bytes)."""
        lo, hi = _SPAN.get(self.phase, (0, 0))
        if self.phase != COPY:
            return lo
        if self.bytes_total > 0:
            frac = min(self.bytes_done / self.bytes_total, 1.0)
        elif self.files_total > 0:
            frac = min(self.files_done / self.files_total, 1.0)
        else:
            frac = 0.0
        return lo + int((hi - lo) * frac)

    def to_json(self) -> dict[str, Any]:
        return {"phase": self.phase, "phase_zh": self.label, "percent": self.percent,
                "bytes_done": self.bytes_done, "bytes_total": self.bytes_total,
                "files_done": self.files_done, "files_total": self.files_total}


ProgressCallback = Callable[[Progress], None]


class Tracker:
    """Thread-safe progress of one build. ``update(n)`` makes it usable where a tqdm bar is
    expected (:func:`lerec.hub.verify.archivecheck._hash_one`)."""

    def __init__(self, callback: ProgressCallback | None = None) -> None:
        self._callback = callback
        self._lock = threading.Lock()
        self._state = Progress()
        self._reported = -1

    @property
    def state(self) -> Progress:
        return self._state

    def _emit(self) -> None:  # (holding the lock)
        self._reported = self._state.bytes_done
        if self._callback is not None:
            self._callback(self._state)

    def phase(self, name: str) -> None:
        if name not in PHASE_ZH:
            raise ValueError(f"unknown archive phase {name!r}")
        with self._lock:
            self._state = replace(self._state, phase=name)
            self._emit()

    def totals(self, bytes_total: int, files_total: int) -> None:
        with self._lock:
            self._state = replace(self._state, bytes_total=bytes_total, files_total=files_total)

    def update(self, n: int) -> None:
        """``n`` more media bytes copied and hashed."""
        with self._lock:
            self._state = replace(self._state, bytes_done=self._state.bytes_done + n)
            if self._state.bytes_done - self._reported >= REPORT_EVERY:
                self._emit()

    def file_done(self, count: int = 1) -> None:
        with self._lock:
            self._state = replace(self._state, files_done=self._state.files_done + count)
            self._emit()


class _Quiet:
    def update(self, _n: int) -> None:
        pass


QUIET = _Quiet()
