"""Golden outputs: the main commands give byte-identical results across refactors.

The files under ``tests/data/golden/`` were written by these same commands; a
change of any molecule, score or weight fails the test. When a change of output
is intended (a new default, a retrained model), regenerate them with
``MOLGEN_UPDATE_GOLDENS=1 python -m pytest tests/test_golden.py`` on each CPU kind
(:func:`_cpu_kind`: the files of AVX-512-bf16 machines sit in ``golden/``, AVX2 ones
in ``golden/avx2/``) and say why in the commit message.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from safetensors import safe_open

from molgen.cli import main
from molgen.datasets import default_training_smiles

UPDATE = os.environ.get("MOLGEN_UPDATE_GOLDENS") == "1"


def _cpu_kind() -> str:
    """What decides the numbers on a CPU: native bf16 (decoding runs in bf16 there by default, see
    ``molgen.utils.runtime.native_bf16``), by AMX tiles or AVX512-BF16 alone (oneDNN's bf16 kernels
    differ: one of 281 initial-design decodes of the optimize golden flips), else the instruction set
    torch dispatches to (MKL's code paths)."""
    import torch

    from molgen.utils.runtime import native_bf16

    if native_bf16("cpu"):
        amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
        return "amx_bf16" if amx is not None and amx() else "avx512_bf16"
    return torch.backends.cpu.get_cpu_capability().lower()


# Byte-exact outputs differ between CPU kinds (bf16 decoding by default, MKL's code paths), so each kind
# has its own files; a kind without them skips these tests (record them with MOLGEN_UPDATE_GOLDENS=1).
GOLDEN_KINDS = {"avx512_bf16": "", "amx_bf16": "amx", "avx2": "avx2"}
CPU_KIND = _cpu_kind()
GOLDEN = Path(__file__).parent / "data" / "golden" / GOLDEN_KINDS.get(CPU_KIND, CPU_KIND)


def _check(name: str, text: str) -> None:
    path = GOLDEN / name
    if not UPDATE and not path.exists():
        pytest.skip(f"no golden outputs recorded for this CPU kind ({CPU_KIND}); record them with MOLGEN_UPDATE_GOLDENS=1")
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    expected = path.read_text()
    if text != expected:
        got, want = text.splitlines(), expected.splitlines()
        first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
        pytest.fail(f"{name} differs from the golden file at line {first + 1}:\n got: {got[first:first + 1]}\nwant: {want[first:first + 1]}")


def _run(capsys, *args) -> None:
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    assert code == 0, err


def test_sample_200_seed_0_is_unchanged(tmp_path, capsys, monkeypatch):
    # An empty cache: the novel column appears only where the MOSES training set was fetched before,
    # so the file would depend on the machine's history.
    monkeypatch.setenv("MOLGEN_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "sample.csv"
    _run(capsys, "sample", "-n", 200, "--seed", 0, "-o", out, "--device", "cpu")
    _check("sample_n200_seed0.csv", out.read_text())


def test_optimize_qed_budget_200_seed_0_is_unchanged(tmp_path, capsys):
    out = tmp_path / "opt"
    _run(capsys, "optimize", "--objective", "qed", "--budget", 200, "--seed", 0, "-o", out, "--device", "cpu")
    _check("optimize_qed_b200_seed0.csv", (out / "molecules.csv").read_text())
    calls = [json.loads(line) for line in (out / "oracle_log.jsonl").read_text().splitlines()]
    for call in calls:
        call.pop("seconds")  # wall-clock time is the only field allowed to change
    _check("optimize_qed_b200_seed0_log.jsonl", "".join(json.dumps(c, sort_keys=True) + "\n" for c in calls))


def _weights_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with safe_open(str(path), framework="pt") as f:
        for key in sorted(f.keys()):
            digest.update(key.encode())
            digest.update(f.get_tensor(key).numpy().tobytes())
    return digest.hexdigest()


def test_tiny_train_then_sample_is_unchanged(tmp_path, capsys):
    data = tmp_path / "mols.smi"
    data.write_text("\n".join(default_training_smiles(limit=120)) + "\n")
    run = tmp_path / "run"
    _run(
        capsys, "train", "--data", data, "--out", run, "--epochs", 2, "--batch-size", 16, "--seed", 0,
        "--latent-dim", 8, "--decoder-hidden", 32, "--encoder-hidden", 16, "--embed-dim", 16,
        "--quiet", "--device", "cpu",
    )  # fmt: skip
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    record = {
        "weights_sha256": _weights_digest(run / "model.safetensors"),
        "train_loss": [round(row["train_loss"], 4) for row in epochs],
        "val_loss": [round(row["val_loss"], 4) for row in epochs],
        "config": json.loads((run / "config.json").read_text())["config"],
    }
    out = tmp_path / "s.csv"
    _run(capsys, "sample", "--model", run, "-n", 50, "--seed", 0, "-o", out, "--device", "cpu")
    _check("tiny_train_record.json", json.dumps(record, indent=1) + "\n")
    _check("tiny_train_sample_n50_seed0.csv", out.read_text())
