"""Pydantic models for the parts of a rulebook (the root model lives in rulebook.py).

Every model rejects unknown keys. Entries that live in a mapping keyed by a stable ASCII id
(stages, record kinds, roles ...) receive that key as their ``id`` when the rulebook loads.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

Id = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
ArticleNo = Annotated[int, Field(ge=1, le=999)]
Text = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]

FieldType = Literal["text", "longtext", "datetime", "date", "person", "choice", "bool", "attachment"]
Severity = Literal["error", "warning", "info"]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def with_ids(mapping: object) -> object:
    """Give each entry of ``{id: {...}}`` its key as ``id`` (unless it states one itself)."""
    if not isinstance(mapping, dict):
        return mapping
    return {
        key: ({"id": key, **value} if isinstance(value, dict) and "id" not in value else value)
        for key, value in mapping.items()
    }


class Entry(Model):
    """Something kept in a mapping under a stable id; the loader fills ``id`` from the key."""

    id: Id


class Metadata(Model):
    title: Text
    document_number: Text
    issuer: Text
    issued_on: date
    effective_date: date
    effective_note: str | None = None
    jurisdiction: str | None = None


class Article(Model):
    """One article of the regulation. ``implemented_by`` names what implements an article that
    no rulebook entry cites: ``rulebook:<dotted path>`` or ``code:<module>:<attribute>``."""

    chapter: str | None = None
    text: Text
    implemented_by: tuple[Text, ...] = ()


class EnforcementType(Entry):
    name: Text
    article: ArticleNo


class RecordMethod(Entry):
    """第三条: a way of recording (文字记录, 音像记录) and its sub-kinds (media ids for AV)."""

    name: Text
    article: ArticleNo
    audiovisual: bool = False
    kinds: dict[Id, Text] = Field(min_length=1)


class Stage(Entry):
    name: Text
    articles: tuple[ArticleNo, ...] = Field(min_length=1)


class StartMode(Entry):
    name: Text
    article: ArticleNo


class NotStart(Model):
    """The decision not to start a procedure (a case snapshot with ``not_started``)."""

    name: Text
    articles: tuple[ArticleNo, ...] = Field(min_length=1)


class Fact(Entry):
    """A case fact that makes conditional records or fields required (e.g. 当事人放弃陈述、申辩)."""

    name: Text
    article: ArticleNo


class Role(Entry):
    name: Text
    description: str | None = None


class Checklist(Entry):
    """What an audio/video recording should show (第十二条)."""

    name: Text
    article: ArticleNo
    items: tuple[Text, ...] = Field(min_length=1)


class FieldDef(Entry):
    """One field of a record kind. Required unless ``required: false``; with ``required_if``
    it is required only when the case has all those facts."""

    label: Text
    type: FieldType
    required: bool | None = None
    required_if: tuple[Id, ...] = ()
    options: dict[Id, Text] | None = None
    max_length: int | None = Field(default=None, ge=1)
    role: Id | None = None
    help: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> FieldDef:
        if self.type == "choice" and not self.options:
            raise ValueError("a choice field needs non-empty 'options'")
        if self.type != "choice" and self.options is not None:
            raise ValueError(f"'options' is only allowed on choice fields, not on {self.type}")
        if self.role is not None and self.type != "person":
            raise ValueError("'role' is only allowed on person fields")
        if self.required_if and self.required is not None:
            raise ValueError("give either 'required' or 'required_if', not both")
        if self.max_length is not None and self.type not in ("text", "longtext"):
            raise ValueError("'max_length' is only allowed on text and longtext fields")
        return self

    def is_required(self, facts: frozenset[str] | set[str] = frozenset()) -> bool:
        if self.required_if:
            return all(f in facts for f in self.required_if)
        return self.required is not False


class Condition(Model):
    """When a record kind (or group) is required: every given criterion must hold.

    - ``start_modes``: the case started this way (omit: any);
    - ``enforcement_types``: the case is of one of these types (omit: any);
    - ``facts``: the case has all these facts (see the ``facts`` section);
    - ``outcome``: ``started`` (default), ``not_started`` or ``any``.
    """

    start_modes: tuple[Id, ...] | None = None
    enforcement_types: tuple[Id, ...] | None = None
    facts: tuple[Id, ...] = ()
    outcome: Literal["started", "not_started", "any"] = "started"


RequiredWhen = Literal["always", "never"] | Condition


def applicability(required_when: RequiredWhen) -> str:
    """Summarise a ``required_when`` as always / start_mode / optional / conditional / not_started."""
    if required_when == "always":
        return "always"
    if required_when == "never":
        return "optional"
    assert isinstance(required_when, Condition)
    if required_when.facts:
        return "conditional"
    if required_when.outcome == "not_started":
        return "not_started"
    if required_when.start_modes is not None:
        return "start_mode"
    return "conditional" if required_when.enforcement_types is not None else "always"


class AvRule(Model):
    """Audio/video recording for a record kind: ``required`` (error when absent) or
    ``recommended`` (必要时; info when absent). ``media`` lists the accepted media ids."""

    level: Literal["required", "recommended"]
    article: ArticleNo
    media: tuple[Id, ...] = Field(min_length=1)
    checklist: Id | None = None
    note: str | None = None


class RecordKind(Entry):
    name: Text
    article: ArticleNo
    paragraph: int | None = Field(default=None, ge=1)
    item: int | None = Field(default=None, ge=1)
    stage: Id
    required_when: RequiredWhen = "never"
    av: AvRule | None = None
    description: str | None = None
    fields: dict[Id, FieldDef] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _field_ids(cls, data: object) -> object:
        if isinstance(data, dict) and "fields" in data:
            data = {**data, "fields": with_ids(data["fields"])}
        return data

    @property
    def applicability(self) -> str:
        return applicability(self.required_when)


class KindGroup(Entry):
    """At least one record of these kinds is required (e.g. 第十七条: some form of 送达)."""

    name: Text
    article: ArticleNo
    stage: Id
    kinds: tuple[Id, ...] = Field(min_length=1)
    required_when: RequiredWhen = "always"
    severity: Literal["error", "warning"] = "error"


class ElectronicRecords(Model):
    """第二十七条: metadata every electronic record carries; sound needs a transcript."""

    article: ArticleNo
    media: tuple[Id, ...] = Field(min_length=1)
    metadata: dict[Id, Text] = Field(min_length=1)
    transcript_media: tuple[Id, ...] = ()
    transcript_label: Text = "文字记录"


class Deadline(Model):
    article: ArticleNo
    amount: int = Field(ge=1)
    unit: Literal["working_days", "calendar_days"]
    starts_from: Text
    due_soon_days: int | None = Field(default=None, ge=1)
    note: str | None = None


class Deadlines(Model):
    upload: Deadline
    archive: Deadline


class Access(Model):
    """第二十九条: who approves a party's request to consult records; confidentiality classes."""

    article: ArticleNo
    approver_role: Id
    requester: Text
    confidentiality_classes: dict[Id, Text] = Field(min_length=1)
    note: str | None = None


class ArchiveRule(Model):
    """第二十八条: who archives and keeps the records."""

    article: ArticleNo
    archivist_role: Id
    duties: tuple[Text, ...] = Field(min_length=1)


class Limits(Model):
    """Server-side limits for submitted form values (characters)."""

    text_max: int = Field(default=500, ge=1)
    longtext_max: int = Field(default=20000, ge=1)
