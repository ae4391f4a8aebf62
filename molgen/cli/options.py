"""Options shared by the commands, and ``--config FILE``: a typed config file with flags as overrides.

A command that takes ``--config`` builds its settings in three layers: the
config dataclass's defaults, then the file's keys (checked strictly, nested
tables by path), then every flag the user typed on the command line. A flag
left at its default does not override the file, so ``molgen train --config
runs/a/config.json --epochs 1`` is run ``a`` with one epoch.

    @app.command()
    def train(ctx: typer.Context, config: ConfigFile = None, epochs: int = typer.Option(10)):
        settings = settings_from(ctx, TrainRun, config, {"epochs": "train.epochs"})
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Callable, Optional, TypeVar, Union

import typer

from molgen.config import ConfigMixin, read_config_file
from molgen.errors import ConfigError

__all__ = ["ConfigFile", "Flag", "settings_from", "set_path", "typed_on_command_line"]

C = TypeVar("C", bound=ConfigMixin)

#: ``--config FILE``: every command that reads one declares it with this type.
ConfigFile = Annotated[
    Optional[Path],
    typer.Option(
        "--config", help="TOML (or JSON, e.g. a run folder's config.json) file of settings; flags typed on the command line override it (examples in configs/)"
    ),
]

#: Where a flag's value goes in the config: a dotted path, or a function that writes it into the nested dict.
Flag = Union[str, Callable[[dict, Any], None]]


def typed_on_command_line(ctx: typer.Context, name: str) -> bool:
    """Whether the user gave the parameter ``name`` (a flag or its environment variable), rather than its default."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")


def set_path(data: dict, dotted: str, value: Any) -> None:
    """``data[a][b][c] = value`` for ``dotted = "a.b.c"``, creating the tables on the way."""
    *tables, key = dotted.split(".")
    for name in tables:
        data = data.setdefault(name, {})
        if not isinstance(data, dict):
            raise ConfigError(f"{'.'.join(tables)} must be a table of keys, not {data!r}")
    data[key] = value


def settings_from(
    ctx: typer.Context, cls: type[C], config: Path | None, flags: dict[str, Flag], section: str | None = None
) -> C:
    """The command's settings: ``cls`` defaults < ``config`` file (or its ``section`` table) < flags typed by the user.

    ``flags`` maps parameter names to where they go in the config. The result is
    checked as a whole by ``cls.from_dict``: a bad key or value in the file is a
    one-line error that names the file and the key's path.
    """
    data: dict = {}
    where = "command line"
    if config is not None:
        data = read_config_file(config)
        where = str(config)
        if section is not None:
            if not isinstance(data.get(section), dict):
                raise ConfigError(f"{config}: no [{section}] table; add one or check the file")
            data, where = data[section], f"{config}: {section}"
    for name, target in flags.items():
        if typed_on_command_line(ctx, name):
            if callable(target):
                target(data, ctx.params[name])
            else:
                set_path(data, target, ctx.params[name])
    return cls.from_dict(data, where=where)
