"""Scoring files: desirability transforms, aggregation, TOML checking, per-component columns, Pareto fronts."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from molgen import chem
from molgen.errors import ConfigError
from molgen.optimize import optimize
from molgen.optimize.desirability import Transform, aggregate
from molgen.optimize.pareto import pareto_front, pareto_mask
from molgen.optimize.scoring import load_scoring, load_scoring_config

BO = dict(dims=4, n_init=8, batch_size=6, n_candidates=256, fit_iters=15, projection_molecules=300, finetune_every=0)

SCORING = """
aggregate = "arithmetic"
pareto = ["qed", "lipo"]

[[component]]
name = "qed"
type = "property"
property = "qed"
weight = 2
transform = { kind = "sigmoid", low = 0.2, high = 0.8 }

[[component]]
name = "lipo"
type = "property"
property = "logp"
transform = { kind = "double_sigmoid", low = 1.0, high = 3.0 }

[[component]]
name = "nitro"
type = "alerts"
smarts = ["[N+](=O)[O-]"]
transform = { kind = "step", high = 0 }

[[component]]
name = "near_paracetamol"
type = "similarity"
references = ["CC(=O)Nc1ccc(O)cc1"]
"""


def _write(tmp_path, text, name="scoring.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_transforms_take_the_documented_values():
    assert Transform("sigmoid", 0.0, 10.0).apply([0, 5, 10]) == pytest.approx([0.0474, 0.5, 0.9526], abs=1e-4)
    assert Transform("reverse_sigmoid", 0.0, 10.0).apply([0, 10]) == pytest.approx([0.9526, 0.0474], abs=1e-4)
    window = Transform("double_sigmoid", 2.0, 4.0).apply([2.0, 3.0, 4.0, 8.0, -3.0])
    assert window[0] == pytest.approx(0.5, abs=0.01) and window[2] == pytest.approx(0.5, abs=0.01)
    assert window[1] > 0.99 and window[3] < 1e-3 and window[4] < 1e-3
    assert Transform("step", low=1.0).apply([0.5, 1.0, 9.0]).tolist() == [0.0, 1.0, 1.0]
    assert math.isnan(Transform("step", high=0.0).apply([math.nan])[0])
    assert Transform().apply([0.3]).tolist() == [0.3]


@pytest.mark.parametrize(
    "kwargs, match",
    [({"kind": "sigmoid", "low": 1.0}, "needs both low and high"), ({"kind": "sigmoid", "low": 2.0, "high": 1.0}, "low < high"),
     ({"kind": "step"}, "low, high or both"), ({"kind": "sigmoid", "low": 0.0, "high": 1.0, "steepness": 0.0}, "steepness > 0"),
     ({"kind": "none", "low": 0.0}, "takes no low")],
)  # fmt: skip
def test_bad_transform_parameters_are_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Transform(**kwargs)


def test_weighted_means():
    d = [[1.0, 0.25], [0.0, 1.0]]
    assert aggregate(d, [1, 1], "arithmetic") == pytest.approx([0.625, 0.5])
    assert aggregate(d, [1, 1], "geometric") == pytest.approx([0.5, 0.0])  # one zero vetoes
    assert aggregate(d, [3, 1], "geometric")[0] == pytest.approx(0.25 ** 0.25)
    assert aggregate(d, [1, 0], "geometric") == pytest.approx([1.0, 0.0])  # a zero weight neither vetoes nor counts


def test_scoring_file_gives_every_raw_and_transformed_value(tmp_path):
    objective = load_scoring(_write(tmp_path, SCORING))
    smiles = ["CC(=O)Nc1ccc(O)cc1", "O=[N+]([O-])c1ccccc1"]
    scored = objective.score(smiles)
    qed = [chem.qed(chem.parse_smiles(s)) for s in smiles]
    logp = [chem.logp(chem.parse_smiles(s)) for s in smiles]
    first, second = scored.components
    assert first["qed_raw"] == pytest.approx(qed[0]) and first["lipo_raw"] == pytest.approx(logp[0])
    assert first["nitro_raw"] == 0 and second["nitro_raw"] == 1 and second["nitro_desirability"] == 0
    assert first["near_paracetamol_raw"] == pytest.approx(1.0) and first["near_paracetamol_desirability"] == pytest.approx(1.0)
    d_qed = Transform("sigmoid", 0.2, 0.8).apply([qed[0]])[0]
    d_lipo = Transform("double_sigmoid", 1.0, 3.0).apply([logp[0]])[0]
    assert scored.values[0] == pytest.approx((2 * d_qed + d_lipo + 1 + 1) / 5)
    assert all(e is None for e in scored.errors)


def test_a_failing_component_fails_the_molecule_with_its_name(tmp_path):
    (tmp_path / "score.py").write_text("def f(smiles):\n    if any('N' in s for s in smiles):\n        raise ValueError('no nitrogen please')\n    return [1.0] * len(smiles)\n")
    text = '[[component]]\nname = "user"\ntype = "function"\nfunction = "score.py:f"\n'
    scored = load_scoring(_write(tmp_path, text)).score(["CCO", "CCN"])
    assert scored.values[0] == 1.0 and math.isnan(scored.values[1])
    assert scored.errors[0] is None and scored.errors[1].startswith("user: ValueError: no nitrogen please")


@pytest.mark.parametrize(
    "text, match",
    [
        ('[[component]]\nname = "a"\ntype = "property"\nproperty = "qed"\nfoo = 1\n', r"component\[0\] \(a, type property\): unknown key 'foo'"),
        ('[[component]]\nname = "a"\ntype = "property"\nproperty = "qed"\ntransform = { kind = "sigmoid", low = 0, hgh = 1 }\n',
         r"component\[0\]\.transform: unknown key 'hgh'"),
        ('[[component]]\nname = "a"\ntype = "property"\nproperty = "qed"\ntransform = { kind = "sigmoid", low = 2, high = 1 }\n', "low < high"),
        ('[[component]]\nname = "a"\ntype = "predictor"\npath = "missing.safetensors"\noutput = "x"\n', r"\(a\)\.path: file .*missing.safetensors does not exist"),
        ('[[component]]\nname = "a"\ntype = "dock"\n', r"component\[0\]\.type must be one of"),
        ('[[component]]\nname = "a"\ntype = "property"\nproperty = "qed"\nweight = "high"\n', r"component\[0\]\.weight must be a number"),
        ('[[component]]\nname = "a"\ntype = "property"\nproperty = "qed"\n[[component]]\nname = "a"\ntype = "property"\nproperty = "sa"\n', "used twice"),
        ('aggregate = "median"\n[[component]]\nname = "a"\ntype = "property"\nproperty = "qed"\n', r"aggregate must be one of"),
        ('pareto = ["b"]\n[[component]]\nname = "a"\ntype = "property"\nproperty = "qed"\n', "pareto names 'b'"),
        ('[[component]]\nname = "a"\ntype = "alerts"\ncatalogs = ["painz"]\n', "catalogs has 'painz'"),
        ("[[component]\n", "not valid TOML"),
    ],
)  # fmt: skip
def test_bad_scoring_files_are_one_line_errors_naming_the_key(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match) as info:
        load_scoring_config(_write(tmp_path, text))
    assert "\n" not in str(info.value)


def test_missing_scoring_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        optimize(str(tmp_path / "nope.toml"), model=object(), budget=5)


def test_pareto_mask_and_front():
    values = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.4, 0.4], [0.5, 0.5], [np.nan, 2.0]])
    assert pareto_mask(values).tolist() == [True, True, True, False, True, False]  # equal points do not dominate each other
    cube = np.random.default_rng(0).random((200, 3))
    mask = pareto_mask(cube)
    for i in np.flatnonzero(~mask):  # every dropped point is dominated by a kept one
        assert np.any(np.all(cube[mask] >= cube[i], axis=1))
    frame = pd.DataFrame(values[:5], columns=["a", "b"])
    with pytest.raises(ConfigError, match="2 or 3 objectives"):
        pareto_front(frame, ["a"])


def test_optimize_with_a_scoring_file_end_to_end(untrained_tiny_vae, tmp_path):
    path = _write(tmp_path, SCORING)
    out = tmp_path / "run"
    result = optimize(str(path), model=untrained_tiny_vae, method="bo", budget=14, options=BO, out_dir=out, pareto=True)
    frame = pd.read_csv(out / "molecules.csv")
    for name in ("qed", "lipo", "nitro", "near_paracetamol"):
        assert f"{name}_raw" in frame and f"{name}_desirability" in frame
    assert frame["qed_raw"].to_numpy() == pytest.approx(frame["qed"].to_numpy(), abs=1e-5)
    weights = np.array([2, 1, 1, 1])
    d = frame[[f"{n}_desirability" for n in ("qed", "lipo", "nitro", "near_paracetamol")]].to_numpy()
    assert frame["objective"].to_numpy() == pytest.approx(d @ weights / weights.sum(), abs=1e-5)
    front = pd.read_csv(out / "pareto.csv")
    assert 1 <= len(front) <= len(frame) and set(front.smiles) <= set(frame.smiles)
    assert pareto_mask(front[["qed_desirability", "lipo_desirability"]].to_numpy()).all()
    assert (out / "pareto.png").exists() and result.oracle.calls == 14
    log = [json.loads(line) for line in (out / "oracle_log.jsonl").read_text().splitlines()]
    assert "lipo_desirability" in log[0]["components"]


def test_pareto_needs_a_scoring_file_with_two_or_three_components(tmp_path):
    with pytest.raises(ConfigError, match="--pareto needs a scoring file"):
        optimize("qed", model=object(), budget=5, pareto=True)
    text = SCORING.replace('pareto = ["qed", "lipo"]', "")
    with pytest.raises(ConfigError, match="compares 2 or 3 components"):
        optimize(str(_write(tmp_path, text)), model=object(), budget=5, pareto=True)
