"""Options shared by the commands, and ``--config FILE``: a typed config file with flags as overrides.

Every option that more than one command takes is declared here once, as an
``Annotated`` type, so its name, help and default read the same everywhere:

    def encode(model: ModelOpt = None, device: DeviceOpt = "auto", seed: SeedOpt = 0): ...

A command that needs a more specific help text keeps the shared type and
adds to it: ``described(StrictOpt, STRICT_HELP + "; applies to --input")``.

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

import copy
from pathlib import Path
from typing import Annotated, Any, Callable, Optional, TypeVar, Union, get_args

import typer

from molgen.config import ConfigMixin, read_config_file
from molgen.errors import ConfigError

__all__ = [
    "ConfigFile", "DeviceOpt", "Flag", "IntDivOpt", "NJobsOpt", "ModelOpt", "OutputOpt", "QuietOpt", "RejectsOpt",
    "SeedOpt", "ShardOpt", "SmilesColumnOpt", "StrictOpt", "ThreadsOpt", "described", "settings_from", "set_path",
    "typed_on_command_line", "MODEL_HELP", "STRICT_HELP", "REJECTS_HELP", "SHARD_HELP", "INTDIV_HELP",
]  # fmt: skip

C = TypeVar("C", bound=ConfigMixin)

#: ``--config FILE``: every command that reads one declares it with this type.
ConfigFile = Annotated[
    Optional[Path],
    typer.Option(
        "--config", help="TOML (or JSON, e.g. a run folder's config.json) file of settings; flags typed on the command line override it (examples in configs/)"
    ),
]

MODEL_HELP = "checkpoint file, run folder or pretrained model name (default, zinc; see molgen info --list); default: default"
STRICT_HELP = "stop at the first invalid input line, naming it (default: skip and count bad lines)"
REJECTS_HELP = "write every skipped input line (line number, text, reason) to this CSV"
SHARD_HELP = "do only part i of N of the job (0-based, e.g. $SLURM_ARRAY_TASK_ID/N); combine the parts with molgen merge"
INTDIV_HELP = (
    "IntDiv over every pair of molecules up to this many distinct ones; above it, estimated from 20,000 sampled "
    "molecules against all (linear, not quadratic, cost; the report gives the standard errors). 0: always every pair"
)

#: ``--model``: a molecule VAE by path or pretrained name (None: the default model).
ModelOpt = Annotated[Optional[Path], typer.Option(help=MODEL_HELP)]
#: ``--device``: where torch runs.
DeviceOpt = Annotated[str, typer.Option(help="torch device: auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps")]
#: ``--seed``: the same seed on the same device gives the same result.
SeedOpt = Annotated[int, typer.Option(help="random seed (same seed, same device: same result)")]
#: ``--threads``: torch's CPU threads.
ThreadsOpt = Annotated[int, typer.Option(help="CPU threads for torch (0: torch's default)")]
#: ``--n-jobs``: worker processes for RDKit.
NJobsOpt = Annotated[Optional[int], typer.Option(help="worker processes for RDKit work (default: all CPUs)")]
#: ``--quiet``: no progress bar.
QuietOpt = Annotated[bool, typer.Option(help="no progress bar")]
#: ``--strict``: the first bad input line is an error instead of a skip.
StrictOpt = Annotated[bool, typer.Option(help=STRICT_HELP)]
#: ``--rejects FILE``: where the skipped input lines go.
RejectsOpt = Annotated[Optional[Path], typer.Option(help=REJECTS_HELP)]
#: ``--smiles-column``: the column of a CSV input that holds the SMILES.
SmilesColumnOpt = Annotated[
    Optional[str], typer.Option(help="CSV input: the column holding the SMILES (default: found by name, e.g. smiles, or by content)")
]
#: ``-o/--output``: a command's main output (give it its own help with :func:`described`).
OutputOpt = Annotated[Path, typer.Option("-o", "--output", help="output file or folder")]
#: ``--shard i/N``: one part of a job split across machines.
ShardOpt = Annotated[Optional[str], typer.Option(help=SHARD_HELP)]
#: ``--intdiv-exact-max``: where IntDiv switches from every pair to an estimate.
IntDivOpt = Annotated[int, typer.Option(help=INTDIV_HELP)]


def described(option_type: Any, help: str) -> Any:  # noqa: A002 - typer's own name
    """The shared ``option_type`` with this command's ``help``: ``output: described(OutputOpt, "report folder") = Path("report")``."""
    base, info, *_ = get_args(option_type)
    info = copy.copy(info)
    info.help = help
    return Annotated[base, info]


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
            value = ctx.params[name]
            value = str(value) if isinstance(value, Path) else list(value) if isinstance(value, tuple) else value
            if callable(target):
                target(data, value)
            else:
                set_path(data, target, value)
    return cls.from_dict(data, where=where)
