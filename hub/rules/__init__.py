"""The regulation as data (rulebooks) and the compliance checker.

    rb = default_rulebook()                  # 新乡府发〔2024〕52号
    rb.kind("site_inspection").fields        # what a 现场检查 record must hold
    rb.validate_record("direct_service", {...})   # -> list[FieldError]
    evaluate(snapshot, rb, now)              # -> list[Finding], each citing its article
"""

from .compliance import Code, Finding, Severity, archive_deadline, evaluate
from .errors import Problem, RulebookError, UnknownEntryError
from .loader import DEFAULT_RULEBOOK, default_rulebook, load_rulebook, parse_rulebook
from .model import Article, FieldDef, RecordKind, Stage
from .numerals import article_label
from .rulebook import Rulebook
from .snapshot import Attachment, CaseSnapshot, Clip, Record
from .validation import FieldError, validate_record

__all__ = [
    "DEFAULT_RULEBOOK",
    "Article",
    "Attachment",
    "CaseSnapshot",
    "Clip",
    "Code",
    "FieldDef",
    "FieldError",
    "Finding",
    "Problem",
    "Record",
    "RecordKind",
    "Rulebook",
    "RulebookError",
    "Severity",
    "Stage",
    "UnknownEntryError",
    "archive_deadline",
    "article_label",
    "default_rulebook",
    "evaluate",
    "load_rulebook",
    "parse_rulebook",
    "validate_record",
]
