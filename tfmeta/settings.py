"""Values for dataclass configs from outside Python (CLI flags, JSON, YAML), checked against each
field's declared type, so that ``inner_lr="abc"`` or ``steps=2.5`` is one clear error before a run
starts rather than a traceback in the middle of it."""

from __future__ import annotations

import dataclasses
import types
import typing

from tfmeta.errors import ConfigError


def _accepts(kind, value) -> bool:
    if kind is typing.Any:
        return True
    if kind is type(None):
        return value is None
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind in (tuple, list) or typing.get_origin(kind) in (tuple, list):
        return isinstance(value, (tuple, list))
    if kind is dict or typing.get_origin(kind) is dict:
        return isinstance(value, dict)
    if isinstance(kind, type):
        return isinstance(value, kind)
    return True  # a type this check does not know: the dataclass checks it


def field_types(cls) -> dict:
    """``{field: type}`` of a dataclass (annotations resolved)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, typing.Any) for f in dataclasses.fields(cls)}


def check_value(cls, name: str, value, where: str):
    """``value`` for field ``name`` of dataclass ``cls`` (a list becomes a tuple for a tuple
    field), or a ``ConfigError`` that names ``where`` and the expected type."""
    kind = field_types(cls)[name]
    options = typing.get_args(kind) if typing.get_origin(kind) in (typing.Union,
                                                                    types.UnionType) else (kind,)
    if not any(_accepts(option, value) for option in options):
        expected = " or ".join(getattr(o, "__name__", str(o)).replace("NoneType", "None")
                               for o in options)
        raise ConfigError(f"{where}={value!r}: expected {expected}")
    if isinstance(value, list) and any(o is tuple or typing.get_origin(o) is tuple
                                       for o in options):
        return tuple(value)
    return value
