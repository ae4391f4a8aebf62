"""The Trainer through the molecular VAE: outputs, exact resume, divergence handling, warm start."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import TINY_ARCH

from molgen.errors import MolgenError
from molgen.train import Trainer, TrainingDivergedError
from molgen.utils.checkpoint import load_checkpoint
from molgen.vae import MoleculeVAE
from molgen.vae.training import VAETrainingConfig, train_vae


def _config(**train):
    base = dict(epochs=2, batch_size=32, lr=3e-3, seed=0, checkpoint_every=3)
    base.update(train)
    return VAETrainingConfig(
        representation="selfies",
        model=TINY_ARCH,
        train=base,
        kl=dict(kind="linear", beta=0.5, warmup_steps=10),
        val_fraction=0.1,
    )


def test_run_folder_contents(tiny_run):
    names = {p.name for p in tiny_run.iterdir()}
    assert {"config.json", "model.safetensors", "last.safetensors", "metrics.jsonl", "metrics.csv", "loss_curve.png", "train.smi"} <= names
    info = json.loads((tiny_run / "config.json").read_text())
    assert info["seed"] == 0 and info["environment"]["device"] == "cpu" and "torch" in info["environment"]
    history = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2]
    assert history[1]["train_loss"] < history[0]["train_loss"]
    assert all(k in history[0] for k in ("val_loss", "val_recon", "val_kl", "train_beta"))
    vae = MoleculeVAE.load(tiny_run, device="cpu")
    assert vae.meta["train_set"] == "train.smi" and vae.meta["n_train"] == len((tiny_run / "train.smi").read_text().split())


def _weights(path):
    tensors, _ = load_checkpoint(path / "last.safetensors")
    return {k: v for k, v in tensors.items() if k.startswith("model.")}


def test_interrupted_and_resumed_run_matches_uninterrupted(tmp_path, tiny_smiles, monkeypatch):
    smiles = tiny_smiles[:200]
    train_vae(smiles, tmp_path / "full", _config(), device="cpu", show_progress=False)

    original = Trainer._train_step
    calls = {"n": 0}

    def crash_at_step_8(self, batch):
        calls["n"] += 1
        if calls["n"] == 8:
            raise KeyboardInterrupt  # stands in for kill -9 between checkpoints (last one at step 6)
        return original(self, batch)

    monkeypatch.setattr(Trainer, "_train_step", crash_at_step_8)
    with pytest.raises(KeyboardInterrupt):
        train_vae(smiles, tmp_path / "cut", _config(), device="cpu", show_progress=False)
    monkeypatch.setattr(Trainer, "_train_step", original)
    _, meta = load_checkpoint(tmp_path / "cut" / "last.safetensors")
    assert meta["global_step"] == 6
    train_vae(smiles, tmp_path / "cut", None, device="cpu", resume=True, show_progress=False)

    full, resumed = _weights(tmp_path / "full"), _weights(tmp_path / "cut")
    assert full.keys() == resumed.keys()
    for key in full:
        assert torch.equal(full[key], resumed[key]), key


def test_the_optimizer_is_fused_and_resumes_states_saved_without_it(tmp_path, tiny_smiles, monkeypatch):
    import molgen.train.trainer as trainer_module

    smiles = tiny_smiles[:200]
    seen = []
    original_step = Trainer._train_step

    def record(self, batch):
        seen.append(self.optimizer.param_groups[0]["fused"])
        return original_step(self, batch)

    monkeypatch.setattr(Trainer, "_train_step", record)
    train_vae(smiles, tmp_path / "now", _config(epochs=1), device="cpu", show_progress=False)
    assert seen and all(f is True for f in seen)

    # A run started by a molgen whose AdamW was not fused (its saved state says so) resumes exactly.
    monkeypatch.setattr(trainer_module, "fused_optimizer", lambda device: None)
    train_vae(smiles, tmp_path / "full", _config(), device="cpu", show_progress=False)
    calls = {"n": 0}

    def crash_at_step_8(self, batch):
        calls["n"] += 1
        if calls["n"] == 8:
            raise KeyboardInterrupt
        return original_step(self, batch)

    monkeypatch.setattr(Trainer, "_train_step", crash_at_step_8)
    with pytest.raises(KeyboardInterrupt):
        train_vae(smiles, tmp_path / "cut", _config(), device="cpu", show_progress=False)
    monkeypatch.undo()
    train_vae(smiles, tmp_path / "cut", None, device="cpu", resume=True, show_progress=False)
    full, resumed = _weights(tmp_path / "full"), _weights(tmp_path / "cut")
    for key in full:
        assert torch.equal(full[key], resumed[key]), key


def test_refuses_to_overwrite_or_resume_nothing(tmp_path, tiny_smiles, tiny_run):
    with pytest.raises(MolgenError, match="already holds a training run"):
        train_vae(tiny_smiles[:50], tiny_run, _config(epochs=1), device="cpu", show_progress=False)
    with pytest.raises(MolgenError, match="nothing to resume"):
        train_vae(tiny_smiles[:50], tmp_path / "empty", None, device="cpu", resume=True, show_progress=False)


def test_nan_loss_stops_with_diagnosis_and_no_poisoned_checkpoint(tmp_path, tiny_smiles, monkeypatch):
    from molgen.vae import training as vae_training

    original = vae_training.SeqVAETask.step

    def poisoned(self, batch, global_step):
        loss, logs = original(self, batch, global_step)
        return (loss * float("nan") if global_step == 4 else loss), logs

    monkeypatch.setattr(vae_training.SeqVAETask, "step", poisoned)
    with pytest.raises(TrainingDivergedError, match=r"step 4 .*loss is nan at lr=0.003; batch: 32 train molecules"):
        train_vae(tiny_smiles[:200], tmp_path / "nan", _config(), device="cpu", show_progress=False)
    tensors, meta = load_checkpoint(tmp_path / "nan" / "last.safetensors")
    assert meta["global_step"] == 3
    assert all(torch.isfinite(v).all() for k, v in tensors.items() if v.is_floating_point())


def test_same_seed_same_weights(tmp_path, tiny_smiles):
    for name in ("a", "b"):
        train_vae(tiny_smiles[:100], tmp_path / name, _config(epochs=1), device="cpu", show_progress=False)
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_bf16_autocast_training_on_cpu(tmp_path, tiny_smiles):
    from molgen.errors import ConfigError

    seen = []
    original = torch.nn.Linear.forward
    # Record the dtype the model's layers compute in during training.
    def spy(self, x):
        out = original(self, x)
        seen.append(out.dtype)
        return out

    try:
        torch.nn.Linear.forward = spy
        vae, result = train_vae(tiny_smiles[:100], tmp_path / "bf", _config(epochs=1, precision="bf16"), device="cpu", show_progress=False)
    finally:
        torch.nn.Linear.forward = original
    assert torch.bfloat16 in seen
    # The master weights stay in fp32 and the run is a normal run (history, model file).
    assert all(p.dtype == torch.float32 for p in vae.model.parameters())
    history = [json.loads(line) for line in (tmp_path / "bf" / "metrics.jsonl").read_text().splitlines()]
    assert history and all(torch.isfinite(torch.tensor(h["val_loss"])) for h in history)
    again, _ = train_vae(tiny_smiles[:100], tmp_path / "bf2", _config(epochs=1, precision="bf16"), device="cpu", show_progress=False)
    assert all(torch.equal(a, b) for a, b in zip(vae.model.state_dict().values(), again.model.state_dict().values()))
    with pytest.raises(ConfigError, match="CUDA"):
        train_vae(tiny_smiles[:100], tmp_path / "f16", _config(epochs=1, precision="fp16"), device="cpu", show_progress=False)
    assert sorted(p.name for p in (tmp_path / "f16").iterdir()) == []  # refused before writing the run (the lock file goes too)
    with pytest.raises(ConfigError, match="precision"):
        _config(precision="fp8")


def test_auto_precision_is_bf16_only_where_the_cpu_has_it(monkeypatch):
    import molgen.utils.runtime as runtime
    from molgen.train.trainer import TrainConfig

    cpu = torch.device("cpu")
    monkeypatch.setattr(runtime, "native_bf16", lambda device: True)
    assert TrainConfig().autocast_dtype(cpu) is torch.bfloat16
    assert TrainConfig(amp=False).autocast_dtype(cpu) is None
    assert TrainConfig(precision="fp32").autocast_dtype(cpu) is None
    monkeypatch.setattr(runtime, "native_bf16", lambda device: False)
    assert TrainConfig().autocast_dtype(cpu) is None
    assert TrainConfig(precision="bf16").autocast_dtype(cpu) is torch.bfloat16


def test_warm_start_copies_weights_and_checks_architecture(tmp_path, tiny_smiles, tiny_run):
    cfg = _config(epochs=1, lr=1e-12)
    vae, _ = train_vae(tiny_smiles[:64], tmp_path / "warm", cfg, device="cpu", show_progress=False, init_from=tiny_run)
    source = MoleculeVAE.load(tiny_run, device="cpu")
    for (name, p), q in zip(vae.model.named_parameters(), source.model.parameters()):
        assert torch.allclose(p, q, atol=1e-6), name
    bigger = VAETrainingConfig(representation="selfies", model=dict(TINY_ARCH, latent_dim=9), train=dict(epochs=1))
    with pytest.raises(MolgenError, match="architecture"):
        train_vae(tiny_smiles[:64], tmp_path / "bad", bigger, device="cpu", show_progress=False, init_from=tiny_run)


def test_cpu_time_budget_stops_after_the_step_that_exceeds_it(tmp_path, tiny_smiles, monkeypatch):
    import time as time_module

    clock = {"t": 0.0}

    def fake_process_time():
        clock["t"] += 10.0  # every reading: 10 CPU-seconds later
        return clock["t"]

    monkeypatch.setattr(time_module, "process_time", fake_process_time)
    # The clock moves 10 s per reading (one at the start, one per step, maybe a few elsewhere):
    # a 30 s budget stops the run after a handful of its 30 steps.
    _, result = train_vae(
        tiny_smiles[:200], tmp_path / "run", _config(epochs=5, max_cpu_minutes=0.5), device="cpu", show_progress=False
    )
    assert result.stopped_because == "time budget"
    assert 1 <= result.steps <= 4


def test_sigterm_stops_cleanly_with_model_and_resumable_state(tmp_path, tiny_smiles, monkeypatch):
    import os
    import signal

    original = Trainer._train_step
    calls = {"n": 0}

    def terminate_during_step_3(self, batch):
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)  # as a scheduler would; the step still completes
        return original(self, batch)

    monkeypatch.setattr(Trainer, "_train_step", terminate_during_step_3)
    before = signal.getsignal(signal.SIGTERM)
    _, result = train_vae(tiny_smiles[:200], tmp_path / "run", _config(), device="cpu", show_progress=False)
    assert signal.getsignal(signal.SIGTERM) == before  # handler restored
    assert result.stopped_because == "terminated" and result.steps == 3
    assert (tmp_path / "run" / "model.safetensors").exists()
    _, meta = load_checkpoint(tmp_path / "run" / "last.safetensors")
    assert meta["global_step"] == 3
    monkeypatch.setattr(Trainer, "_train_step", original)
    _, resumed = train_vae(tiny_smiles[:200], tmp_path / "run", None, device="cpu", resume=True, show_progress=False)
    _, full = train_vae(tiny_smiles[:200], tmp_path / "full", _config(), device="cpu", show_progress=False)
    assert resumed.stopped_because == "epochs" and resumed.steps == full.steps  # no batch skipped
    resumed_w, full_w = _weights(tmp_path / "run"), _weights(tmp_path / "full")
    assert all(torch.equal(resumed_w[k], full_w[k]) for k in full_w)


def test_cosine_schedule_anneals_the_learning_rate_over_the_run(tmp_path, tiny_smiles, monkeypatch):
    import math

    seen = []
    original = torch.optim.AdamW.step

    def recording_step(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", recording_step)
    train_vae(tiny_smiles[:200], tmp_path / "run", _config(epochs=2, lr_schedule="cosine"), device="cpu", show_progress=False)
    n = len(seen)
    assert n >= 6
    expected = [3e-3 * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * k / n))) for k in range(n)]
    assert seen == pytest.approx(expected)
    with pytest.raises(Exception, match="lr.schedule"):
        _config(lr_schedule="linear")


def test_compiled_training_goes_through_the_compiled_forward_and_saves_plain_weights(tmp_path, tiny_smiles, monkeypatch):
    """--compile: the step's forward runs through torch.compile's module; checkpoints keep the plain keys.

    The eager backend (graph capture without code generation) keeps this fast and the arithmetic
    identical, so the weights must equal an uncompiled run's.
    """
    compiled = []
    real_compile = torch.compile

    def eager_compile(module, **kwargs):
        compiled.append(kwargs)
        return real_compile(module, backend="eager", **kwargs)

    monkeypatch.setattr(torch, "compile", eager_compile)
    torch._dynamo.reset()
    train_vae(tiny_smiles[:100], tmp_path / "c", _config(epochs=1, compile=True), device="cpu", show_progress=False)
    train_vae(tiny_smiles[:100], tmp_path / "p", _config(epochs=1), device="cpu", show_progress=False)
    assert compiled == [{"dynamic": True}]
    c, p = _weights(tmp_path / "c"), _weights(tmp_path / "p")
    assert c.keys() == p.keys() and not any("_orig_mod" in k for k in c)
    assert all(torch.equal(c[k], p[k]) for k in c)
    assert MoleculeVAE.load(tmp_path / "c", device="cpu").sample(8, seed=1, n_jobs=1)  # loads like any run


@pytest.mark.slow
def test_inductor_compiled_training_matches_plain_training(tmp_path, tiny_smiles):
    """The real compiler (C++ code generation on the CPU): the same losses to float rounding."""
    torch._dynamo.reset()
    train_vae(tiny_smiles[:100], tmp_path / "c", _config(epochs=1, compile=True), device="cpu", show_progress=False)
    train_vae(tiny_smiles[:100], tmp_path / "p", _config(epochs=1), device="cpu", show_progress=False)
    logs = [json.loads((tmp_path / r / "metrics.jsonl").read_text().splitlines()[-1]) for r in ("c", "p")]
    for key in ("train_loss", "val_loss", "val_recon"):
        assert logs[0][key] == pytest.approx(logs[1][key], rel=1e-3), key


def test_the_training_profiler_script_times_real_steps(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    out = tmp_path / "profile.json"
    cmd = [sys.executable, str(root / "scripts" / "profile_training.py"), "--device", "cpu", "--batch-sizes", "8", "16",
           "--warmup", "1", "--steps", "3", "--profile-steps", "2", "--threads", "1", "--top", "5", "--json", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    runs = json.loads(out.read_text())["runs"]
    assert [r["batch_size"] for r in runs] == [8, 16]
    for r in runs:
        assert r["steps_per_s"] > 0 and r["molecules_per_s"] == pytest.approx(r["batch_size"] * r["steps_per_s"], rel=0.02)
        assert len(r["top_cpu"]) == 5 and all(row["self_ms"] >= 0 for row in r["top_cpu"])
    assert "| 16 | False |" in done.stdout
