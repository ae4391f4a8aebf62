"""DDP training with two CPU processes (gloo), launched by torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from molgen.utils.checkpoint import load_checkpoint
from molgen.vae import MoleculeVAE

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="torch.distributed with gloo is needed",
)

ARGS = [
    "--representation", "selfies", "--epochs", "2", "--batch-size", "16", "--lr", "3e-3",
    "--latent-dim", "8", "--decoder-hidden", "32", "--decoder-layers", "1", "--encoder-hidden", "16",
    "--embed-dim", "16", "--kl-warmup", "10", "--val-fraction", "0.1", "--checkpoint-every", "4",
    "--device", "cpu", "--threads", "1", "--quiet", "--seed", "0",
]  # fmt: skip


def _train(tmp_path, tiny_smiles, name, nproc):
    data = tmp_path / "mols.smi"
    if not data.exists():
        data.write_text("\n".join(tiny_smiles[:120]) + "\n")
    out = tmp_path / name
    args = ["train", "--data", str(data), "--out", str(out), *ARGS]
    if nproc == 1:  # the same command in this process
        from molgen.cli import main

        assert main(args) == 0
        return out
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [*launcher, "-m", "molgen", *args], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_two_processes_stay_in_sync_and_write_a_single_process_checkpoint(tmp_path, tiny_smiles):
    ddp = _train(tmp_path, tiny_smiles, "ddp", nproc=2)
    single = _train(tmp_path, tiny_smiles, "single", nproc=1)

    # Ranks stay in sync: the trainer compares every rank's weights after each
    # epoch and raises if they differ, so a zero exit status already shows it.
    info = json.loads((ddp / "config.json").read_text())
    assert info["distributed"] == {"world_size": 2, "backend": "gloo"}
    # Same batches, same step and epoch counts, same files and checkpoint layout as one process.
    _, meta_ddp = load_checkpoint(ddp / "last.safetensors")
    _, meta_single = load_checkpoint(single / "last.safetensors")
    assert meta_ddp["global_step"] == meta_single["global_step"] > 0
    assert meta_ddp["epoch"] == meta_single["epoch"] == 2
    tensors_ddp, _ = load_checkpoint(ddp / "last.safetensors")
    tensors_single, _ = load_checkpoint(single / "last.safetensors")
    assert tensors_ddp.keys() == tensors_single.keys()
    assert not any(k.startswith("model.module.") for k in tensors_ddp)
    history = [json.loads(line) for line in (ddp / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2]
    assert history[1]["train_loss"] < history[0]["train_loss"]  # it learns
    # Both runs learn about equally from the same batches.
    single_history = [json.loads(line) for line in (single / "metrics.jsonl").read_text().splitlines()]
    assert history[-1]["val_loss"] == pytest.approx(single_history[-1]["val_loss"], rel=0.15)
    vae = MoleculeVAE.load(ddp, device="cpu")
    assert len(vae.sample(5, seed=0)) == 5
