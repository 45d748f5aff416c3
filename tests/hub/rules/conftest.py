"""Fixtures for the rulebook tests: the rulebooks and small snapshot builders."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from lerec.hub.rules import (
    DEFAULT_RULEBOOK,
    FieldDef,
    RecordKind,
    Rulebook,
    default_rulebook,
    load_rulebook,
)

OTHER_TOWN = Path(__file__).parent / "fixtures" / "other-town.yaml"


@pytest.fixture
def rb() -> Rulebook:
    return default_rulebook()


@pytest.fixture
def other_rb() -> Rulebook:
    return load_rulebook(OTHER_TOWN)


@functools.cache
def _default_data() -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(DEFAULT_RULEBOOK.read_text(encoding="utf-8"), Loader=loader)


@pytest.fixture
def default_data() -> dict[str, Any]:
    """A fresh, mutable copy of the default rulebook's YAML data."""
    return copy.deepcopy(_default_data())


def sample_value(fdef: FieldDef) -> Any:
    """A valid value for one field."""
    return {
        "text": "示例",
        "longtext": "示例内容",
        "datetime": "2025-03-01T09:30:00+08:00",
        "date": "2025-03-01",
        "person": "张三",
        "bool": True,
        "attachment": ["att-1"],
        "choice": next(iter(fdef.options or {"x": ""})),
    }[fdef.type]


def complete_fields(kind: RecordKind) -> dict[str, Any]:
    """Every field of ``kind`` filled with a valid value."""
    return {fid: sample_value(f) for fid, f in kind.fields.items()}


@pytest.fixture
def fill() -> Callable[[RecordKind], dict[str, Any]]:
    return complete_fields
