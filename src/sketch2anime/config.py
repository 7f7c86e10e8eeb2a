"""Frozen-dataclass configs: building them from dicts/TOML, dotted overrides, strict keys.

Every component has its own small frozen dataclass config (in its own module). This module holds
the generic machinery only: turning a nested dict (from TOML or config.json) into such a dataclass,
refusing unknown keys, applying ``--set section.key=value`` overrides, and resolving a config file's
``base = "other.toml"`` (a fine-tune written as the few settings it changes).
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override is wrong; the message says which key and why."""


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table of settings, got {value!r}")
        return from_dict(annotation, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin in (tuple, list):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v != ""]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item_type = args[0] if args else Any
        items = [_coerce(v, item_type, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        if isinstance(value, float) and value.is_integer() and abs(value) > 2**53:
            # 1e20 is an integer-valued float, but not an exact count of anything: a typo.
            raise ConfigError(f"{where}: {value!r} is too large for an integer setting")
        try:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
    if annotation is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected text, got {value!r}")
        return value
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build dataclass ``cls`` from a nested dict; unknown keys and bad types raise ConfigError."""
    types_by_name = _field_types(cls)
    unknown = sorted(set(data) - set(types_by_name))
    if unknown:
        prefix = f"{where}." if where else ""
        known = ", ".join(sorted(types_by_name))
        raise ConfigError(f"unknown setting {prefix}{unknown[0]!s} (known here: {known})")
    kwargs = {}
    for name, value in data.items():
        key = f"{where}.{name}" if where else name
        kwargs[name] = _coerce(value, types_by_name[name], key)
    try:
        obj = cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where or cls.__name__}: {exc}") from None
    return obj


def to_dict(obj: Any) -> dict[str, Any]:
    """Plain nested dict of a config dataclass (tuples become lists, JSON/TOML friendly)."""
    def convert(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: convert(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [convert(v) for v in value]
        return value
    return convert(obj)


def _parse_override_value(text: str) -> Any:
    # TOML literal syntax first (numbers, booleans, quoted strings, arrays), bare text otherwise.
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with ``section.key=value`` overrides applied."""
    result = json.loads(json.dumps(data))
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        dotted, raw = item.split("=", 1)
        parts = [p for p in dotted.strip().split(".") if p]
        if not parts:
            raise ConfigError(f"override {item!r} has no key")
        node = result
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {part} is a value, not a section")
            node = child
        node[parts[-1]] = _parse_override_value(raw.strip())
    return result


def load_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None


BASE_KEY = "base"


def merge_tables(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` laid over it: tables merge key by key, any other value replaces."""
    merged = json.loads(json.dumps(base))
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_tables(merged[key], value)
        else:
            merged[key] = json.loads(json.dumps(value))
    return merged


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML config, resolving a top-level ``base = "other.toml"`` (a path relative to this file):
    the base's settings (itself resolved the same way) with this file's settings merged over them.

    The fully resolved settings are what a run records in its folder, so editing a base later changes
    the configs built on it but never the record of a run already made."""
    return _load_layered(Path(path), ())


def _load_layered(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    data = load_toml(path)
    base = data.pop(BASE_KEY, None)
    if base is None:
        return data
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(f'{path}: {BASE_KEY} must be the path of the config this one changes, '
                          f'e.g. {BASE_KEY} = "guided128.toml", got {base!r}')
    base_path = path.parent / base
    here = path.resolve()
    if base_path.resolve() in chain + (here,):
        names = " -> ".join(str(p.name) for p in chain + (here, base_path.resolve()))
        raise ConfigError(f"{path}: {BASE_KEY} = {base!r} goes round in a circle ({names})")
    if not base_path.is_file():
        raise ConfigError(f"{path}: {BASE_KEY} = {base!r} not found (looked for {base_path})")
    return merge_tables(_load_layered(base_path, chain + (here,)), data)
