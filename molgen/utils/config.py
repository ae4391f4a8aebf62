"""Typed dataclass configs that round-trip through JSON and reject unknown keys."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any, TypeVar, get_type_hints

from molgen.errors import ConfigError

__all__ = ["ConfigMixin"]

C = TypeVar("C", bound="ConfigMixin")


class ConfigMixin:
    """Adds ``to_dict`` and a strict ``from_dict`` to a dataclass.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Opts(ConfigMixin):
    ...     lr: float = 1e-3
    >>> Opts.from_dict({"lr": 0.1})
    Opts(lr=0.1)
    """

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        if not isinstance(data, dict):
            raise ConfigError(f"{cls.__name__} must be given a mapping, not {type(data).__name__}")
        known = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        unknown = set(data) - set(known)
        label = getattr(cls, "_config_label", f"{cls.__name__} keys")
        if unknown:
            raise ConfigError(f"unknown {label}: {sorted(unknown)}; known: {known}")
        hints = get_type_hints(cls)
        for name, value in data.items():
            wanted = _SCALARS.get(hints.get(name))
            if wanted is not None and not _is_a(value, hints[name]):
                raise ConfigError(f"{label}: {name} must be {wanted}, not {value!r}")
        return cls(**data)


#: Field types whose values ``from_dict`` checks, and how an error names them.
_SCALARS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _is_a(value: Any, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind in (int, float):  # an int field given 2.0 still works as before; strings and lists do not
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, kind)
