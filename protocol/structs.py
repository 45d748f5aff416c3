"""Declarative, strictly validated structs that map to canonical CBOR maps."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Self, TypeVar

from .errors import SchemaError
from .schema import Validator


def spec(validator: Validator, default: Any = dataclasses.MISSING) -> Any:
    """Declare a struct field with its validator (and optionally a default)."""
    return dataclasses.field(default=default, metadata={"v": validator})


class Struct:
    """Base for frozen dataclasses whose fields carry validators.

    ``from_map`` rejects missing and unknown keys; ``__post_init__`` validates on construction,
    so a struct that exists is always valid.
    """

    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            validator: Validator = f.metadata["v"]
            value = getattr(self, f.name)
            if isinstance(value, Struct) or value is None and _accepts_none(validator, f.name):
                checked = value
            else:
                checked = validator(f.name, value)
            object.__setattr__(self, f.name, checked)

    def to_map(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, Struct):
                value = value.to_map()
            elif isinstance(value, tuple):
                value = [v.to_map() if isinstance(v, Struct) else _plain(v) for v in value]
            elif isinstance(value, memoryview):  # bulk data decoded in place
                value = value.tobytes()
            out[f.name] = value
        return out

    @classmethod
    def from_map(cls, m: dict[str, Any], where: str = "") -> Self:
        names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        extra = sorted(set(m) - set(names))
        if extra:
            raise SchemaError(where + extra[0], "unexpected field")
        missing = [n for n in names if n not in m]
        if missing:
            raise SchemaError(where + missing[0], "missing field")
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            validator: Validator = f.metadata["v"]
            values[f.name] = validator(where + f.name, m[f.name])
        try:
            return cls(**values)
        except SchemaError:
            raise
        except (TypeError, ValueError) as exc:
            raise SchemaError(where.rstrip(".") or cls.__name__, str(exc)) from None


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def _accepts_none(validator: Validator, name: str) -> bool:
    try:
        return validator(name, None) is None
    except SchemaError:
        return False


S = TypeVar("S", bound=Struct)


def struct(cls: type[S]) -> Validator:
    """Validator for a nested struct given as a map (or already built)."""

    def check(name: str, value: Any) -> S:
        if isinstance(value, cls):
            return value
        if not isinstance(value, dict):
            raise SchemaError(name, f"expected a map, got {type(value).__name__}")
        return cls.from_map(value, where=name + ".")

    return check
