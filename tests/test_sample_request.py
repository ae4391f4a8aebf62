"""The sampling request and its three faces: Python (SampleRequest + sample_to_file), flags, and --config files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import typer
from rdkit import Chem

from molgen.cli import app, main
from molgen.cli.sample import SAMPLE_FLAGS
from molgen.errors import ConfigError
from molgen.generate import (
    Design,
    SampleRequest,
    Steering,
    sample,
    sample_to_file,
    stream,
)
from molgen.vae import MoleculeVAE

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _run(capsys, *args) -> tuple[int, str]:
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def test_the_example_config_runs_and_flags_override_it(tiny_run, tmp_path, capsys):
    out = tmp_path / "c.csv"
    code, err = _run(capsys, "sample", "--config", CONFIGS / "sample.toml", "--model", tiny_run, "-n", 20, "-o", out, "--device", "cpu")
    assert code == 0, err
    assert "20 sampled" in err and out.read_text().startswith("smiles,mw,")


def test_a_config_file_gives_the_molecules_its_flags_would(tiny_run, tmp_path, capsys):
    config = tmp_path / "s.toml"
    config.write_text('n = 30\nseed = 4\ntemperature = 0.7\ntop_k = 5\nproperties = false\n[steering]\nstrength = 2.0\n')
    common = ["--model", tiny_run, "--device", "cpu"]
    assert _run(capsys, "sample", "--config", config, "-n", 12, "-o", tmp_path / "a.smi", *common)[0] == 0
    flags = ["-n", 12, "--seed", 4, "--temperature", 0.7, "--top-k", 5, "--no-properties"]
    assert _run(capsys, "sample", *flags, "-o", tmp_path / "b.smi", *common)[0] == 0
    assert (tmp_path / "a.smi").read_text() == (tmp_path / "b.smi").read_text()
    drawn = sample(MoleculeVAE.load(tiny_run, device="cpu"), SampleRequest(n=12, seed=4, temperature=0.7, top_k=5))
    assert (tmp_path / "a.smi").read_text().split() == [s for s in drawn if s]  # -n 12 beat the file's 30


def test_a_bad_config_key_is_one_line_naming_it(tiny_run, tmp_path, capsys):
    config = tmp_path / "bad.toml"
    config.write_text("[steering]\nstrenght = 2.0\n")
    code, err = _run(capsys, "sample", "--config", config, "--model", tiny_run, "-n", 2, "-o", tmp_path / "x.smi")
    assert code == 2 and "steering: unknown key 'strenght'" in err and "Traceback" not in err and not (tmp_path / "x.smi").exists()
    config.write_text('prior = "gmm"\n')
    code, err = _run(capsys, "sample", "--config", config, "--model", tiny_run, "-n", 2, "-o", tmp_path / "x.smi")
    assert code == 2 and "prior must be one of" in err


def test_flag_defaults_are_the_request_defaults():
    command = typer.main.get_group(app).commands["sample"]
    defaults = SampleRequest().to_dict()
    checked = 0
    for param in command.params:
        target = SAMPLE_FLAGS.get(param.name)
        if not isinstance(target, str):
            continue
        value = defaults
        for key in target.split("."):
            value = value[key]
        default = list(param.default) if getattr(param, "multiple", False) else param.default
        assert default == value, f"--{param.name}: flag default {default!r}, SampleRequest default {value!r}"
        checked += 1
    assert checked == sum(isinstance(t, str) for t in SAMPLE_FLAGS.values())


def test_three_lines_of_python_write_what_the_command_writes(tiny_run, tmp_path, capsys):
    assert _run(capsys, "sample", "--model", tiny_run, "-n", 40, "--seed", 2, "--unique", "-o", tmp_path / "cli.csv", "--device", "cpu")[0] == 0
    vae = MoleculeVAE.load(tiny_run, device="cpu")
    report = sample_to_file(vae, SampleRequest(n=40, seed=2, unique=True), tmp_path / "py.csv", show_progress=False)
    assert (tmp_path / "py.csv").read_bytes() == (tmp_path / "cli.csv").read_bytes()
    assert report.written.written == len((tmp_path / "py.csv").read_text().splitlines()) - 1
    assert "40 sampled" in report.summary() and not report.interrupted


def test_unique_keeps_first_occurrences_of_valid_molecules(tiny_run):
    vae = MoleculeVAE.load(tiny_run, device="cpu")
    everything = sample(vae, SampleRequest(n=60, seed=1, temperature=0.3, n_jobs=1))
    distinct = sample(vae, SampleRequest(n=60, seed=1, temperature=0.3, n_jobs=1, unique=True))
    assert distinct == list(dict.fromkeys(s for s in everything if s))
    assert len(distinct) < len([s for s in everything if s])  # a cold temperature repeats itself: the test can fail


def test_a_shard_request_draws_its_share_with_its_own_seed(tiny_run):
    vae = MoleculeVAE.load(tiny_run, device="cpu")
    parts = [[s for c in stream(vae, SampleRequest(n=25, seed=3, shard=f"{i}/3", n_jobs=1)) for s in c] for i in range(3)]
    assert [len(p) for p in parts] == [9, 8, 8]
    local = SampleRequest(n=25, seed=3, shard="1/3").local()
    assert parts[1] == sample(vae, local) and local.shard is None and local.n == 8


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (dict(n=-1), "whole number >= 0"),
        (dict(prior="gmm"), "prior must be one of"),
        (dict(guidance=-1.0), "guidance must be"),
        (dict(temperature=0.0), "temperature must be > 0"),
        (dict(top_p=1.5), "top_p"),
        (dict(precision="fp8"), "unknown precision"),
        (dict(shard="3/2"), "shard"),
        (dict(steering={"predictor": "p.safetensors"}), "needs a property request"),
        (dict(steering={"candidates": 2}), "needs --steer"),
        (dict(design={"radius": 0.5}), "apply with --near"),
    ],
)
def test_a_bad_request_is_refused_when_made(fields, message):
    with pytest.raises(ConfigError, match=message):
        SampleRequest.from_dict(fields)


def test_a_request_round_trips_through_toml():
    request = SampleRequest(n=5, condition="logp=2", steering=Steering(Path("p.safetensors"), 2.0, 3), design=Design(near=["CCO"], radius=0.4))
    import tomllib

    assert SampleRequest.from_dict(tomllib.loads(request.to_toml())) == request


def test_near_file_and_core_seeds_reach_the_design_request(tiny_run, tmp_path, capsys):
    leads = tmp_path / "leads.smi"
    leads.write_text("CCOc1ccccc1\nCC(=O)Nc1ccccc1\n")
    out = tmp_path / "near.csv"
    common = ["--model", tiny_run, "--device", "cpu", "-n", 4, "--seed", 1]
    code, err = _run(capsys, "sample", *common, "--near-file", leads, "--near", "c1ccccc1O", "-o", out)
    assert code == 0, err
    frame = pd.read_csv(out)
    assert list(frame.columns[:2]) == ["smiles", "similarity"] and frame.similarity.is_monotonic_decreasing and "wrote" in err
    code, err = _run(capsys, "sample", *common, "--core-seeds", leads, "-o", out)
    assert code == 2 and "apply with a substructure" in err
    code, err = _run(capsys, "sample", *common, "--substructure", "c1ccccc1", "--core-seeds", leads, "-o", tmp_path / "core.smi")
    assert code == 0, err
    assert all(Chem.MolFromSmiles(s).HasSubstructMatch(Chem.MolFromSmarts("c1ccccc1")) for s in (tmp_path / "core.smi").read_text().split())
