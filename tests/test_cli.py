"""The command line end to end on a tiny model, and its one-line errors on bad input."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from molgen.cli import main
from molgen.vae import MoleculeVAE
from molgen.viz import can_draw_molecules


def run(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_sample_writes_only_rdkit_valid_molecules(tiny_run, tmp_path, capsys):
    out = tmp_path / "s.csv"
    code, _, err = run(capsys, "sample", "--model", tiny_run, "-n", 64, "-o", out, "--seed", 1, "--device", "cpu")
    assert code == 0, err
    frame = pd.read_csv(out)
    from rdkit import Chem

    assert len(frame) > 0 and all(Chem.MolFromSmiles(s) is not None for s in frame.smiles)
    assert "64 sampled" in err and "valid" in err
    bf16 = tmp_path / "b.csv"
    code, _, err = run(capsys, "sample", "--model", tiny_run, "-n", 64, "-o", bf16, "--seed", 1, "--device", "cpu", "--precision", "bf16")
    assert code == 0, err
    assert all(Chem.MolFromSmiles(s) is not None for s in pd.read_csv(bf16).smiles)


def test_sampling_is_reproducible_with_a_seed(tiny_run):
    vae = MoleculeVAE.load(tiny_run, device="cpu")
    assert vae.sample(40, seed=7) == vae.sample(40, seed=7)
    assert vae.sample(40, seed=7) != vae.sample(40, seed=8)


def test_encode_decode_reconstruct_interpolate(tiny_run, tiny_smiles, tmp_path, capsys):
    inp = tmp_path / "in.smi"
    inp.write_text("\n".join(tiny_smiles[:20] + ["not_a_molecule((("]) + "\n")
    z = tmp_path / "z.npy"
    code, _, err = run(capsys, "encode", "--model", tiny_run, "--input", inp, "-o", z, "--device", "cpu")
    assert code == 0, err
    arr = np.load(z)
    assert arr.shape == (20, 8)
    assert "skipped 1" in err
    code, out, err = run(capsys, "decode", "--model", tiny_run, "--latents", z, "--device", "cpu")
    assert code == 0 and len(out.strip().splitlines()) == 20
    code, out, _ = run(capsys, "reconstruct", "--model", tiny_run, "--input", inp, "--device", "cpu")
    assert code == 0 and "reconstruction accuracy" in out and "on 20 molecules" in out
    png = tmp_path / "path.png"
    picture = ["-o", png] if can_draw_molecules() else []  # RDKit draws where libXrender is installed
    code, out, _ = run(capsys, "interpolate", "--model", tiny_run, "CCO", "c1ccccc1O", "--steps", 4, *picture, "--device", "cpu")
    assert code == 0 and len(out.strip().splitlines()) == 4
    assert not picture or png.stat().st_size > 1000


def test_train_command_counts_bad_lines_and_writes_rejects(tmp_path, tiny_smiles, capsys):
    data = tmp_path / "mols.csv"
    rows = ["id,smiles"] + [f"{i},{s}" for i, s in enumerate(tiny_smiles[:60])] + ["99,C1CC", "100,xyz"]
    data.write_text("\n".join(rows) + "\n")
    rejects = tmp_path / "rejects.csv"
    code, _, err = run(
        capsys, "train", "--data", data, "--out", tmp_path / "run", "--epochs", 1, "--batch-size", 16,
        "--latent-dim", 4, "--decoder-hidden", 16, "--encoder-hidden", 8, "--embed-dim", 8,
        "--rejects", rejects, "--quiet", "--device", "cpu",
    )
    assert code == 0, err
    assert "kept 60" in err and "skipped 2" in err
    assert len(pd.read_csv(rejects)) == 2
    assert (tmp_path / "run" / "model.safetensors").exists()


@pytest.mark.parametrize(
    "make, args, message",
    [
        (lambda p: None, ["--input", "{p}/missing.smi"], "not found"),
        (lambda p: (p / "empty.smi").write_text(""), ["--input", "{p}/empty.smi"], "empty"),
        (lambda p: (p / "nocol.csv").write_text("a,b\n1,2\n3,4\n"), ["--input", "{p}/nocol.csv"], "column"),
        (lambda p: (p / "bad.gz").write_bytes(gzip.compress(b"CCO\nCCN\n" * 100)[:50]), ["--input", "{p}/bad.gz"], ""),
    ],
)
def test_bad_input_files_give_one_line_errors(tiny_run, tmp_path, capsys, make, args, message):
    make(tmp_path)
    args = [a.format(p=tmp_path) for a in args]
    code, out, err = run(capsys, "reconstruct", "--model", tiny_run, *args, "--device", "cpu")
    if message:
        assert code == 2
        assert "Traceback" not in err and message in err.lower()
        assert len([line for line in err.strip().splitlines() if line.startswith("error")]) == 1
    else:
        assert "Traceback" not in err


def test_foreign_and_corrupt_checkpoints_give_one_line_errors(tmp_path, capsys, tiny_run):
    foreign = tmp_path / "foreign.safetensors"
    save_file({"x": torch.zeros(3)}, str(foreign))
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes((tiny_run / "model.safetensors").read_bytes()[:1000])
    pickled = tmp_path / "model.pt"
    torch.save({"a": 1}, pickled)
    for path, message in ((foreign, "not a molgen checkpoint"), (corrupt, "truncated"), (pickled, "pickle"), (tmp_path, "holds no")):
        code, _, err = run(capsys, "sample", "--model", path, "-n", 2, "-o", tmp_path / "x.csv")
        assert code == 2 and message in err and "Traceback" not in err
    training_state = tiny_run / "last.safetensors"
    code, _, err = run(capsys, "sample", "--model", training_state, "-n", 2, "-o", tmp_path / "x.csv")
    assert code == 2 and "not a molecular VAE" in err


def test_bad_options_give_one_line_errors(tiny_run, tmp_path, capsys):
    code, _, err = run(capsys, "sample", "--model", tiny_run, "--temperature", 0, "-n", 2, "-o", tmp_path / "x.csv", "--device", "cpu")
    assert code == 2 and "temperature" in err
    code, _, err = run(capsys, "sample", "--model", tiny_run, "--device", "tpu", "-n", 2, "-o", tmp_path / "x.csv")
    assert code == 2 and "unknown device" in err
    code, _, err = run(capsys, "sample", "--model", tiny_run, "--precision", "fp8", "-n", 2, "-o", tmp_path / "x.csv", "--device", "cpu")
    assert code == 2 and "unknown precision" in err and not (tmp_path / "x.csv").exists()
    code, _, err = run(capsys, "interpolate", "--model", tiny_run, "CCO", "C1CC", "--device", "cpu")
    assert code == 2 and "invalid SMILES" in err


def test_info_shows_the_checkpoint(tiny_run, capsys):
    code, out, _ = run(capsys, "info", "--model", tiny_run)
    assert code == 0 and '"kind": "seq_vae"' in out and '"latent_dim": 8' in out


def test_the_command_line_loads_torch_scipy_and_botorch_only_when_a_command_needs_them():
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys, molgen.cli, molgen.optimize as o, molgen.image as i\n"
        "heavy = {'torch', 'scipy.stats', 'botorch'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
        "o.BOConfig, i.ImageTrainingConfig\n"  # the lazy names still resolve
        "assert 'torch' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])
