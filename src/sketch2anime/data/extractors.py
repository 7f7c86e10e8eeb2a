"""Registry of sketch extractors: colour image (HxWx3 uint8) -> sketch (HxW uint8, 255 paper, 0 ink).

Every extractor object has ``name``, ``config`` (a frozen dataclass), ``__call__(rgb, rng=None)``
and ``extract_batch(images, rng=None)``. ``EXTRACTORS`` maps a name to ``(class, config class)``;
it is a read-only mapping whose ``"hed"`` entry imports ``data.hed_sketch`` (and with it the HED
network code) only when that entry is looked up, so importing this module stays light.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

import numpy as np

from ..config import ConfigError, _parse_override_value, from_dict, to_dict

# name -> (module, class name, config class name); modules are imported on first lookup.
_ENTRIES: dict[str, tuple[str, str, str]] = {
    "detail": ("sketch2anime.data.detail", "DetailFilter", "DetailFilterConfig"),
    "xdog": ("sketch2anime.data.xdog", "XDoG", "XDoGConfig"),
    "hed": ("sketch2anime.data.hed_sketch", "HEDSketch", "HEDSketchConfig"),
}


class SketchExtractor(Protocol):
    """What every registered extractor provides."""

    name: str
    config: Any

    def __call__(self, rgb: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray: ...

    def extract_batch(self, images: list[np.ndarray], rng: np.random.Generator | None = None) -> list[np.ndarray]: ...


class _LazyRegistry(Mapping[str, tuple[type, type]]):
    """Read-only ``name -> (extractor class, config class)`` that imports a module on first use."""

    def __init__(self, entries: dict[str, tuple[str, str, str]]) -> None:
        self._entries = entries
        self._loaded: dict[str, tuple[type, type]] = {}

    def __getitem__(self, name: str) -> tuple[type, type]:
        if name not in self._loaded:
            module_name, cls_name, config_name = self._entries[name]  # KeyError for unknown names
            try:
                module = importlib.import_module(module_name)
            except ImportError as exc:
                raise ValueError(f"the {name!r} sketch extractor is not available: {exc}") from exc
            self._loaded[name] = (getattr(module, cls_name), getattr(module, config_name))
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __repr__(self) -> str:
        return f"EXTRACTORS({', '.join(self._entries)})"


EXTRACTORS: Mapping[str, tuple[type, type]] = _LazyRegistry(_ENTRIES)


def _check_name(name: str) -> None:
    if name not in EXTRACTORS:
        raise ValueError(f"unknown sketch extractor {name!r}; choose from: {', '.join(EXTRACTORS)}")


def make_config(name: str, **params: Any) -> Any:
    """The config of extractor ``name`` with ``params`` applied (strings coerced to the field types)."""
    _check_name(name)
    _, config_cls = EXTRACTORS[name]
    try:
        return from_dict(config_cls, params, where=name)
    except ConfigError:
        raise
    except ValueError as exc:  # a config's own range check
        raise ConfigError(f"{name}: {exc}") from None


def make_extractor(name: str, **params: Any) -> SketchExtractor:
    """Build extractor ``name`` ("detail", "xdog", "hed"); unknown names or params raise ValueError."""
    config = make_config(name, **params)
    cls, _ = EXTRACTORS[name]
    return cls(config)


def extractor_params(extractor: SketchExtractor) -> dict[str, Any]:
    """The extractor's config as a plain JSON-friendly dict (for dataset manifests)."""
    return to_dict(extractor.config)


def parse_extractor_params(items: list[str] | tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Parse CLI items like ``"detail.min_line_length=12"`` into ``{"detail": {"min_line_length": 12}}``.

    Values are read as TOML literals when possible (numbers, booleans, arrays), as text otherwise;
    they are checked against the config types later by ``make_extractor``.
    """
    result: dict[str, dict[str, Any]] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"extractor parameter {item!r} must look like EXTRACTOR.KEY=VALUE, e.g. detail.min_line_length=12")
        dotted, raw = item.split("=", 1)
        name, dot, key = dotted.strip().partition(".")
        if not dot or not name or not key or "." in key:
            raise ConfigError(f"extractor parameter {item!r} must look like EXTRACTOR.KEY=VALUE, e.g. detail.min_line_length=12")
        _check_name(name)
        result.setdefault(name, {})[key] = _parse_override_value(raw.strip())
    return result
