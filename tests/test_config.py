"""The one config mechanism: strict, recursive, Literal-checked, TOML and JSON round trips."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import pytest
import typer
from typer.testing import CliRunner

from molgen.cli.options import ConfigFile, settings_from
from molgen.config import ConfigMixin
from molgen.errors import ConfigError


@dataclass
class Schedule(ConfigMixin):
    kind: Literal["constant", "linear"] = "linear"
    steps: int = 100


@dataclass
class Run(ConfigMixin):
    lr: float = 1e-3
    shape: tuple[int, int, int] = (1, 28, 28)
    schedule: Schedule = field(default_factory=Schedule)
    names: list[str] = field(default_factory=list)
    out: Optional[Path] = None


def test_nested_tables_build_nested_configs_and_convert_types():
    run = Run.from_dict({"lr": 1, "shape": [3, 8, 8], "schedule": {"kind": "constant"}, "out": "runs/a"})
    assert run == Run(lr=1.0, shape=(3, 8, 8), schedule=Schedule(kind="constant"), out=Path("runs/a"))
    assert isinstance(run.lr, float) and isinstance(run.shape, tuple)


@pytest.mark.parametrize(
    "data, message",
    [
        ({"schedule": {"kind": "cosine"}}, r"run.toml: schedule.kind must be one of 'constant', 'linear', not 'cosine'"),
        ({"schedule": {"stepz": 3}}, r"run.toml: schedule: unknown key 'stepz'; allowed: kind, steps"),
        ({"lrr": 3}, r"run.toml: unknown key 'lrr'"),
        ({"schedule": {"steps": 2.5}}, r"run.toml: schedule.steps must be an integer, not 2.5"),
        ({"names": "abc"}, r"run.toml: names must be a list"),
        ({"lr": True}, r"run.toml: lr must be a number, not True"),
    ],
)
def test_bad_keys_and_values_name_their_path(data, message):
    with pytest.raises(ConfigError, match=message):
        Run.from_dict(data, where="run.toml")


def test_toml_and_json_files_round_trip(tmp_path):
    run = Run(lr=0.5, shape=(1, 4, 4), schedule=Schedule(steps=7), names=["a", "b"])
    toml_file = tmp_path / "run.toml"
    toml_file.write_text(run.to_toml())
    assert Run.from_file(toml_file) == run
    json_file = tmp_path / "run.json"
    import json

    json_file.write_text(json.dumps({"config": run.to_dict()}))
    assert Run.from_file(json_file, section="config") == run


def test_missing_and_malformed_files_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        Run.from_file(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("lr = = 3\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        Run.from_file(bad)
    good = tmp_path / "good.toml"
    good.write_text("lr = 3\n")
    with pytest.raises(ConfigError, match=r"no \[train\] table"):
        Run.from_file(good, section="train")


def test_config_file_then_typed_flags_override_it(tmp_path):
    app = typer.Typer()
    seen = []

    @app.command()
    def run(ctx: typer.Context, config: ConfigFile = None, lr: float = typer.Option(1e-3), steps: int = typer.Option(100)):
        seen.append(settings_from(ctx, Run, config, {"lr": "lr", "steps": "schedule.steps"}))

    file = tmp_path / "run.toml"
    file.write_text('lr = 0.5\n[schedule]\nkind = "constant"\nsteps = 7\n')
    assert CliRunner().invoke(app, ["--config", str(file), "--steps", "9"]).exit_code == 0
    assert seen[-1] == Run(lr=0.5, schedule=Schedule(kind="constant", steps=9))  # the file, then the typed flag
    assert CliRunner().invoke(app, []).exit_code == 0
    assert seen[-1] == Run()  # no file, no flags: the config's defaults
    file.write_text('[schedule]\nkind = "cosine"\n')
    result = CliRunner().invoke(app, ["--config", str(file)])
    assert isinstance(result.exception, ConfigError) and "schedule.kind must be one of" in str(result.exception)
