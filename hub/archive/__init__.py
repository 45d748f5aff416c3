"""Archiving case files (第二十八条): self-verifying BagIt packages with an HTML and a PDF
index, numbering, case locks."""

from .model import Attachment, CaseFile, LinkedSegment, Transcript
from .numbering import DEFAULT_PATTERN, Numbering
from .pdfindex import FontMissing, PdfFont
from .progress import PHASE_ZH, PHASES, BuildAborted, Progress, ProgressCallback
from .service import (
    ArchiveError,
    ArchiveResult,
    CaseLocked,
    archive_deadline_for,
    build_archive,
    ensure_unlocked,
    get_archive,
    is_locked,
)

__all__ = [
    "DEFAULT_PATTERN", "PHASES", "PHASE_ZH", "ArchiveError", "ArchiveResult", "Attachment",
    "BuildAborted", "CaseFile", "CaseLocked", "FontMissing", "LinkedSegment", "Numbering",
    "PdfFont", "Progress", "ProgressCallback", "Transcript", "archive_deadline_for",
    "build_archive", "ensure_unlocked", "get_archive", "is_locked",
]
