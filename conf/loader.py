"""Turn YAML mappings into frozen config dataclasses, naming the key path on any error."""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from conf.errors import ConfigError

T = TypeVar("T")


def build(cls: type[T], data: Any, path: str = "") -> T:
    """Build dataclass `cls` from a mapping; unknown keys and wrong types raise ConfigError."""
    where = path or "<root>"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    assert dataclasses.is_dataclass(cls), cls
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        known = ", ".join(sorted(fields))
        raise ConfigError(f"{_join(path, unknown[0])}: unknown key (known keys: {known})")
    hints = typing.get_type_hints(cls)
    values = {name: _coerce(hints[name], value, _join(path, name)) for name, value in data.items()}
    try:
        return cls(**values)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    except TypeError as exc:  # a required key is missing
        raise ConfigError(f"{where}: {exc}") from exc


def load_yaml(path: str | Path) -> Any:
    """Read one YAML file; a missing or unparsable file raises ConfigError."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc


def replace_path(obj: T, dotted: str, value: Any, _prefix: str = "") -> T:
    """Return a copy of nested dataclass `obj` with the field at `a.b.c` set (and checked)."""
    head, _, rest = dotted.partition(".")
    path = _join(_prefix, head)
    if isinstance(obj, dict) and not rest:  # a mapping field: its owner checks the keys
        return {**obj, head: value}  # type: ignore[return-value]
    assert dataclasses.is_dataclass(obj)
    if head not in {f.name for f in dataclasses.fields(obj)}:
        raise ConfigError(f"{path}: unknown key")
    if rest:
        value = replace_path(getattr(obj, head), rest, value, path)
    else:
        value = _coerce(typing.get_type_hints(type(obj))[head], value, path)
    try:
        return dataclasses.replace(obj, **{head: value})  # type: ignore[type-var]
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _coerce(hint: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return build(hint, value, path)  # type: ignore[arg-type]
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(option, value, path)
            except ConfigError:
                continue
        raise ConfigError(f"{path}: expected {_name(hint)}, got {value!r}")
    if origin is typing.Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            raise ConfigError(f"{path}: must be one of {list(allowed)}, got {value!r}")
        return value
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__}")
        return dict(value)
    if origin in (tuple, list):
        (item_hint, *_) = typing.get_args(hint) or (Any,)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{path}: expected a list, got {type(value).__name__}")
        return tuple(_coerce(item_hint, v, f"{path}[{i}]") for i, v in enumerate(value))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is Any or (isinstance(hint, type) and _is_instance(value, hint)):
        return value
    raise ConfigError(f"{path}: expected {_name(hint)}, got {type(value).__name__} {value!r}")


def _is_instance(value: Any, hint: type) -> bool:
    if isinstance(value, bool) and hint is not bool:
        return False
    return isinstance(value, hint)


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
