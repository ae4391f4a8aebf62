"""Torch's thread count beside RDKit worker processes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from molgen import chem
from molgen.errors import ConfigError
from molgen.generate import SampleRequest, stream
from molgen.utils import threads
from molgen.vae import MoleculeVAE


@pytest.fixture
def torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(("cpus", "workers", "start", "inside"), [(2, 2, 3, 1), (8, 2, 3, 3), (8, 2, 7, 6), (4, 0, 4, 4), (1, 4, 2, 1)])
def test_threads_beside_caps_at_the_free_cores_and_restores(monkeypatch, torch_threads, cpus, workers, start, inside):
    monkeypatch.setattr(threads, "available_cpus", lambda: cpus)
    torch.set_num_threads(start)
    with threads.threads_beside(workers):
        assert torch.get_num_threads() == inside
    assert torch.get_num_threads() == start


def test_threads_beside_restores_after_an_error(monkeypatch, torch_threads):
    monkeypatch.setattr(threads, "available_cpus", lambda: 2)
    torch.set_num_threads(2)
    with pytest.raises(RuntimeError), threads.threads_beside(2):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == 2


def test_set_torch_threads_rejects_negative_counts(torch_threads):
    with pytest.raises(ConfigError, match="--threads must be >= 0"):
        threads.set_torch_threads(-1)
    threads.set_torch_threads(3)
    assert torch.get_num_threads() == 3
    threads.set_torch_threads(0)  # 0 leaves the count alone
    assert torch.get_num_threads() == 3


def test_sampling_with_rdkit_workers_uses_the_cores_they_leave(tiny_run, monkeypatch, torch_threads):
    vae = MoleculeVAE.load(tiny_run, device="cpu")
    monkeypatch.setattr(chem, "DEFAULT_THRESHOLD", 8)  # a worker pool from 16 samples on
    monkeypatch.setattr(threads, "available_cpus", lambda: 2)
    torch.set_num_threads(2)
    seen, total = [], 0
    for chunk in stream(vae, SampleRequest(n=64, seed=3, batch_size=16, chunk_size=16, n_jobs=2)):
        seen.append(torch.get_num_threads())
        total += len(chunk)
    assert total == 64 and seen == [1, 1, 1, 1]
    assert torch.get_num_threads() == 2
    chunks = stream(vae, SampleRequest(n=64, seed=3, batch_size=16, chunk_size=16, n_jobs=2))
    next(chunks)
    chunks.close()  # a consumer that stops early gets its threads back too
    assert torch.get_num_threads() == 2
    # the cap changes no sample: the same seed gives the same molecules in one process
    pooled = [s for c in stream(vae, SampleRequest(n=64, seed=3, batch_size=16, chunk_size=16, n_jobs=2)) for s in c]
    alone = [s for c in stream(vae, SampleRequest(n=64, seed=3, batch_size=16, chunk_size=16, n_jobs=1)) for s in c]
    assert pooled == alone
    # nor does the chunk size (chunks are whole batches, about n/8 of them)
    small = list(stream(vae, SampleRequest(n=256, seed=3, batch_size=16, chunk_size=16, n_jobs=2)))
    large = list(stream(vae, SampleRequest(n=256, seed=3, batch_size=16, chunk_size=1000, n_jobs=2)))
    assert [len(c) for c in small] == [16] * 16 and [len(c) for c in large] == [32] * 8
    assert [s for c in small for s in c] == [s for c in large for s in c]


@pytest.mark.parametrize(
    ("argv", "policy"),
    [
        (["sample", "-n", "10"], "PASSIVE"),
        (["benchmark", "--model", "train"], "PASSIVE"),  # "train" as an option's value is not the command
        (["image", "sample", "--run", "r"], "PASSIVE"),
        (["train", "--data", "x.smi"], None),
        (["image", "train", "--model", "vae"], None),
    ],
)
def test_openmp_threads_sleep_unless_the_command_trains(monkeypatch, argv, policy):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delitem(sys.modules, "torch")  # as in a fresh `molgen` process, before torch is imported
    assert threads.openmp_wait_policy_for(argv) == policy
    assert os.environ.get("OMP_WAIT_POLICY") == policy


def test_openmp_wait_policy_leaves_a_users_setting_and_a_loaded_torch_alone(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    monkeypatch.delitem(sys.modules, "torch")
    assert threads.openmp_wait_policy_for(["sample"]) is None
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
    monkeypatch.undo()
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert threads.openmp_wait_policy_for(["sample"]) is None  # torch is loaded here: too late to matter
    assert "OMP_WAIT_POLICY" not in os.environ


def test_the_cli_sets_the_policy_before_torch_starts():
    code = (
        "import os, sys; from molgen.cli import main; rc = main(['info']); "
        "print(rc, os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.stdout.split()[-3:] == ["0", "PASSIVE", "True"], done.stderr[-2000:]
