"""Values for dataclass configs from outside Python (CLI flags, JSON, YAML), checked against each
field's declared type, so that ``inner_lr="abc"`` or ``steps=2.5`` is one clear error before a run
starts rather than a traceback in the middle of it."""

from __future__ import annotations

import argparse
import dataclasses
import sys
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


def setting(default=dataclasses.MISSING, help: str = "", flag: str | None = None, *,
            factory=dataclasses.MISSING, requires: str | None = None,
            deprecated: tuple = ()):
    """A config field with its help text and command-line alias as metadata, from which the CLI
    builds its flags (:mod:`tfmeta.cli`), so a default is stated once, here.

    Args:
        default, factory: the field's default (or default factory).
        help: one line for ``--help``.
        flag: the flag that sets it (``"meta-batch"`` -> ``--meta-batch``); ``None``: only
            ``--set`` / ``--config`` set it.
        requires: the setting (a field name of the same config) without which this one means
            nothing (``attack_epsilon`` requires ``adversarial``): a value other than the
            default is refused while that one is unset.
        deprecated: old spellings of ``flag``, accepted with a warning for one release.
    """
    metadata = {"help": help, "flag": flag, "requires": requires, "deprecated": tuple(deprecated)}
    return dataclasses.field(default=default, default_factory=factory, metadata=metadata)


def check_requirements(config, where: str = "") -> None:
    """One clear error for a setting of ``config`` (a dataclass built from :func:`setting`
    fields) given without the setting it needs."""
    for field in dataclasses.fields(config):
        needed = field.metadata.get("requires")
        if not needed or getattr(config, field.name) == field.default:
            continue
        if getattr(config, needed) in (None, False):
            flags = {f.name: f.metadata.get("flag") for f in dataclasses.fields(config)}
            said = (f" (--{flags[field.name]})" if flags[field.name] else "")
            raise ConfigError(f"{where}{field.name}{said} needs {where}{needed}"
                              + (f" (--{flags[needed]})" if flags.get(needed) else "")
                              + ": set both, or neither")


class DeprecatedFlag(argparse.Action):
    """An old spelling of a flag: works as the new one, with a warning."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"tfmeta: warning: {option_string} is deprecated and will be removed: use "
              f"--{self.metavar}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_flags(p, sections, dest_prefix: str, only=None) -> None:
    """One argparse flag on ``p`` per field of ``sections`` (``[(key prefix, dataclass)]``) whose
    :func:`setting` names one (``only``: those flags alone), its value stored under
    ``dest_prefix + key``; a flag two learners share is added once."""
    seen = {}
    for prefix, cls in sections:
        for f in dataclasses.fields(cls):
            flag, key = f.metadata.get("flag"), prefix + f.name
            if not flag or (only is not None and flag not in only) or seen.get(flag) == key:
                continue
            if flag in seen:
                raise ValueError(f"--{flag} stands for both {seen[flag]} and {key}")
            seen[flag] = key
            text, dest = f.metadata["help"], dest_prefix + key
            if f.type in (bool, "bool"):
                p.add_argument(f"--{flag}", dest=dest, action="store_const", const="true",
                               help=f"{text} (= --set {key}=true)")
                continue
            default = f.default if f.default is not dataclasses.MISSING else None
            said = ("default: the learner's; " if prefix == "learner." else "" if default is None
                    else f"default {default:.4g}; " if isinstance(default, float)
                    else f"default {default}; ")
            p.add_argument(f"--{flag}", dest=dest, metavar="VALUE",
                           help=f"{text} ({said}= --set {key}=VALUE)")
            for old in f.metadata.get("deprecated", ()):
                p.add_argument(f"--{old}", dest=dest, metavar=flag, action=DeprecatedFlag,
                               help=argparse.SUPPRESS)
