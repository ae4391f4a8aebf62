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
from molgen.utils.checkpoint import load_checkpoint, read_checkpoint_meta

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
        "--checkpoint-every", str(CHECKPOINT_EVERY), "--seed", "0", "--threads", "1", "--quiet", "--device", "cpu",
    ]  # fmt: skip


def _child(args: list[str], mode: str, at: int = 0) -> subprocess.Popen:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)  # keep site dirs added to it
    env = dict(os.environ, KILL_MODE=mode, KILL_AT=str(at), OMP_NUM_THREADS="1", PYTHONPATH=path)
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


# -- full disk -----------------------------------------------------------------------------------


class _FilledUp:
    """A file that takes ``room`` more bytes (or characters), then fails like a full disk."""

    def __init__(self, fh, room: int) -> None:
        self._fh, self._room = fh, room

    def write(self, data):
        if len(data) > self._room:
            self._fh.write(data[: self._room])  # a real disk takes what fits first
            self._room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._room -= len(data)
        return self._fh.write(data)

    def __getattr__(self, name):
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._fh.close()


def _fill_disk(monkeypatch, room: int = 100, only: str = "", nth: int = 1) -> None:
    """Make molgen's atomic outputs hit a full disk (for files whose name contains ``only``, from the nth on)."""
    from molgen.utils import io as molgen_io

    real_os, seen = os, [0]

    class _Os:
        def __getattr__(self, name):
            return getattr(real_os, name)

        @staticmethod
        def fdopen(fd, *args, **kwargs):
            fh = real_os.fdopen(fd, *args, **kwargs)
            if only not in real_os.readlink(f"/proc/self/fd/{fd}"):
                return fh
            seen[0] += 1
            return _FilledUp(fh, room) if seen[0] >= nth else fh

    monkeypatch.setattr(molgen_io, "os", _Os())


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_full_disk_is_one_line_and_leaves_no_partial_file(tmp_path, monkeypatch):
    from molgen.datasets import write_smiles
    from molgen.errors import MolgenError
    from molgen.utils.checkpoint import save_checkpoint
    from molgen.utils.io import DiskFullError, atomic_write_text

    old = tmp_path / "report.txt"
    old.write_text("the previous, complete report\n")
    _fill_disk(monkeypatch)
    with pytest.raises(DiskFullError, match=r"disk full while writing .*report\.txt") as info:
        atomic_write_text(old, "x" * 1000)
    assert isinstance(info.value, MolgenError) and isinstance(info.value, OSError)
    assert "\n" not in str(info.value)
    assert old.read_text() == "the previous, complete report\n"
    with pytest.raises(DiskFullError, match="molecules.csv"):
        write_smiles(tmp_path / "molecules.csv", ["CCO"] * 500)
    with pytest.raises(DiskFullError, match="model.safetensors"):
        save_checkpoint(tmp_path / "model.safetensors", {"w": torch.ones(100)}, {"kind": "test"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.txt"]


def test_sample_on_a_full_disk_prints_one_line_and_writes_nothing(tiny_run, tmp_path, monkeypatch, capsys):
    out = tmp_path / "samples.csv"
    _fill_disk(monkeypatch, room=200)
    code = main(["sample", "--model", str(tiny_run), "-n", "64", "-o", str(out), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "disk full while writing" in errors[0] and "samples.csv" in errors[0]
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_disk_full_during_training_keeps_the_last_checkpoint_and_resume_finishes(kill_data, uninterrupted, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    _fill_disk(monkeypatch, room=1000, only="last.safetensors", nth=3)  # the step-9 checkpoint does not fit
    assert main(_train_args(kill_data, out)) == 2
    assert "disk full while writing" in capsys.readouterr().err
    assert read_checkpoint_meta(out / "last.safetensors")["global_step"] == 6
    assert _leftovers(out) == []
    monkeypatch.undo()  # space was freed
    assert main([*_train_args(kill_data, out), "--resume"]) == 0
    _assert_same_run(out, uninterrupted)


# -- run-folder lock -----------------------------------------------------------------------------


def test_second_writer_to_a_run_folder_is_stopped_by_the_lock(kill_data, tmp_path, capsys):
    from molgen.errors import MolgenError
    from molgen.utils.io import RunLock

    out = tmp_path / "run"
    with RunLock(out):
        with pytest.raises(MolgenError, match=rf"in use by another molgen process \(pid {os.getpid()}\)"):
            RunLock(out).__enter__()
        assert main(_train_args(kill_data, out)) == 2
        assert "in use by another molgen process" in capsys.readouterr().err
        assert sorted(p.name for p in out.iterdir()) == [".lock"]  # the refused run wrote nothing
    with RunLock(out):  # released with its holder
        pass


# -- every command that reads molecules: --strict and --rejects ----------------------------------

CORPUS = ROOT / "tests" / "data" / "corpus"
QUOTED_REJECTS = ["line,text,reason", '4,"3,""unterminated quote,c1ccncc1,0.3",missing_column', "6,\"5,short_row\",missing_column", "8,,empty", "10,C1CC,parse"]


def _command_lines(tiny_run: Path, tmp_path: Path) -> dict[str, list[str]]:
    model = str(tiny_run)
    data = str(CORPUS / "quoted.csv")
    return {
        "train": ["train", "--data", data, "--out", str(tmp_path / "run"), "--epochs", "1", "--threads", "1"],
        "encode": ["encode", "-i", data, "--model", model, "-o", str(tmp_path / "z.npy"), "--device", "cpu"],
        "reconstruct": ["reconstruct", "-i", data, "--model", model, "--device", "cpu"],
        "score": ["score", "-i", data, "--model", model, "-o", str(tmp_path / "s.csv"), "--reference", "none", "--samples", "2", "--device", "cpu"],
        "benchmark --train": ["benchmark", "--generated", data, "--train", data, "-o", str(tmp_path / "report"), "--reference", data, "--device", "cpu"],
        "optimize --starts": ["optimize", "--objective", "qed", "--starts", data, "--model", model, "-o", str(tmp_path / "opt"), "--device", "cpu"],
        "predictor train --data": ["predictor", "train", "--data", data, "--model", model, "--out", str(tmp_path / "pred"), "--device", "cpu"],
    }


@pytest.mark.parametrize("command", ["train", "encode", "reconstruct", "score", "benchmark --train", "optimize --starts", "predictor train --data"])
def test_every_molecule_reading_command_has_strict(command, tiny_run, tmp_path, capsys):
    args = _command_lines(tiny_run, tmp_path)[command]
    assert main([*args, "--strict"]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "quoted.csv, line 4: missing_column" in errors[0] and "Traceback" not in err


@pytest.mark.parametrize("command", ["encode", "reconstruct", "score"])
def test_rejects_csv_from_the_cli(command, tiny_run, tmp_path, capsys):
    rejects = tmp_path / "rejects.csv"
    assert main([*_command_lines(tiny_run, tmp_path)[command], "--rejects", str(rejects)]) == 0
    assert "quoted.csv: read 8 records, kept 4, skipped 4 (empty: 1, missing_column: 2, parse: 1)" in capsys.readouterr().err
    assert rejects.read_text().splitlines() == QUOTED_REJECTS


def test_predictor_labels_csv_skips_counts_and_rejects_bad_rows(tiny_run, tmp_path, capsys):
    labels = tmp_path / "assay.csv"
    good = ["CCO", "CCN", "CCC", "c1ccccc1", "CC(=O)O", "CCOC", "CNC", "CCCl", "OCCO", "CC#N", "CCCO", "CCCN"]
    rows = [f"{s},{i / 10}" for i, s in enumerate(good)]
    rows[2:2] = ["C1CC,0.5", "CCS,n/a", "CCBr,"]  # CSV lines 4, 5 and 6
    labels.write_text("smiles,pic50\n" + "\n".join(rows) + "\n")
    base = ["predictor", "train", "--labels", str(labels), "--target", "pic50", "--model", str(tiny_run), "--epochs", "2",
            "--members", "2", "--hidden", "8", "--device", "cpu"]  # fmt: skip
    rejects = tmp_path / "rejects.csv"
    assert main([*base, "--out", str(tmp_path / "pred"), "--rejects", str(rejects)]) == 0
    assert "3 of 15 row(s) skipped (parse: 1, no_value: 2)" in capsys.readouterr().err
    assert rejects.read_text().splitlines() == ["line,text,reason", "4,C1CC,parse", "5,CCS,no_value", "6,CCBr,no_value"]
    assert json.loads((tmp_path / "pred" / "report.json").read_text())["n_train"] + 2 <= 12
    assert main([*base, "--out", str(tmp_path / "pred2"), "--strict"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "assay.csv, line 4: parse ('C1CC')" in errors[0]
    assert not (tmp_path / "pred2").exists()


# -- user code -----------------------------------------------------------------------------------


def test_user_objective_code_runs_only_when_named_explicitly(tmp_path, monkeypatch):
    from molgen.errors import MolgenError
    from molgen.optimize import parse_objective

    marker = tmp_path / "imported"
    (tmp_path / "planted_scores.py").write_text(
        f"open({str(marker)!r}, 'w').close()\ndef score(smiles):\n    return [1.0 for _ in smiles]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    for spec in ("planted_scores", "qed,planted_scores", "planted_scores=1", "planted_scores:2", "sim(planted_scores)"):
        with pytest.raises(MolgenError):
            parse_objective(spec)
    assert not marker.exists()  # a module that merely looks like a name is never imported
    assert list(parse_objective("planted_scores:score").score(["CCO"]).values) == [1.0]
    assert marker.exists()


# -- reproducibility -----------------------------------------------------------------------------


def test_same_seed_same_samples_from_the_cli(tiny_run, tmp_path):
    def sample(name: str, seed: int) -> bytes:
        out = tmp_path / name
        assert main(["sample", "--model", str(tiny_run), "-n", "200", "-o", str(out), "--seed", str(seed), "--device", "cpu", "--batch-size", "64"]) == 0
        return out.read_bytes()

    first = sample("a.smi", 11)
    assert len(first.splitlines()) > 20
    assert sample("b.smi", 11) == first
    assert sample("c.smi", 12) != first


def test_same_seed_same_optimization_results_from_the_cli(tiny_run, tmp_path):
    def optimize(name: str, seed: int):
        out = tmp_path / name
        args = [
            "optimize", "--objective", "qed:1,sa:-0.1", "--model", str(tiny_run), "-o", str(out), "--budget", "30",
            "--n-starts", "16", "--steps", "4", "--decode-every", "2", "--option", "predictor_train_size=200",
            "--option", '{"epochs": 3, "model": {"hidden": 16, "members": 2}}'.join(["predictor=", ""]),
            "--seed", str(seed), "--device", "cpu", "--quiet", "--threads", "1",
        ]  # fmt: skip
        assert main(args) == 0
        calls = [json.loads(line) for line in (out / "oracle_log.jsonl").read_text().splitlines()]
        return (out / "molecules.csv").read_bytes(), [(c["smiles"], c["status"], c["score"], c["step"]) for c in calls]

    first = optimize("a", 3)
    assert len(first[1]) >= 3
    assert optimize("b", 3) == first
    assert optimize("c", 4) != first


def test_numpy_inputs_that_are_not_what_a_command_needs_get_one_line_and_are_never_unpickled(tiny_run, tmp_path, capsys):
    import numpy as np

    from molgen.errors import DataError
    from molgen.utils.io import load_numpy

    text, pickled, archive = tmp_path / "text.npy", tmp_path / "objects.npy", tmp_path / "z.npz"
    text.write_text("hello\n")
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.savez(archive, z=np.zeros((2, 4)))
    expected = {
        text: "not a NumPy .npy or .npz file",
        pickled: "holds Python objects, which molgen never unpickles",
        tmp_path / "missing.npy": "No such file",
        archive: "an .npz archive, not one array",
    }
    for path, reason in expected.items():
        code = main(["decode", "--model", str(tiny_run), "--latents", str(path), "--device", "cpu"])
        err = capsys.readouterr().err
        assert code == 2 and reason in err and "Traceback" not in err and "allow_pickle" not in err, err
        assert len(err.strip().splitlines()) == 1 and "molgen encode" in err
    with pytest.raises(DataError, match="not a thing.*fix it"):
        load_numpy(text, "a thing", "fix it")


def test_a_damaged_reference_cache_is_computed_again(tmp_path):
    from molgen.metrics import compute_metrics

    reference = ["CCO", "CCN", "c1ccccc1", "CC(=O)O"]
    first = compute_metrics(["CCO", "CCC"], reference=reference, n_jobs=1, cache_dir=tmp_path)
    (cached,) = (tmp_path / "metrics").glob("reference-*.npz")
    cached.write_bytes(b"not statistics")
    with pytest.warns(UserWarning, match="ignoring the cached reference statistics.*not a NumPy"):
        again = compute_metrics(["CCO", "CCC"], reference=reference, n_jobs=1, cache_dir=tmp_path)
    assert json.dumps(again, sort_keys=True) == json.dumps(first, sort_keys=True)  # NaN-aware
    assert cached.read_bytes()[:2] == b"PK"  # replaced by a good file
