"""The root rulebook model and its lookups."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, PrivateAttr, model_validator

from .errors import UnknownEntryError
from .model import (
    Access,
    ArchiveRule,
    Article,
    ArticleNo,
    Checklist,
    Deadlines,
    ElectronicRecords,
    EnforcementType,
    Fact,
    Id,
    KindGroup,
    Limits,
    Metadata,
    Model,
    NotStart,
    RecordKind,
    RecordMethod,
    Role,
    Stage,
    StartMode,
    with_ids,
)

if TYPE_CHECKING:
    from .validation import FieldError

_ID_SECTIONS = (
    "enforcement_types",
    "record_methods",
    "stages",
    "start_modes",
    "facts",
    "roles",
    "checklists",
    "record_kinds",
    "kind_groups",
)


class Rulebook(Model):
    """One regulation as data. Load it with ``load_rulebook``; never build it at import time."""

    schema_version: Literal[1]
    id: Id
    metadata: Metadata
    article_map: dict[ArticleNo, Article] = Field(alias="articles", min_length=1)
    enforcement_types: dict[Id, EnforcementType] = Field(min_length=1)
    record_methods: dict[Id, RecordMethod] = Field(min_length=1)
    stages: dict[Id, Stage] = Field(min_length=1)
    start_modes: dict[Id, StartMode] = Field(min_length=1)
    not_start: NotStart
    facts: dict[Id, Fact] = Field(default_factory=dict)
    roles: dict[Id, Role] = Field(min_length=1)
    checklists: dict[Id, Checklist] = Field(default_factory=dict)
    record_kinds: dict[Id, RecordKind] = Field(min_length=1)
    kind_groups: dict[Id, KindGroup] = Field(default_factory=dict)
    electronic_records: ElectronicRecords
    deadlines: Deadlines
    access: Access
    archive: ArchiveRule
    limits: Limits = Limits()

    _source: str = PrivateAttr(default="<memory>")

    @model_validator(mode="before")
    @classmethod
    def _entry_ids(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = {k: (with_ids(v) if k in _ID_SECTIONS else v) for k, v in data.items()}
        return data

    # -- identity ------------------------------------------------------------------------
    @property
    def source(self) -> str:
        return self._source

    # -- lookups -------------------------------------------------------------------------
    def _get(self, section: str, entry_id: str) -> Any:
        table: Mapping[str, Any] = getattr(self, section)
        try:
            return table[entry_id]
        except (KeyError, TypeError):
            raise UnknownEntryError(self._source, section, str(entry_id), list(table)) from None

    def kind(self, kind_id: str) -> RecordKind:
        return self._get("record_kinds", kind_id)  # type: ignore[no-any-return]

    def has_kind(self, kind_id: str) -> bool:
        return isinstance(kind_id, str) and kind_id in self.record_kinds

    def stage(self, stage_id: str) -> Stage:
        return self._get("stages", stage_id)  # type: ignore[no-any-return]

    def role(self, role_id: str) -> Role:
        return self._get("roles", role_id)  # type: ignore[no-any-return]

    def fact(self, fact_id: str) -> Fact:
        return self._get("facts", fact_id)  # type: ignore[no-any-return]

    def stage_order(self) -> list[str]:
        return list(self.stages)

    def kinds_for_stage(self, stage_id: str) -> list[RecordKind]:
        self.stage(stage_id)
        return [k for k in self.record_kinds.values() if k.stage == stage_id]

    def av_kinds(self) -> list[RecordKind]:
        """Record kinds with an audio/video rule (required or recommended)."""
        return [k for k in self.record_kinds.values() if k.av is not None]

    def articles(self) -> dict[int, Article]:
        return dict(sorted(self.article_map.items()))

    def article(self, number: int) -> Article:
        try:
            return self.article_map[number]
        except KeyError:
            raise UnknownEntryError(
                self._source, "articles", str(number), [str(n) for n in sorted(self.article_map)]
            ) from None

    # -- traceability --------------------------------------------------------------------
    def citations(self) -> Iterator[tuple[str, int]]:
        """Every (dotted path, article) that an entry of the rulebook cites."""
        for name in type(self).model_fields:
            if name == "article_map":
                continue
            yield from _walk(getattr(self, name), name)

    def traceability(self) -> dict[int, list[str]]:
        """Article number -> the rulebook entries citing it and its ``implemented_by`` names."""
        table: dict[int, list[str]] = {n: [] for n in sorted(self.article_map)}
        for path, number in self.citations():
            table.setdefault(number, []).append(path)
        for number, article in self.article_map.items():
            table[number].extend(article.implemented_by)
        return table

    # -- forms ---------------------------------------------------------------------------
    def validate_record(
        self,
        kind_id: str,
        fields: Mapping[str, Any],
        *,
        facts: frozenset[str] | set[str] = frozenset(),
        text_max: int | None = None,
        longtext_max: int | None = None,
    ) -> list[FieldError]:
        """Validate a submitted record against its kind; see ``validation.validate_record``."""
        from .validation import validate_record

        return validate_record(
            self, kind_id, fields, facts=facts, text_max=text_max, longtext_max=longtext_max
        )


def _walk(value: Any, path: str) -> Iterator[tuple[str, int]]:
    if isinstance(value, BaseModel):
        article = getattr(value, "article", None)
        if isinstance(article, int):
            yield path, article
        for number in getattr(value, "articles", None) or ():
            if isinstance(number, int):
                yield path, number
        for name in type(value).model_fields:
            if name not in ("article", "articles"):
                yield from _walk(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, f"{path}.{key}")
