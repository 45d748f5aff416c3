"""Field validators for the strict decoder.

A validator is a callable ``(field_name, value) -> value`` that returns the (possibly converted)
value or raises :class:`SchemaError`. Message classes declare one validator per field in their
dataclass metadata; :mod:`lerec.protocol.messages` applies them on encode *and* decode, so an
invalid message can neither be sent nor accepted.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .errors import SchemaError

Validator = Callable[[str, Any], Any]

#: Device and officer identifiers: lower-case ASCII, digits, dash, underscore, dot.
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def integer(lo: int = 0, hi: int = 2**63 - 1) -> Validator:
    def check(name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SchemaError(name, f"expected an integer, got {type(value).__name__}")
        if not lo <= value <= hi:
            raise SchemaError(name, f"{value} is outside [{lo}, {hi}]")
        return value

    return check


def text(max_len: int = 256, pattern: re.Pattern[str] | None = None) -> Validator:
    def check(name: str, value: Any) -> str:
        if not isinstance(value, str):
            raise SchemaError(name, f"expected text, got {type(value).__name__}")
        if len(value) > max_len:
            raise SchemaError(name, f"text longer than {max_len} characters")
        if pattern is not None and not pattern.match(value):
            raise SchemaError(name, f"{value!r} does not match {pattern.pattern}")
        if "\x00" in value:
            raise SchemaError(name, "text contains NUL")
        return value

    return check


def identifier() -> Validator:
    return text(64, ID_PATTERN)


def blob(size: int | None = None, max_len: int | None = None, *,
         view: bool = False) -> Validator:
    """Bytes (a ``bytearray`` is copied into ``bytes``). ``view``: a read-only ``memoryview``
    of bytes is also taken, as it is, without a copy (bulk data decoded in place)."""

    def check(name: str, value: Any) -> bytes | memoryview:
        if view and isinstance(value, memoryview):
            if not value.readonly or value.format != "B" or value.ndim != 1:
                raise SchemaError(name, "expected a read-only byte view")
        elif not isinstance(value, (bytes, bytearray)):
            raise SchemaError(name, f"expected bytes, got {type(value).__name__}")
        if size is not None and len(value) != size:
            raise SchemaError(name, f"expected {size} bytes, got {len(value)}")
        if max_len is not None and len(value) > max_len:
            raise SchemaError(name, f"{len(value)} bytes exceeds {max_len}")
        return value if isinstance(value, memoryview) else bytes(value)

    return check


def boolean() -> Validator:
    def check(name: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise SchemaError(name, f"expected a boolean, got {type(value).__name__}")
        return value

    return check


def one_of(*choices: str) -> Validator:
    def check(name: str, value: Any) -> str:
        if value not in choices:
            raise SchemaError(name, f"{value!r} is not one of {', '.join(choices)}")
        return str(value)

    return check


def list_of(item: Validator, max_items: int) -> Validator:
    def check(name: str, value: Any) -> tuple[Any, ...]:
        if not isinstance(value, (list, tuple)):
            raise SchemaError(name, f"expected a list, got {type(value).__name__}")
        if len(value) > max_items:
            raise SchemaError(name, f"more than {max_items} items")
        return tuple(item(f"{name}[{i}]", v) for i, v in enumerate(value))

    return check


def optional(inner: Validator) -> Validator:
    def check(name: str, value: Any) -> Any:
        return None if value is None else inner(name, value)

    return check
