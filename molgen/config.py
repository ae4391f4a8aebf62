"""Typed configs: dataclasses that read and write TOML and JSON, with errors that name the key's path.

Every config in molgen is a dataclass with :class:`ConfigMixin`. Reading one
checks every key against the dataclass, recursively: unknown keys, missing
required keys, values of the wrong type and ``Literal`` options outside their
set are :class:`~molgen.errors.ConfigError` messages that say where
(``train.toml: train.kl.kind must be one of 'constant', 'linear', not 'lin'``)
and what is allowed. Nested dataclass fields are built from nested tables.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Box(ConfigMixin):
    ...     size: float = 20.0
    >>> Box.from_dict({"size": 18})
    Box(size=18.0)
    >>> Box.from_dict({"sise": 18}, where="dock.toml: box")
    Traceback (most recent call last):
    ...
    molgen.errors.ConfigError: dock.toml: box: unknown key 'sise'; allowed: size
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import tomllib

from molgen.errors import ConfigError

__all__ = ["ConfigMixin", "from_table", "read_toml", "read_config_file"]

T = TypeVar("T")
C = TypeVar("C", bound="ConfigMixin")


class ConfigMixin:
    """``to_dict``/``from_dict`` and TOML/JSON files for a config dataclass; strict on reading."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/TOML-ready values (tuples become lists, paths strings, nested configs tables)."""
        return _plain(dataclasses.asdict(self))  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[C], data: Any, where: str | None = None) -> C:
        """The config with every key checked; ``where`` names the table in error messages."""
        return from_table(cls, data, where or getattr(cls, "_config_label", cls.__name__))

    @classmethod
    def from_file(cls: type[C], path: str | Path, section: str | None = None) -> C:
        """Read a ``.toml`` or ``.json`` file (or one ``section`` table of it)."""
        data = read_config_file(path)
        where = str(path)
        if section is not None:
            if section not in data:
                raise ConfigError(f"{path}: no [{section}] table; add one or check the file")
            data, where = data[section], f"{path}: {section}"
        return cls.from_dict(data, where)

    def to_toml(self) -> str:
        """The config as TOML text (``None`` values are left out: TOML has no null)."""
        import tomli_w

        return tomli_w.dumps(_drop_none(self.to_dict()))


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


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A ``.toml`` or ``.json`` config file as a dict (JSON: e.g. a run folder's ``config.json``)."""
    path = Path(path)
    if path.suffix.lower() != ".json":
        return read_toml(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; check the path")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc}); fix the file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object of settings, not {type(data).__name__}")
    return data


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
    values = {name: _convert(hints[name], value, f"{where}: {name}" if ":" not in where else f"{where}.{name}") for name, value in table.items()}
    try:
        return cls(**values)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _convert(kind: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        return _convert_union(kind, value, where)
    if origin is typing.Literal:
        allowed = typing.get_args(kind)
        if value not in allowed:
            raise ConfigError(f"{where} must be one of {', '.join(map(repr, allowed))}, not {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, not {value!r}")
        (item,) = typing.get_args(kind)[:1] or (Any,)
        items = [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or kind is Any:
        return value
    if dataclasses.is_dataclass(kind):
        return from_table(kind, value, where)
    return _convert_scalar(kind, value, where)


def _convert_union(kind: Any, value: Any, where: str) -> Any:
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


def _convert_scalar(kind: Any, value: Any, where: str) -> Any:
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
    if kind is Path:
        if not isinstance(value, (str, Path)):
            raise ConfigError(f"{where} must be a path (a string), not {value!r}")
        return Path(value)
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value
