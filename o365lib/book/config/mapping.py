"""Typed checking of configuration: dataclasses whose construction *is* validation.

A profile (``parameters/profiles/<name>.yaml``) is turned into the :class:`~o365lib.book.config.schema.Profile`
dataclass tree by :func:`from_mapping`. Every section is a frozen dataclass; building it checks, before
anything runs or is written, that

- no key is unknown (a typo such as ``experts.epoch`` or ``model.pretrian`` is an error listing the
  known keys, never silently replaced by a default),
- every required key is present,
- every value has the declared type (``train.lr: abc`` fails here, naming the file and ``train.lr``),
- and lies in its declared range (``field(metadata={"min": 1})``, ``Literal[...]`` choices).

Errors are :class:`ConfigError` (a ``ValueError``) whose message names the file and the dotted key.
This module knows nothing about which sections exist; ``o365lib.book.config.schema`` declares them.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union


class ConfigError(ValueError):
    """A configuration value is missing, unknown, of the wrong type or out of range.

    ``source`` is the file (or label) and ``key`` the dotted key, both named in the message.
    """

    def __init__(self, source: str, key: str, problem: str):
        self.source, self.key, self.problem = str(source), str(key), str(problem)
        super().__init__(f"{self.source}: {self.key}: {self.problem}")


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(v) for v in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        return f"a list of {_type_name(item)}"
    if origin is dict:
        return "a mapping"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return f"a mapping ({tp.__name__})"
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp, *, source: str, key: str) -> Any:
    """``value`` checked against the type ``tp`` (and converted: int -> float, list -> tuple of dataclasses)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        errors = []
        for option in typing.get_args(tp):
            try:
                return _convert(value, option, source=source, key=key)
            except ConfigError as error:
                if dataclasses.is_dataclass(option) and isinstance(value, Mapping):
                    raise  # the mapping was meant for this section: its own message is the useful one
                errors.append(error)
        raise ConfigError(source, key, f"expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value not in typing.get_args(tp) or isinstance(value, bool) != any(
                isinstance(v, bool) for v in typing.get_args(tp) if v == value):
            raise ConfigError(source, key, f"must be one of {list(typing.get_args(tp))}, got {value!r}")
        return value
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(source, key, f"expected {_type_name(tp)}, got {value!r}")
        return [_convert(v, item, source=source, key=f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(source, key, f"expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return from_mapping(tp, value, source=source, prefix=key)
    if tp is type(None):
        if value is not None:
            raise ConfigError(source, key, f"expected null, got {value!r}")
        return None
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(source, key, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(source, key, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(source, key, f"expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(source, key, f"expected a string, got {value!r}")
        return value
    raise TypeError(f"schema: unsupported field type {tp!r} at {key}")  # a bug in the schema, not the input


def _check_range(value: Any, meta: Mapping, *, source: str, key: str) -> None:
    values = value if isinstance(value, list) else [value]
    for v in values:
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            continue
        if "min" in meta and v < meta["min"]:
            raise ConfigError(source, key, f"must be >= {meta['min']}, got {v!r}")
        if "gt" in meta and not v > meta["gt"]:
            raise ConfigError(source, key, f"must be > {meta['gt']}, got {v!r}")
        if "max" in meta and v > meta["max"]:
            raise ConfigError(source, key, f"must be <= {meta['max']}, got {v!r}")
    if meta.get("nonempty") and isinstance(value, list) and not value:
        raise ConfigError(source, key, "must not be empty")


def from_mapping(cls, mapping: Any, *, source: str, prefix: str = ""):
    """Build the dataclass ``cls`` from a mapping, checking keys, types and ranges (see the module docstring).

    Fields without a default are required. ``prefix`` is the dotted path of ``mapping`` for messages.
    A dataclass may define ``validate(self, source)`` for checks across fields; it runs last.
    """
    where = prefix or "top level"
    if not isinstance(mapping, Mapping):
        raise ConfigError(source, where, f"expected a mapping, got {mapping!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        raise ConfigError(source, f"{prefix + '.' if prefix else ''}{unknown[0]}",
                          f"unknown key{'s' if len(unknown) > 1 else ''} {unknown} in {where}; "
                          f"known keys: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, field in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        if name not in mapping:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise ConfigError(source, key, f"missing (required in {where})")
            continue
        value = _convert(mapping[name], hints[name], source=source, key=key)
        _check_range(value, field.metadata, source=source, key=key)
        values[name] = value
    obj = cls(**values)
    check = getattr(obj, "validate", None)
    if callable(check):
        check(source)
    return obj


def to_mapping(obj) -> Any:
    """Plain JSON-able data of a dataclass tree (the inverse of :func:`from_mapping`)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_mapping(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_mapping(v) for v in obj]
    if isinstance(obj, Mapping):
        return {k: to_mapping(v) for k, v in obj.items()}
    return obj


def field_paths(cls, prefix: str = "") -> dict[str, Any]:
    """Dotted key -> type of every field of ``cls``, nested sections included (for overrides and tests)."""
    out = {}
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        key = f"{prefix}.{field.name}" if prefix else field.name
        tp = hints[field.name]
        sections = [a for a in (typing.get_args(tp) or (tp,)) if dataclasses.is_dataclass(a)]
        out[key] = tp
        for section in sections:
            out.update(field_paths(section, key))
    return out


def positive(**kwargs):
    """``dataclasses.field`` with the value constraint ``> 0``."""
    return dataclasses.field(metadata={"gt": 0}, **kwargs)


def at_least(minimum, **kwargs):
    """``dataclasses.field`` with the value constraint ``>= minimum``."""
    return dataclasses.field(metadata={"min": minimum}, **kwargs)
