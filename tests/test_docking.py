"""Docking oracle (AutoDock Vina): ligand preparation, worker processes, timeouts, cache, poses, scoring files.

Skipped where the optional ``dock`` extra (vina, meeko, gemmi) is not installed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from molgen.errors import ConfigError
from molgen.optimize.docking import (
    DockingConfig,
    DockingOracle,
    docking_available,
    prepare_ligand,
)
from molgen.optimize.scoring import load_scoring_config

ROOT = Path(__file__).resolve().parents[1]
RECEPTOR = ROOT / "data" / "receptors" / "1pwc_receptor.pdbqt"
BOX = json.loads((ROOT / "data" / "receptors" / "1pwc_box.json").read_text())
needs_vina = pytest.mark.skipif(not docking_available(), reason="docking needs the dock extra: pip install 'molgen[dock]'")
FAST = dict(size=[14.0, 14.0, 14.0], exhaustiveness=1, workers=2, timeout=120.0)


def test_docking_config_checks_its_keys(tmp_path):
    with pytest.raises(ConfigError, match="3 numbers"):
        DockingConfig(receptor="r.pdbqt", center=[0.0, 1.0])
    with pytest.raises(ConfigError, match="size"):
        DockingConfig(receptor="r.pdbqt", center=[0.0, 0.0, 0.0], size=[0.0, 10.0, 10.0])
    text = f'[[component]]\nname = "dock"\ntype = "docking"\nreceptor = "{RECEPTOR}"\ncenter = [1, 2, 3]\nexhaustivness = 4\n'
    (tmp_path / "s.toml").write_text(text)
    with pytest.raises(ConfigError, match=r"component\[0\] \(dock, type docking\): unknown key 'exhaustivness'"):
        load_scoring_config(tmp_path / "s.toml")
    (tmp_path / "s.toml").write_text(text.replace(str(RECEPTOR), "missing.pdbqt").replace("exhaustivness", "exhaustiveness"))
    with pytest.raises(ConfigError, match=r"\(dock\)\.receptor: file .*missing.pdbqt does not exist"):
        load_scoring_config(tmp_path / "s.toml")


@needs_vina
def test_ligand_preparation_gives_a_pdbqt_with_hydrogens_on_heteroatoms():
    text = prepare_ligand("CC(=O)Nc1ccc(O)cc1")
    atoms = [line for line in text.splitlines() if line.startswith(("ATOM", "HETATM"))]
    assert len(atoms) == 13 and sum(line.rstrip().endswith("HD") for line in atoms) == 2  # 11 heavy atoms + NH + OH
    assert "TORSDOF" in text
    assert prepare_ligand("CC(=O)[O-]").count("HD") == 1  # neutralised: the acid gets its hydrogen back


@needs_vina
def test_docking_scores_caches_writes_poses_and_logs_failures(tmp_path):
    cfg = DockingConfig(receptor=str(RECEPTOR), center=BOX["center"], cache="cache.jsonl", **FAST)
    oracle = DockingOracle(cfg, tmp_path)
    oracle.set_output_dir(tmp_path / "run")
    try:
        values, errors = oracle(["CC(=O)Nc1ccc(O)cc1", "[Na+].[Cl-]", "OC(=O)c1ccccc1"])
        assert values[0] < -3 and values[2] < -3 and errors[0] is None and errors[2] is None
        assert math.isnan(values[1]) and errors[1]
        assert oracle.docked == 3
        again, _ = oracle(["c1ccc(cc1)C(=O)O", "CC(=O)Nc1ccc(O)cc1"])  # another spelling of benzoic acid: cached
        assert oracle.docked == 3 and again.tolist() == [values[2], values[0]]
    finally:
        oracle.close()
    index = pd.read_csv(tmp_path / "run" / "poses" / "index.csv")
    assert len(index) == 2 and all((tmp_path / "run" / "poses" / f).exists() for f in index.file)
    reread = DockingOracle(cfg, tmp_path)  # the cache file answers without docking
    assert reread(["CC(=O)Nc1ccc(O)cc1"])[0][0] == values[0] and reread.docked == 0


@needs_vina
def test_a_molecule_past_the_timeout_fails_and_the_next_one_docks(tmp_path):
    cfg = DockingConfig(receptor=str(RECEPTOR), center=BOX["center"], size=[14.0, 14.0, 14.0], exhaustiveness=64, workers=1, timeout=3.0)
    oracle = DockingOracle(cfg, tmp_path)
    try:
        values, errors = oracle(["CCCCCCCCCCCCCCCC(=O)NCCc1ccc(O)cc1"])
        assert math.isnan(values[0]) and errors[0].startswith("timeout")
    finally:
        oracle.close()


@needs_vina
@pytest.mark.slow
def test_scoring_file_with_docking_end_to_end_from_the_cli(untrained_tiny_vae, tmp_path):
    from typer.testing import CliRunner

    from molgen.cli import app

    text = (ROOT / "configs" / "scoring_docking.toml").read_text()
    text = text.replace("../data/receptors/1pwc_receptor.pdbqt", str(RECEPTOR)).replace("exhaustiveness = 4", "exhaustiveness = 1")
    (tmp_path / "s.toml").write_text(text)
    out = tmp_path / "run"
    args = ["optimize", "--objective", str(tmp_path / "s.toml"), "--method", "bo", "--budget", "8", "--model", untrained_tiny_vae.meta["path"],
            "-o", str(out), "--quiet", "--pareto", "--option", "dims=4", "--option", "n_init=4", "--option", "batch_size=4",
            "--option", "projection_molecules=300", "--option", "finetune_every=0", "--option", "n_candidates=128"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out / "molecules.csv")
    assert {"dock_raw", "dock_desirability", "qed_raw", "sa_desirability"} <= set(frame.columns)
    assert (frame.dock_raw < 0).all() and (out / "pareto.csv").exists() and (out / "poses" / "index.csv").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scoring"]["dock"]["docked"] >= len(frame)
    assert np.isfinite(frame.objective).all()
