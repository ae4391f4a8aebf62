"""Reliability: kill -9 and resume, full disks, explicit user code, same seed same result.

The kill tests run ``molgen train`` in a child process and end it with SIGKILL at chosen moments (in
the middle of an interval, while a checkpoint sits written but not yet renamed, at the end of an
epoch, before the first checkpoint, and from outside at an unplanned moment); ``--resume`` must then
finish with exactly the weights and logs of an uninterrupted run.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from molgen.cli import main
from molgen.datasets import default_training_smiles
from molgen.train.checkpoint import load_checkpoint, read_checkpoint_meta

ROOT = Path(__file__).parents[1]
CHECKPOINT_EVERY = 3

# Runs `molgen train` and SIGKILLs itself at the moment named by $KILL_MODE / $KILL_AT.
_CHILD = r"""
import os, signal, sys, time
from molgen.train import trainer as tr

mode, at = os.environ["KILL_MODE"], int(os.environ.get("KILL_AT", "0"))

def die():
    os.kill(os.getpid(), signal.SIGKILL)

if mode == "step":  # just before optimizer step `at` + 1
    step = tr.Trainer._train_step
    def killing_step(self, batch):
        if self.global_step == at:
            die()
        return step(self, batch)
    tr.Trainer._train_step = killing_step
elif mode == "checkpoint-write":  # the at-th last.safetensors is in its temporary file, not yet renamed
    fsync, seen = os.fsync, [0]
    def killing_fsync(fd):
        fsync(fd)
        if "last.safetensors" in os.readlink(f"/proc/self/fd/{fd}"):
            seen[0] += 1
            if seen[0] == at:
                die()
    os.fsync = killing_fsync
elif mode == "epoch-end":  # epoch `at` validated and its best model exported, its state not yet saved
    finish = tr.Trainer._finish_epoch_state
    def killing_finish(self):
        if self.epoch + 1 == at:
            die()
        return finish(self)
    tr.Trainer._finish_epoch_state = killing_finish
elif mode == "slow":  # killed from outside; slowed down so that the kill lands in the middle of the run
    step = tr.Trainer._train_step
    def slow_step(self, batch):
        time.sleep(0.03)
        return step(self, batch)
    tr.Trainer._train_step = slow_step

from molgen.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _train_args(data: Path, out: Path) -> list[str]:
    return [
        "train", "--data", str(data), "--out", str(out), "--epochs", "2", "--batch-size", "16",
        "--latent-dim", "8", "--decoder-hidden", "32", "--decoder-layers", "1", "--encoder-hidden", "16",
        "--embed-dim", "8", "--lr", "3e-3", "--kl-warmup", "10", "--val-fraction", "0.1",
        "--checkpoint-every", str(CHECKPOINT_EVERY), "--seed", "0", "--threads", "1", "--quiet",
    ]  # fmt: skip


def _child(args: list[str], mode: str, at: int = 0) -> subprocess.Popen:
    env = dict(os.environ, KILL_MODE=mode, KILL_AT=str(at), OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, *args], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def _state(run: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], list[dict]]:
    """(last state's weights, best model's weights, per-epoch logs without wall-clock times)."""
    last, _ = load_checkpoint(run / "last.safetensors")
    best, _ = load_checkpoint(run / "model.safetensors")
    logs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for record in logs:
        record.pop("seconds")
    return {k: v for k, v in last.items() if k.startswith("model.")}, best, logs


def _assert_same_run(a: Path, b: Path) -> None:
    last_a, best_a, logs_a = _state(a)
    last_b, best_b, logs_b = _state(b)
    assert logs_a == logs_b
    for ours, theirs in ((last_a, last_b), (best_a, best_b)):
        assert ours.keys() == theirs.keys()
        for key in ours:
            assert torch.equal(ours[key], theirs[key]), key


@pytest.fixture(scope="module")
def kill_data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("kill") / "molecules.smi"
    path.write_text("\n".join(default_training_smiles(limit=160)) + "\n")
    return path


@pytest.fixture(scope="module")
def uninterrupted(kill_data) -> Path:
    out = kill_data.parent / "uninterrupted"
    assert main(_train_args(kill_data, out)) == 0
    return out


def test_killed_three_times_at_bad_moments_then_resumed_ends_with_the_uninterrupted_run(kill_data, uninterrupted, tmp_path):
    """The suite's kill -9 test: three SIGKILLs, each at a moment that loses work differently."""
    out = tmp_path / "run"
    args = _train_args(kill_data, out)
    moments = [
        # Before the first checkpoint: config.json exists, no state; --resume starts over.
        ([], "step", 1, None),
        # The third checkpoint (step 9) is written to its temporary file but never renamed: step 6 survives.
        (["--resume"], "checkpoint-write", 3, 6),
        # Epoch 1 is validated and its best model exported, but the end-of-epoch state is not saved.
        (["--resume"], "epoch-end", 1, 9),
    ]
    for extra, mode, at, step_kept in moments:
        child = _child([*args, *extra], mode, at)
        _, stderr = child.communicate(timeout=300)
        assert child.returncode == -signal.SIGKILL, stderr.decode()[-2000:]
        if step_kept is None:
            assert (out / "config.json").exists() and not (out / "last.safetensors").exists()
        else:
            # At most one checkpoint interval of work is lost.
            assert read_checkpoint_meta(out / "last.safetensors")["global_step"] == step_kept
    assert main([*args, "--resume"]) == 0
    _assert_same_run(out, uninterrupted)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mode", "at", "steps_kept"),
    [
        ("step", 8, 6),  # mid-interval: steps 7-8 are lost, less than one interval
        ("checkpoint-write", 3, 6),  # the step-9 checkpoint never lands; the step-6 one is intact
        ("epoch-end", 2, 18),  # the last epoch exported but its end state not saved
    ],
)
def test_kill_9_once_then_resume(kill_data, uninterrupted, tmp_path, mode, at, steps_kept):
    out = tmp_path / "run"
    child = _child(_train_args(kill_data, out), mode, at)
    _, stderr = child.communicate(timeout=300)
    assert child.returncode == -signal.SIGKILL, stderr.decode()[-2000:]
    assert read_checkpoint_meta(out / "last.safetensors")["global_step"] == steps_kept
    assert main([*_train_args(kill_data, out), "--resume"]) == 0
    _assert_same_run(out, uninterrupted)


@pytest.mark.slow
def test_kill_9_from_outside_at_an_unplanned_moment(kill_data, uninterrupted, tmp_path):
    out = tmp_path / "run"
    child = _child(_train_args(kill_data, out), "slow")
    deadline = time.monotonic() + 300
    while not (out / "last.safetensors").exists():
        assert child.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.01)
    time.sleep(0.05)  # somewhere after the first checkpoint: mid-step, mid-write or mid-validation
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL
    step = read_checkpoint_meta(out / "last.safetensors")["global_step"]
    assert 0 < step < 18  # the run (2 epochs x 9 steps) was cut before its end
    assert main([*_train_args(kill_data, out), "--resume"]) == 0
    _assert_same_run(out, uninterrupted)


def test_resume_with_other_data_is_refused(kill_data, uninterrupted, tmp_path, capsys):
    other = tmp_path / "other.smi"
    other.write_text("\n".join(default_training_smiles(limit=170)) + "\n")
    out = tmp_path / "run"
    shutil.copytree(uninterrupted, out)
    before = (out / "last.safetensors").read_bytes()
    assert main([*_train_args(other, out), "--resume"]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "data differ" in errors[0] and "Traceback" not in err
    assert (out / "last.safetensors").read_bytes() == before
