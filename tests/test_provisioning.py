"""Commands whose defaults need the MOSES sets fetch them themselves (never from the network in tests)."""

from __future__ import annotations

import gzip
import subprocess
import zipfile
from pathlib import Path

import pytest

from molgen.cli import main
from molgen.datasets import default_training_smiles, moses_split
from molgen.datasets import moses as moses_module
from molgen.errors import DataError


def _gz_csv(smiles: list[str]) -> bytes:
    return gzip.compress(("SMILES\n" + "\n".join(smiles) + "\n").encode(), mtime=0)


def _fake_molsets_wheel(path: Path) -> Path:
    """A molsets-shaped wheel holding small real MOSES subsets (no RECORD hashes: accepted unchecked)."""
    smiles = default_training_smiles(limit=300)
    payloads = {
        "train.csv.gz": _gz_csv(smiles[:200]),
        "test.csv.gz": _gz_csv(smiles[200:260]),
        "test_scaffolds.csv.gz": _gz_csv(smiles[260:]),
        "test_stats.npz": b"unused",
        "test_scaffolds_stats.npz": b"unused",
    }
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in payloads.items():
            zf.writestr(f"moses/dataset/data/{name}", data)
    return path


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    cache = tmp_path / "fresh-cache"
    monkeypatch.setenv("MOLGEN_CACHE", str(cache))
    monkeypatch.delenv("MOLGEN_OFFLINE", raising=False)
    return cache


@pytest.fixture
def fake_index(monkeypatch):
    """Stand in for PyPI: ``pip download`` drops the fake wheel; counts the downloads."""
    downloads = []

    def download(folder: Path) -> Path:
        downloads.append(folder)
        return _fake_molsets_wheel(folder / "molsets-0.3.1-py3-none-any.whl")

    monkeypatch.setattr(moses_module, "_download_wheel", download)
    return downloads


def _smi(tmp_path: Path) -> Path:
    path = tmp_path / "mine.smi"
    path.write_text("\n".join(default_training_smiles(limit=8)) + "\n")
    return path


def test_score_fetches_the_moses_reference_once_into_a_fresh_cache(tiny_run, fresh_cache, fake_index, tmp_path, capsys, monkeypatch):
    # A checkpoint trained on MOSES: the default --reference train is the MOSES training set.
    from molgen.vae import MoleculeVAE

    vae = MoleculeVAE.load(tiny_run, device="cpu")
    vae.meta["train_set"] = "moses-train"
    model = vae.save(tmp_path / "moses_model.safetensors")
    args = ["score", "--input", str(_smi(tmp_path)), "--model", str(model), "--samples", "2", "--reference-size", "50", "--device", "cpu"]
    assert main([*args, "-o", str(tmp_path / "s1.csv")]) == 0
    err = capsys.readouterr().err
    assert "downloading molsets 0.3.1" in err and "MOSES data ready" in err
    assert (fresh_cache / "moses" / "train.csv.gz").is_file()
    assert main([*args, "-o", str(tmp_path / "s2.csv")]) == 0
    assert len(fake_index) == 1  # once: the second run reads the cache
    assert "downloading" not in capsys.readouterr().err
    assert (tmp_path / "s1.csv").read_text() == (tmp_path / "s2.csv").read_text()


def test_benchmark_against_moses_test_in_a_fresh_cache(fresh_cache, fake_index, tmp_path, capsys):
    report = tmp_path / "report"
    code = main(["benchmark", "--generated", str(_smi(tmp_path)), "--reference", "moses-test", "-o", str(report), "--device", "cpu", "--n-jobs", "1"])
    assert code == 0, capsys.readouterr().err
    assert (report / "metrics.json").is_file() and len(fake_index) == 1


def test_unreachable_index_gives_one_line_naming_the_offline_route(fresh_cache, tmp_path, capsys, monkeypatch):
    def no_network(cmd, **kwargs):
        assert cmd[1:4] == ["-m", "pip", "download"]
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: Could not find a version that satisfies the requirement molsets==0.3.1")

    monkeypatch.setattr(moses_module.subprocess, "run", no_network)
    code = main(["benchmark", "--generated", str(_smi(tmp_path)), "--reference", "moses-test", "-o", str(tmp_path / "r"), "--device", "cpu"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and "Traceback" not in err
    assert len(errors) == 1 and "molgen data moses --wheel PATH" in " ".join(err.split())
    assert not list((fresh_cache / "moses").glob("*.csv.gz"))


def test_offline_wheel_then_no_download(fresh_cache, tmp_path, capsys, monkeypatch):
    def refuse(folder):
        raise AssertionError("no download expected")

    monkeypatch.setattr(moses_module, "_download_wheel", refuse)
    wheel = _fake_molsets_wheel(tmp_path / "molsets-0.3.1-py3-none-any.whl")
    assert main(["data", "moses", "--wheel", str(wheel)]) == 0
    assert moses_split("test") == fresh_cache / "moses" / "test.csv.gz"
    report = tmp_path / "report"
    assert main(["benchmark", "--generated", str(_smi(tmp_path)), "--reference", "moses-test", "-o", str(report), "--device", "cpu", "--n-jobs", "1"]) == 0


def test_offline_setting_forbids_the_automatic_download(tmp_path, monkeypatch):
    monkeypatch.setenv("MOLGEN_OFFLINE", "1")
    with pytest.raises(DataError, match="MOLGEN_OFFLINE forbids.*molgen data moses"):
        moses_split("train", cache_dir=tmp_path)
    with pytest.raises(DataError, match=r"^MOSES train file not found in .*; run `molgen data moses`"):
        moses_split("train", cache_dir=tmp_path, fetch=False)
