"""Load and validate rulebook YAML files."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]
from pydantic import ValidationError

from .checks import cross_reference_problems
from .errors import Problem, RulebookError
from .rulebook import Rulebook

DEFAULT_RULEBOOK = Path(__file__).with_name("xinxiang-2024-52.yaml")


_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_SafeLoader):  # type: ignore[misc]
    """Safe loader (libyaml when present) that refuses duplicate keys (PyYAML would silently
    keep the last one)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                f"found duplicate key {key!r} (first at line {seen[key] + 1})", key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)


def _loc_to_path(loc: tuple[int | str, ...]) -> str:
    # pydantic adds the union member ('Condition', "literal['always','never']") to the location;
    # drop such tags so that the path is the one an editor sees in the file.
    parts = [str(p) for p in loc if not (isinstance(p, str) and (p[:1].isupper() or "[" in p))]
    return ".".join(parts)


def parse_rulebook(data: Any, source: str = "<memory>") -> Rulebook:
    """Validate already-parsed YAML data; raises RulebookError listing every problem."""
    if not isinstance(data, Mapping):
        raise RulebookError(source, [Problem("", "the file must hold a mapping at the top level")])
    try:
        rb = Rulebook.model_validate(dict(data))
    except ValidationError as exc:
        found: dict[tuple[str, str], Problem] = {}
        for err in exc.errors(include_url=False):
            path = _loc_to_path(err["loc"])
            found.setdefault((path, err["msg"]), Problem(path, err["msg"]))
        raise RulebookError(source, list(found.values())) from None
    rb._source = source
    problems = cross_reference_problems(rb)
    if problems:
        raise RulebookError(source, problems)
    return rb


def load_rulebook(path: str | Path) -> Rulebook:
    """Read, parse and validate one rulebook YAML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulebookError(str(path), [Problem("", f"cannot read file: {exc}")]) from exc
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        raise RulebookError(str(path), [Problem("", f"not valid YAML: {exc}")]) from None
    return parse_rulebook(data, source=str(path))


@functools.cache
def default_rulebook() -> Rulebook:
    """The Xinxiang rulebook (新乡府发〔2024〕52号), loaded once on first use."""
    return load_rulebook(DEFAULT_RULEBOOK)
