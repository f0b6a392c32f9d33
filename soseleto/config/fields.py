"""Declaring, checking and (de)serialising config sections.

A section is a frozen dataclass deriving from :class:`Section` whose fields are declared with
:func:`opt`: a default, a one-line meaning and rules (``ge``, ``gt``, ``le``, ``lt``, ``choices``,
``min_items``, ``unique``, ``min_length``, ``pattern``). The same rules check a section when it is
built and give its JSON schema (:func:`object_schema`), so a range is stated once.
:func:`from_mapping` builds a section from YAML, naming any unknown (and, with ``complete``, any
missing) key by its dotted path. Imports neither torch nor numpy.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import field
from typing import Any, Mapping, TypeVar

T = TypeVar("T")

JSON_TYPES = {float: "number", int: "integer", bool: "boolean", str: "string"}


def opt(default: Any, doc: str, **rules: Any) -> Any:
    """A config field with its default, its meaning and its rules (see the module docstring)."""
    return field(default=default, metadata={"doc": doc, **rules})


class Section:
    """Base of every config section: checks each field against its rules, then :meth:`check`."""

    def __post_init__(self) -> None:
        types = hints(type(self))
        for f in dataclasses.fields(self):
            value = coerce(f.name, getattr(self, f.name), types[f.name])
            object.__setattr__(self, f.name, value)
            check_rules(f.name, value, f.metadata)
        self.check()

    def check(self) -> None:
        """Rules that involve several fields (overridden by sections that have them)."""


# -- internals -----------------------------------------------------------------------------------------------
def hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def unpack(hint: Any) -> tuple[Any, bool, Any]:
    """``(base type, optional, item type of a tuple or None)`` of a field annotation."""
    args = typing.get_args(hint)
    optional = type(None) in args
    if optional:
        hint = next(a for a in args if a is not type(None))
    if typing.get_origin(hint) is tuple:
        return tuple, optional, typing.get_args(hint)[0]
    return hint, optional, None


def section_type(hint: Any) -> type | None:
    base, _, _ = unpack(hint)
    return base if isinstance(base, type) and issubclass(base, Section) else None


def coerce(name: str, value: Any, hint: Any) -> Any:
    base, optional, item = unpack(hint)
    if value is None:
        require(name, optional, value, "a value (not null)")
        return None
    if section_type(hint) is not None:
        require(name, isinstance(value, base), value, f"a {base.__name__}")
        return value
    if item is not None:
        require(name, isinstance(value, (list, tuple)), value, "a list")
        return tuple(scalar(f"{name}[{i}]", v, item) for i, v in enumerate(value))
    return scalar(name, value, base)


def scalar(name: str, value: Any, kind: type) -> Any:
    if kind is float:
        require(name, isinstance(value, (int, float)) and not isinstance(value, bool), value, "a number")
        return float(value)
    require(name, isinstance(value, kind) and (kind is bool or not isinstance(value, bool)), value,
             f"{'an' if kind is int else 'a'} {JSON_TYPES[kind] if kind in JSON_TYPES else kind.__name__}")
    return value


def check_rules(name: str, value: Any, meta: Mapping[str, Any]) -> None:
    if value is None or dataclasses.is_dataclass(value):
        return
    items = value if isinstance(value, tuple) else (value,)
    if isinstance(value, tuple):
        require(name, len(value) >= meta.get("min_items", 0), list(value),
                 f"a list of at least {meta.get('min_items', 0)} item(s)")
        if meta.get("unique"):
            require(name, len(set(value)) == len(value), list(value), "a list without repeats")
    for v in items:
        shown = list(value) if isinstance(value, tuple) else value
        if "choices" in meta:
            allowed = choices_of(meta)
            require(name, v in allowed, shown, f"one of {list(allowed)}")
        for rule, text, ok in (("ge", ">=", lambda a, b: a >= b), ("gt", ">", lambda a, b: a > b),
                               ("le", "<=", lambda a, b: a <= b), ("lt", "<", lambda a, b: a < b)):
            if rule in meta:
                require(name, ok(v, meta[rule]), shown, f"{text} {meta[rule]}" + (" for every item" if value is not v else ""))
        if "min_length" in meta:
            require(name, len(v) >= meta["min_length"], shown, f"at least {meta['min_length']} character(s)")
        if "pattern" in meta:
            require(name, re.match(meta["pattern"], v) is not None, shown, f"matching {meta['pattern']}")


def choices_of(meta: Mapping[str, Any]) -> tuple:
    """A field's allowed values: its ``choices``, called first when it is a function (e.g. the
    methods of the registry, which a test may extend)."""
    choices = meta["choices"]
    return tuple(choices() if callable(choices) else choices)


def require(key: str, ok: bool, value: Any, expected: str) -> None:
    if not ok:
        raise ValueError(f"{key}={value!r} is invalid: expected {expected}")


def plain(obj: Any) -> Any:
    """``obj`` as plain YAML/JSON data: dataclasses as dicts, tuples as lists, recursively."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


# -- building sections from mappings ---------------------------------------------------------------------
def from_mapping(cls: type[T], data: Mapping[str, Any] | None, *, where: str = "", complete: bool = False) -> T:
    """Build section ``cls`` from a mapping, recursing into nested sections.

    Unknown keys raise ``ValueError`` naming the dotted key path; with ``complete`` so do missing
    ones. Without ``complete``, a nested mapping overrides the parent field's default section
    (``{"trainer": {"epochs": 3}}`` keeps the rest of the synthetic experiment's trainer). Values are checked against the field rules and the section's own :meth:`Section.check`.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"{where.rstrip('.') or 'config'} must be a mapping, got {data!r}")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ValueError(f"unknown config key(s) {', '.join(where + k for k in unknown)}; valid keys: {names}")
    if complete:
        missing = [k for k in names if k not in data]
        if missing:
            raise ValueError(f"missing config key(s) {', '.join(where + k for k in missing)} (every key must be given)")
    types = hints(cls)
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    kwargs = {}
    for name, value in data.items():
        sub = section_type(types[name])
        if sub is not None and isinstance(value, Mapping):
            base = defaults[name]
            if not complete and isinstance(base, sub):  # a partial section overrides the parent's default
                value = {**{f.name: getattr(base, f.name) for f in dataclasses.fields(base)}, **value}
            value = from_mapping(sub, value, where=f"{where}{name}.", complete=complete)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except ValueError as err:
        raise ValueError(f"{where}{err}") from None


def to_dict(obj: Any) -> dict[str, Any]:
    """Plain-dict view of a section, tuples as lists (YAML/JSON ready)."""
    return plain(obj)


def object_schema(cls: type, defs: dict[str, Any]) -> dict[str, Any]:
    types = hints(cls)
    props = {}
    for f in dataclasses.fields(cls):
        sub = section_type(types[f.name])
        if sub is not None:
            if sub.__name__ not in defs:
                defs[sub.__name__] = {}  # placeholder against recursion
                defs[sub.__name__] = object_schema(sub, defs)
            props[f.name] = {"$ref": f"#/$defs/{sub.__name__}", "description": f.metadata["doc"]}
        else:
            props[f.name] = _value_schema(types[f.name], f.metadata)
    return {"type": "object", "additionalProperties": False, "required": list(props), "properties": props}


BOUNDS = {"ge": "minimum", "gt": "exclusiveMinimum", "le": "maximum", "lt": "exclusiveMaximum",
           "min_length": "minLength", "pattern": "pattern"}


def _value_schema(hint: Any, meta: Mapping[str, Any]) -> dict[str, Any]:
    base, optional, item = unpack(hint)
    out: dict[str, Any] = {"description": meta["doc"]}
    scalar: dict[str, Any] = {}
    if meta.get("choices"):
        scalar["enum"] = list(choices_of(meta))
    else:
        scalar["type"] = JSON_TYPES[item or base]
    scalar.update({BOUNDS[k]: v for k, v in meta.items() if k in BOUNDS})
    if item is not None:
        out.update({"type": "array", "items": scalar, "minItems": meta.get("min_items", 0)})
        if meta.get("unique"):
            out["uniqueItems"] = True
    else:
        out.update(scalar)
    if optional:
        out["type"] = [out["type"], "null"]
    return out
