"""Typed training settings: --config FILE for molgen train, config.json that repeats a run, the example config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from safetensors.torch import load_file

from molgen.cli import main
from molgen.errors import ConfigError
from molgen.vae.train_config import (
    DataOptions,
    KLOptions,
    ModelOptions,
    OptimOptions,
    VAETrainingConfig,
    VAETrainSettings,
)

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--latent-dim", "8", "--decoder-hidden", "32", "--encoder-hidden", "16", "--embed-dim", "16", "--decoder-layers", "1"]


def _train(capsys, *args) -> None:
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    assert code == 0, err


@pytest.fixture()
def mols(tmp_path, tiny_smiles) -> Path:
    path = tmp_path / "mols.smi"
    path.write_text("\n".join(tiny_smiles[:160]) + "\n")
    return path


def test_training_again_from_a_runs_config_json_gives_the_same_weights(tmp_path, mols, capsys):
    _train(capsys, "train", "--data", mols, "--out", tmp_path / "a", "--epochs", 1, "--batch-size", 32, "--limit", 120, *TINY, "--quiet", "--device", "cpu", "--seed", 3)
    record = json.loads((tmp_path / "a" / "config.json").read_text())
    assert record["data"]["limit"] == 120 and record["data"]["path"] == str(mols) and record["config"]["train"]["seed"] == 3
    assert "out" not in record["run"]
    _train(capsys, "train", "--config", tmp_path / "a" / "config.json", "--out", tmp_path / "b", "--quiet")
    a, b = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert a.keys() == b.keys() and all(a[k].numpy().tobytes() == b[k].numpy().tobytes() for k in a)
    again = json.loads((tmp_path / "b" / "config.json").read_text())
    assert again["config"] == record["config"] and again["data"] == record["data"]
    # A flag overrides the file: another seed trains other weights.
    _train(capsys, "train", "--config", tmp_path / "a" / "config.json", "--out", tmp_path / "c", "--seed", 4, "--quiet")
    c = load_file(tmp_path / "c" / "model.safetensors")
    assert json.loads((tmp_path / "c" / "config.json").read_text())["config"]["train"]["seed"] == 4
    assert any(a[k].numpy().tobytes() != c[k].numpy().tobytes() for k in a)
    # Resuming needs only the folder: the data come from its config.json (a finished run has nothing left to do).
    _train(capsys, "train", "--out", tmp_path / "a", "--resume", "--quiet")


def test_the_example_config_runs_with_tiny_overrides(tmp_path, mols, capsys):
    _train(
        capsys, "train", "--config", ROOT / "configs" / "train.toml", "--data", mols, "--out", tmp_path / "ex",
        "--epochs", 1, "--batch-size", 64, *TINY, "--quiet", "--device", "cpu",
    )  # fmt: skip
    record = json.loads((tmp_path / "ex" / "config.json").read_text())
    assert record["config"]["model"] == {"arch": "gru", "latent_dim": 8, "decoder_hidden": 32, "decoder_layers": 1, "encoder_hidden": 16, "encoder_layers": 1, "embed_dim": 16}
    assert record["config"]["kl"] == {"kind": "linear", "beta": 0.5, "warmup_steps": 2000, "period": 4000}


def test_a_bad_key_in_the_file_names_its_path(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[train]\nlr_schedule = "linear"\n')
    assert main(["train", "--config", str(bad), "--out", str(tmp_path / "x")]) != 0
    assert "train.lr_schedule must be one of 'constant', 'cosine'" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="kl: unknown key 'warmup'"):
        VAETrainSettings.from_dict({"kl": {"warmup": 10}})
    with pytest.raises(ConfigError, match="no run folder"):
        from molgen.vae.train_run import train_from_settings

        train_from_settings(VAETrainSettings())


def test_flag_defaults_equal_the_settings_defaults():
    from molgen.cli._app import app
    from molgen.cli.train import TRAIN_FLAGS

    command = typer.main.get_command(app).commands["train"]  # type: ignore[attr-defined]
    defaults = VAETrainSettings().to_dict()
    checked = 0
    for param in command.params:
        target = TRAIN_FLAGS.get(param.name)
        if isinstance(target, str):
            value = defaults
            for key in target.split("."):
                value = value.get(key) if isinstance(value, dict) else None
            assert param.default == value, f"--{param.name} defaults to {param.default!r}, the settings to {value!r}"
            checked += 1
    assert checked == sum(isinstance(t, str) for t in TRAIN_FLAGS.values()) >= 35


def test_typed_sub_configs_read_dicts_and_write_only_what_is_set():
    config = VAETrainingConfig(model={"latent_dim": 8}, train={"epochs": 2, "grad_clip": 1.0}, kl={"kind": "constant"})
    assert isinstance(config.model, ModelOptions) and isinstance(config.train, OptimOptions) and isinstance(config.kl, KLOptions)
    table = config.to_dict()
    assert table["model"] == {"latent_dim": 8}
    assert table["train"]["grad_clip"] == 1.0 and "weight_decay" not in table["train"]
    assert config.train.trainer_config().grad_clip == 1.0
    assert VAETrainingConfig.from_dict(table) == config
    resolved, shape = config.resolved()
    assert (resolved.representation, resolved.max_length, resolved.model.arch) == ("selfies", 100, "gru") and shape.inherited == []
    with pytest.raises(ConfigError, match="model: arch must be one of"):
        VAETrainingConfig(model={"arch": "lstm"})


def test_an_older_config_json_is_read(tmp_path):
    old = {
        "config": {"representation": "smiles", "model": {"latent_dim": 8}, "train": {"epochs": 1}, "kl": {"kind": "linear", "beta": 0.5, "warmup_steps": 10},
                   "free_bits": 0.0, "word_dropout": 0.1, "val_fraction": 0.05, "max_length": 80, "conditions": []},
        "vocab": {"tokens": []}, "seed": 0, "environment": {}, "model_config": {}, "parameters": 1,
        "data": {"data": "mols.smi", "n_train": 10, "sha256": "x"}, "init_from": {"path": "default", "vocab_size": 30},
    }  # fmt: skip
    path = tmp_path / "config.json"
    path.write_text(json.dumps(old))
    settings = VAETrainSettings.from_file(path)
    assert settings.data == DataOptions(path=Path("mols.smi"))
    assert settings.run.init_from == "default" and settings.representation == "smiles" and settings.max_length == 80
    assert settings.kl.period == 20
