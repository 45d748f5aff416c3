"""Cross-reference checks run on a parsed rulebook (ids that point at other sections)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from .errors import Problem
from .model import Condition, RequiredWhen
from .rulebook import _ID_SECTIONS, Rulebook


def cross_reference_problems(rb: Rulebook) -> list[Problem]:
    """Everything in ``rb`` that names something the rulebook does not define."""
    out: list[Problem] = []

    def unknown(path: str, what: str, ids: Iterable[str], known: Mapping[str, Any]) -> None:
        for i in ids:
            if i not in known:
                out.append(Problem(path, f"unknown {what} '{i}' (known: {', '.join(known)})"))

    for section in _ID_SECTIONS:
        for key, entry in getattr(rb, section).items():
            if entry.id != key:
                out.append(Problem(f"{section}.{key}.id", f"id '{entry.id}' differs from key"))

    for path, number in rb.citations():
        if number not in rb.article_map:
            out.append(Problem(path, f"cites article {number}, which the rulebook does not have"))

    media = {m: name for method in rb.record_methods.values() for m, name in method.kinds.items()}
    av_media = {
        m: name
        for method in rb.record_methods.values()
        if method.audiovisual
        for m, name in method.kinds.items()
    }
    for kid, kind in rb.record_kinds.items():
        base = f"record_kinds.{kid}"
        unknown(f"{base}.stage", "stage", [kind.stage], rb.stages)
        _check_condition(rb, f"{base}.required_when", kind.required_when, unknown)
        if kind.av is not None:
            unknown(f"{base}.av.media", "audio/video medium", kind.av.media, av_media)
            if kind.av.checklist is not None:
                unknown(f"{base}.av.checklist", "checklist", [kind.av.checklist], rb.checklists)
        for fid, fdef in kind.fields.items():
            if fdef.id != fid:
                out.append(Problem(f"{base}.fields.{fid}.id", f"id '{fdef.id}' differs from key"))
            unknown(f"{base}.fields.{fid}.required_if", "fact", fdef.required_if, rb.facts)
            if fdef.role is not None:
                unknown(f"{base}.fields.{fid}.role", "role", [fdef.role], rb.roles)

    for gid, group in rb.kind_groups.items():
        base = f"kind_groups.{gid}"
        unknown(f"{base}.stage", "stage", [group.stage], rb.stages)
        unknown(f"{base}.kinds", "record kind", group.kinds, rb.record_kinds)
        _check_condition(rb, f"{base}.required_when", group.required_when, unknown)
        for k in group.kinds:
            if k in rb.record_kinds and rb.record_kinds[k].stage != group.stage:
                out.append(Problem(f"{base}.kinds", f"kind '{k}' is not in stage '{group.stage}'"))

    er = rb.electronic_records
    unknown("electronic_records.media", "medium", er.media, media)
    unknown("electronic_records.transcript_media", "medium", er.transcript_media, media)
    unknown("access.approver_role", "role", [rb.access.approver_role], rb.roles)
    unknown("archive.archivist_role", "role", [rb.archive.archivist_role], rb.roles)

    for number, article in rb.article_map.items():
        for i, ref in enumerate(article.implemented_by):
            problem = _check_reference(rb, ref)
            if problem:
                out.append(Problem(f"articles.{number}.implemented_by.{i}", problem))
    return out


def _check_condition(rb: Rulebook, path: str, cond: RequiredWhen, unknown: Any) -> None:
    if not isinstance(cond, Condition):
        return
    unknown(f"{path}.start_modes", "start mode", cond.start_modes or (), rb.start_modes)
    unknown(
        f"{path}.enforcement_types", "enforcement type", cond.enforcement_types or (),
        rb.enforcement_types,
    )
    unknown(f"{path}.facts", "fact", cond.facts, rb.facts)


def _check_reference(rb: Rulebook, ref: str) -> str | None:
    """``rulebook:a.b.c`` must resolve in the rulebook; ``code:module:attr`` is only shaped
    here (the test suite imports it, the loader does no imports)."""
    scheme, _, target = ref.partition(":")
    if scheme == "code":
        module, _, attr = target.partition(":")
        if not module or not attr:
            return f"'{ref}': write code references as code:<module>:<attribute>"
        return None
    if scheme != "rulebook":
        return f"'{ref}': a reference starts with 'rulebook:' or 'code:'"
    node: Any = rb
    for part in target.split("."):
        if isinstance(node, BaseModel) and part in type(node).model_fields:
            node = getattr(node, part)
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return f"'{ref}' does not resolve: no '{part}'"
    return None
