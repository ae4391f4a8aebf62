"""Machines where RDKit cannot draw (no libXrender, as on bare GPU servers): results still land, pictures are skipped in one line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from molgen.cli import main
from molgen.errors import DrawingUnavailableError
from molgen.metrics import read_smiles_file
from molgen.metrics.benchmark import run_benchmark
from molgen.viz import molecule_grid

DATA = Path(__file__).parent / "data"


@pytest.fixture
def no_drawing(monkeypatch):
    """Make ``from rdkit.Chem import Draw`` fail as it does when libXrender.so.1 is missing."""
    import rdkit.Chem

    monkeypatch.delattr(rdkit.Chem, "Draw", raising=False)
    monkeypatch.setitem(sys.modules, "rdkit.Chem.Draw", None)


def test_grid_error_is_one_line_naming_the_fix(no_drawing, tmp_path):
    with pytest.raises(DrawingUnavailableError) as info:
        molecule_grid(["CCO"], tmp_path / "g.png")
    message = str(info.value)
    assert "\n" not in message and "libxrender1" in message
    assert not (tmp_path / "g.png").exists()


def test_optional_grid_warns_and_writes_nothing(no_drawing, tmp_path):
    with pytest.warns(UserWarning, match="skipped g.png: RDKit cannot draw"):
        assert molecule_grid(["CCO"], tmp_path / "g.png", required=False) is None
    assert list(tmp_path.iterdir()) == []


@pytest.mark.filterwarnings("ignore:unique@")
def test_benchmark_report_without_molecule_picture(no_drawing, tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    (out / "molecules.png").write_bytes(b"stale picture of an earlier report")
    with pytest.warns(UserWarning, match="skipped molecules.png"):
        report = run_benchmark(
            read_smiles_file(DATA / "metrics_generated_150.smi"),
            reference=DATA / "metrics_reference_300.smi",
            out_dir=out,
            n_jobs=1,
            cache_dir=tmp_path,
        )
    assert {p.name for p in out.iterdir()} == {"metrics.json", "metrics.md", "properties.png"}
    saved = json.loads((out / "metrics.json").read_text())
    assert [Path(p).name for p in saved["files"]] == ["metrics.json", "metrics.md", "properties.png"]
    assert saved["metrics"]["n_generated"] == 150 == report["metrics"]["n_generated"]


def test_cli_sample_keeps_molecules_and_warns_about_the_grid(no_drawing, tiny_run, tmp_path, capsys):
    out, png = tmp_path / "s.smi", tmp_path / "grid.png"
    code = main(["sample", "--model", str(tiny_run), "-n", "32", "-o", str(out), "--grid", str(png), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert len(out.read_text().splitlines()) > 0 and not png.exists()
    assert "warning: skipped grid.png: RDKit cannot draw" in " ".join(err.split())


def test_cli_interpolate_prints_the_path_then_fails_in_one_line(no_drawing, tiny_run, tmp_path, capsys):
    png = tmp_path / "path.png"
    code = main(["interpolate", "--model", str(tiny_run), "CCO", "c1ccccc1O", "--steps", "3", "-o", str(png), "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 2 and len(captured.out.strip().splitlines()) == 3 and not png.exists()
    assert "error: RDKit cannot draw molecules on this machine" in " ".join(captured.err.split())
