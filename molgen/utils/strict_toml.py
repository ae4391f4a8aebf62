"""Typed dataclass configs read from TOML tables, with errors that name the key's path.

:func:`from_table` builds a dataclass from one TOML table: unknown keys, missing
required keys and values of the wrong type are :class:`~molgen.errors.ConfigError`
messages that say where (``scoring.toml: component[2].transform: unknown key 'hgh'``)
and what is allowed. Nested dataclass fields are built from nested tables.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Box:
    ...     size: float = 20.0
    >>> from_table(Box, {"size": 18}, "box")
    Box(size=18.0)
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from molgen.errors import ConfigError

__all__ = ["from_table", "read_toml"]

T = TypeVar("T")


def read_toml(path: str | Path) -> dict[str, Any]:
    """The parsed TOML file; a missing or malformed file is a one-line ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; check the path")
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}); fix the file") from None


def from_table(cls: type[T], table: Any, where: str, also_allowed: tuple[str, ...] = ()) -> T:
    """``cls(**table)`` with every key checked; ``where`` names the table in error messages
    (``also_allowed``: keys of the same table that the caller reads itself, listed in the message)."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table of keys, got {type(table).__name__} {table!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = [k for k in table if k not in fields]
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join([*also_allowed, *fields])}")
    missing = [n for n, f in fields.items() if n not in table and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{where}: missing key {missing[0]!r}")
    hints = typing.get_type_hints(cls)
    values = {name: _convert(hints[name], value, f"{where}.{name}") for name, value in table.items()}
    try:
        return cls(**values)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _convert(kind: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        if value is None and len(options) < len(typing.get_args(kind)):
            return None
        errors = []
        for option in options:
            try:
                return _convert(option, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0])
    if origin is typing.Literal:
        allowed = typing.get_args(kind)
        if value not in allowed:
            raise ConfigError(f"{where} must be one of {', '.join(map(repr, allowed))}, not {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list, not {value!r}")
        (item,) = typing.get_args(kind)[:1] or (Any,)
        return [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(kind):
        return from_table(kind, value, where)
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, not {value!r}")
        return value
    if kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
            raise ConfigError(f"{where} must be {'an integer' if kind is int else 'a number'}, not {value!r}")
        return kind(value)
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, not {value!r}")
        return value
    return value
