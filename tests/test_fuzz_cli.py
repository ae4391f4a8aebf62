"""Pathological molecules through every command that reads molecules: skipped, counted, never fatal.

``tests/data/fuzz_monsters.smi`` (written by ``scripts/make_fuzz_corpus.py``)
holds 30 ordinary MOSES molecules, one odd but valid molecule and 19
monsters: a 20,000-carbon chain that segfaults RDKit's SMILES writer, branch
nesting 20,000 deep, 5,000 fragments (minutes in the Murcko scaffold code),
ring-closure soup, giant bracket atoms, ... Each command must exit 0, keep
the 31 valid molecules, count every monster under its reason, and print no
traceback.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from molgen.cli import main
from molgen.datasets import read_molecules

ROOT = Path(__file__).resolve().parents[1]
FUZZ = ROOT / "tests" / "data" / "fuzz_monsters.smi"
SUMMARY = (
    "fuzz_monsters.smi: read 50 records, kept 31, skipped 19 "
    "(parse: 4, sanitize: 1, too_deep: 2, too_large: 7, too_many_fragments: 3, too_many_rings: 2)"
)
EXPECTED_REJECTS = {
    2: "too_large", 4: "too_large", 6: "too_large", 8: "too_large", 10: "too_deep", 12: "too_large", 14: "too_deep",
    16: "parse", 18: "too_many_fragments", 20: "too_many_fragments", 22: "too_many_fragments", 24: "too_many_rings",
    26: "too_many_rings", 28: "parse", 32: "too_large", 34: "parse", 36: "parse", 38: "sanitize", 40: "too_large",
}  # fmt: skip


def test_the_corpus_reads_with_exact_counts():
    result = read_molecules(FUZZ, n_jobs=1)
    assert result.summary() == SUMMARY
    assert {line: reason for line, _, reason in result.rejects} == EXPECTED_REJECTS
    assert "C1CC1" in result.smiles  # C%(99999)CC%(99999): odd but valid, so kept


def test_the_corpus_reads_the_same_in_a_process_pool(monkeypatch):
    from molgen.datasets import readers

    monkeypatch.setattr(readers, "_PARALLEL_MIN", 10)
    result = read_molecules(FUZZ, n_jobs=2)
    assert result.summary() == SUMMARY
    assert result.smiles == read_molecules(FUZZ, n_jobs=1).smiles


def _command_lines(tiny_run: Path, tmp_path: Path) -> dict[str, list[str]]:
    model, data = str(tiny_run), str(FUZZ)
    tiny = ["--latent-dim", "8", "--embed-dim", "16", "--encoder-hidden", "16", "--decoder-hidden", "32", "--decoder-layers", "1"]
    return {
        "train": ["train", "--data", data, "--out", str(tmp_path / "run"), "--epochs", "1", "--batch-size", "8", *tiny, "--threads", "1", "--quiet", "--device", "cpu"],
        "encode": ["encode", "-i", data, "--model", model, "-o", str(tmp_path / "z.npy"), "--device", "cpu"],
        "reconstruct": ["reconstruct", "-i", data, "--model", model, "--device", "cpu"],
        "score": ["score", "-i", data, "--model", model, "-o", str(tmp_path / "s.csv"), "--reference", data, "--samples", "2", "--device", "cpu"],
        "benchmark": ["benchmark", "--generated", data, "--train", data, "-o", str(tmp_path / "report"), "--reference", data, "--device", "cpu", "--n-jobs", "1"],
        "optimize --starts": ["optimize", "--objective", "qed", "--starts", data, "--model", model, "-o", str(tmp_path / "opt"), "--budget", "10",
                              "--n-starts", "4", "--steps", "2", "--option", "predictor_train_size=200", "--device", "cpu", "--quiet"],
        "predictor train": ["predictor", "train", "--data", data, "--model", model, "--out", str(tmp_path / "pred"), "--epochs", "2",
                            "--members", "1", "--hidden", "8", "--device", "cpu"],
    }  # fmt: skip


@pytest.mark.parametrize("command", ["train", "encode", "reconstruct", "score", "benchmark", "optimize --starts", "predictor train"])
def test_every_command_skips_and_counts_the_monsters(command, tiny_run, tmp_path, capsys):
    rejects = tmp_path / "rejects.csv"
    code = main([*_command_lines(tiny_run, tmp_path)[command], "--rejects", str(rejects)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "Traceback" not in err
    assert SUMMARY in " ".join(err.split())  # the console may wrap the line
    with open(rejects, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {int(r["line"]): r["reason"] for r in rows} == EXPECTED_REJECTS
    assert all(len(r["text"]) <= 1000 for r in rows)  # a 20,000-character monster is not copied whole
    if command == "encode":
        assert np.load(tmp_path / "z.npy").shape == (31, 8)
    if command == "benchmark":
        # Every line of --generated is a sample: the monsters count as invalid ones.
        assert json.loads((tmp_path / "report" / "metrics.json").read_text())["metrics"]["valid"] == pytest.approx(31 / 50)


def test_encode_in_a_fresh_process_exits_cleanly(tiny_run, tmp_path):
    # The original report: exit status 139 (SIGSEGV) and no output at all.
    z = tmp_path / "z.npy"
    proc = subprocess.run(
        [sys.executable, "-m", "molgen", "encode", "-i", str(FUZZ), "--model", str(tiny_run), "-o", str(z), "--device", "cpu"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert SUMMARY in proc.stderr and "Traceback" not in proc.stderr
    assert np.load(z).shape == (31, 8)


def test_predictor_labels_csv_counts_the_monsters_by_reason(tiny_run, tmp_path, capsys):
    rows = [line.split()[0] for line in FUZZ.read_text().splitlines()]
    labels = tmp_path / "assay.csv"
    labels.write_text("smiles,pic50\n" + "\n".join(f"{s},{i % 7}" for i, s in enumerate(rows)) + "\n")
    rejects = tmp_path / "rejects.csv"
    args = ["predictor", "train", "--labels", labels, "--target", "pic50", "--model", tiny_run, "--epochs", "2", "--members", "1",
            "--hidden", "8", "--device", "cpu", "--out", tmp_path / "pred", "--rejects", rejects]  # fmt: skip
    code = main([str(a) for a in args])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 0, err
    assert "19 of 50 row(s) skipped (too_large: 7, too_deep: 2, parse: 4, too_many_fragments: 3, too_many_rings: 2, sanitize: 1)" in err
    with open(rejects, newline="") as fh:
        # CSV line numbers: the header is line 1, so file line n is CSV line n + 1.
        assert {int(r["line"]) - 1: r["reason"] for r in csv.DictReader(fh)} == EXPECTED_REJECTS
