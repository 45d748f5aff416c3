"""Broken rulebooks are rejected with an error that names the place in the file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from lerec.hub.rules import RulebookError, load_rulebook, parse_rulebook

Data = dict[str, Any]


def _node(data: Data, parents: list[str]) -> Any:
    node: Any = data
    for part in parents:
        node = node[_key(node, part)]
    return node


def _key(node: Any, part: str) -> Any:
    return int(part) if part.isdigit() and int(part) in node else part


def _set(path: str, value: Any) -> Callable[[Data], None]:
    def mutate(data: Data) -> None:
        *parents, last = path.split(".")
        node = _node(data, parents)
        node[_key(node, last)] = value
    return mutate


def _delete(path: str) -> Callable[[Data], None]:
    def mutate(data: Data) -> None:
        *parents, last = path.split(".")
        del _node(data, parents)[last]
    return mutate


def _dump(data: Data) -> str:
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(data, Dumper=dumper, allow_unicode=True)


CASES: list[tuple[str, Callable[[Data], None], str, str]] = [
    ("unknown top-level key", _set("bogus", 1), "bogus", "Extra inputs"),
    ("unknown key in a kind", _set("record_kinds.decision.colour", "red"),
     "record_kinds.decision.colour", "Extra inputs"),
    ("unknown key in a field", _set("record_kinds.decision.fields.issued_at.size", 3),
     "record_kinds.decision.fields.issued_at.size", "Extra inputs"),
    ("kind in unknown stage", _set("record_kinds.site_inspection.stage", "trial"),
     "record_kinds.site_inspection.stage", "unknown stage 'trial'"),
    ("kind cites missing article", _set("record_kinds.site_inspection.article", 31),
     "record_kinds.site_inspection", "cites article 31"),
    ("av cites missing article", _set("record_kinds.seize.av.article", 99),
     "record_kinds.seize.av", "cites article 99"),
    ("unknown field type", _set("record_kinds.direct_service.fields.server.type", "signature"),
     "record_kinds.direct_service.fields.server.type", "Input should be"),
    ("choice without options", _delete("record_kinds.mail_service.fields.mail_method.options"),
     "record_kinds.mail_service.fields.mail_method", "needs non-empty 'options'"),
    ("options on a text field",
     _set("record_kinds.direct_service.fields.document.options", {"a": "甲"}),
     "record_kinds.direct_service.fields.document", "only allowed on choice"),
    ("required and required_if", _set("record_kinds.decision.fields.expert_review.required", True),
     "record_kinds.decision.fields.expert_review", "not both"),
    ("unknown start mode", _set("record_kinds.ex_officio_start.required_when",
                                {"start_modes": ["by_magic"]}),
     "record_kinds.ex_officio_start.required_when.start_modes", "unknown start mode 'by_magic'"),
    ("unknown enforcement type", _set("record_kinds.statement_notice.required_when",
                                      {"enforcement_types": ["taxation"]}),
     "record_kinds.statement_notice.required_when.enforcement_types", "'taxation'"),
    ("bad required_when word", _set("record_kinds.decision.required_when", "sometimes"),
     "record_kinds.decision.required_when", "Input should be"),
    ("unknown fact", _set("record_kinds.decision.fields.expert_review.required_if", ["moon_full"]),
     "record_kinds.decision.fields.expert_review.required_if", "unknown fact 'moon_full'"),
    ("unknown role", _set("record_kinds.decision.fields.signer.role", "mayor"),
     "record_kinds.decision.fields.signer.role", "unknown role 'mayor'"),
    ("unknown checklist", _set("record_kinds.seize.av.checklist", "nothing"),
     "record_kinds.seize.av.checklist", "unknown checklist 'nothing'"),
    ("av medium that is not audio/video", _set("record_kinds.seize.av.media", ["expert_report"]),
     "record_kinds.seize.av.media", "unknown audio/video medium 'expert_report'"),
    ("group with unknown kind", _set("kind_groups.service_any.kinds", ["direct_service", "pigeon"]),
     "kind_groups.service_any.kinds", "unknown record kind 'pigeon'"),
    ("group kind in another stage", _set("kind_groups.service_any.kinds", ["decision"]),
     "kind_groups.service_any.kinds", "not in stage 'service_execution'"),
    ("access approver unknown", _set("access.approver_role", "mayor"),
     "access.approver_role", "unknown role 'mayor'"),
    ("archivist unknown", _set("archive.archivist_role", "nobody"),
     "archive.archivist_role", "unknown role 'nobody'"),
    ("bad deadline unit", _set("deadlines.upload.unit", "weeks"),
     "deadlines.upload.unit", "Input should be"),
    ("zero deadline", _set("deadlines.archive.amount", 0),
     "deadlines.archive.amount", "greater than or equal to 1"),
    ("missing title", _delete("metadata.title"), "metadata.title", "Field required"),
    ("non-ASCII id", _set("record_kinds.现场", {"name": "x"}), "record_kinds.现场", "pattern"),
    ("id differs from key", _set("record_kinds.decision.id", "verdict"),
     "record_kinds.decision.id", "differs from key"),
    ("wrong schema version", _set("schema_version", 2), "schema_version", "Input should be 1"),
    ("unresolvable implemented_by", _set("articles.1.implemented_by", ["rulebook:nowhere.at_all"]),
     "articles.1.implemented_by.0", "does not resolve"),
    ("implemented_by scheme", _set("articles.4.implemented_by", ["see design.md"]),
     "articles.4.implemented_by.0", "starts with 'rulebook:' or 'code:'"),
    ("kind without fields", _set("record_kinds.decision.fields", {}),
     "record_kinds.decision.fields", "at least 1"),
]


@pytest.mark.parametrize(("mutate", "path", "message"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_invalid_rulebook_is_rejected(
    default_data: Data, tmp_path: Path, mutate: Callable[[Data], None], path: str, message: str
) -> None:
    mutate(default_data)
    file = tmp_path / "broken.yaml"
    file.write_text(_dump(default_data), encoding="utf-8")
    with pytest.raises(RulebookError) as info:
        load_rulebook(file)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.source == str(file) and str(file) in str(err)
    matching = [p for p in err.problems if p.path == path and message in p.message]
    assert matching, f"expected {path}: {message!r}; got:\n{err}"


def test_valid_copy_round_trips(default_data: Data, tmp_path: Path) -> None:
    file = tmp_path / "copy.yaml"
    file.write_text(_dump(default_data), encoding="utf-8")
    assert load_rulebook(file).record_kinds.keys() == parse_rulebook(default_data).record_kinds.keys()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("schema_version: 1\nid: a\nid: b\n", "duplicate key 'id'"),
        ("schema_version: [1\n", "not valid YAML"),
        ("- just\n- a list\n", "mapping at the top level"),
    ],
    ids=["duplicate key", "syntax", "not a mapping"],
)
def test_unparsable_files(tmp_path: Path, text: str, message: str) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text(text, encoding="utf-8")
    with pytest.raises(RulebookError, match=message):
        load_rulebook(file)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RulebookError, match="cannot read file"):
        load_rulebook(tmp_path / "absent.yaml")
