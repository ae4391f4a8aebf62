"""The input standardisation policy: what it changes, that it counts every change, and its hooks."""

from __future__ import annotations

import pytest
from rdkit import Chem

from molgen.chem.standardization import (
    StandardizePolicy,
    StandardizeReport,
    standardize_mol,
    standardize_smiles,
    stereo_charge_rates,
)
from molgen.cli import main
from molgen.datasets import read_molecules
from molgen.errors import ConfigError

MIXED = [
    "CC[NH3+].[Cl-]",  # salt
    "C[C@H](N)C(=O)O",  # stereocentre
    "[2H]C([2H])([2H])OC",  # isotopes
    "CC(=O)[O-].[Na+]",  # salt, charged
    "C[C@H]([NH3+])C([O-])=O",  # zwitterion with a stereocentre
    "F/C=C/F",  # E/Z
    "[CH3:1]C",  # atom map
]


def test_default_policy_strips_salts_and_keeps_the_rest():
    out, report = standardize_smiles(MIXED, n_jobs=1)
    assert out == ["CC[NH3+]", "C[C@H](N)C(=O)O", "[2H]C([2H])([2H])OC", "CC(=O)[O-]", "C[C@H]([NH3+])C(=O)[O-]", "F/C=C/F", "CC"]
    assert report.counts == {
        "salts_stripped": 2, "charges_neutralized": 0, "stereo_dropped": 0, "isotopes_dropped": 0, "atom_maps_cleared": 1,
    }  # fmt: skip
    assert report.n_input == 7 and report.invalid == 0
    assert report.summary().startswith("standardised 7 molecule(s): stripped salts/solvents from 2, neutralised charges on 0")


def test_every_option_changes_and_counts():
    policy = StandardizePolicy(strip_salts=False, charges="neutralize", stereo="drop", isotopes="drop")
    out, report = standardize_smiles(MIXED + ["not a molecule"], policy, n_jobs=1)
    assert out[:3] == ["CCN.Cl", "CC(N)C(=O)O", "COC"]  # salts kept, then neutralised; stereo and isotopes gone
    # A carboxylate beside its Na+ stays charged: RDKit's Uncharger keeps the pair's net charge at zero.
    assert out[3] == "CC(=O)[O-].[Na+]"
    assert out[4:] == ["CC(N)C(=O)O", "FC=CF", "CC", None]
    assert report.counts["salts_stripped"] == 0
    assert report.counts["charges_neutralized"] == 2
    assert report.counts["stereo_dropped"] == 3
    assert report.counts["isotopes_dropped"] == 1
    assert report.invalid == 1 and "1 unparseable" in report.summary()


def test_neutralise_leaves_irreducible_charges():
    mol, changes = standardize_mol(Chem.MolFromSmiles("C[N+](C)(C)C"), StandardizePolicy(charges="neutralize"))
    assert Chem.MolToSmiles(mol) == "C[N+](C)(C)C" and changes == []


def test_bad_policy_value_is_a_config_error():
    with pytest.raises(ConfigError, match="stereo"):
        StandardizePolicy(stereo="remove")


def test_stereo_and_charge_rates():
    rates = stereo_charge_rates(["F/C=C/F", "C[C@H](N)O", "C[C@H](C)O", "CC[NH3+]", "garbage", None])
    # C[C@H](C)O is not a stereocentre: RDKit drops the label on parsing.
    assert rates == {"n_valid": 4, "stereo_rate": 0.5, "charge_rate": 0.25}


def test_reader_applies_the_policy_and_reports(tmp_path):
    path = tmp_path / "mine.smi"
    path.write_text("\n".join(MIXED) + "\n")
    plain = read_molecules(path)
    assert plain.standardized is None and plain.smiles[0] == "CC[NH3+].[Cl-]"
    result = read_molecules(path, standardize=StandardizePolicy(stereo="drop"))
    assert isinstance(result.standardized, StandardizeReport)
    assert result.smiles[0] == "CC[NH3+]" and result.smiles[1] == "CC(N)C(=O)O"
    assert result.standardized.counts["stereo_dropped"] == 3 and result.standardized.n_input == 7


def test_cli_reports_standardisation(tiny_run, tmp_path, capsys):
    path = tmp_path / "mine.smi"
    path.write_text("CCO.Cl\nCC[C@H](C)O\nCCN\n")
    assert main(["--drop-stereo", "encode", "-i", str(path), "-o", str(tmp_path / "z.npy"), "--model", str(tiny_run)]) == 0
    err = capsys.readouterr().err
    assert "stripped salts/solvents from 1" in err and "dropped stereo from 1" in err
    assert main(["encode", "-i", str(path), "-o", str(tmp_path / "z2.npy"), "--model", str(tiny_run)]) == 0
    assert "dropped stereo from 0" in capsys.readouterr().err
