"""A new user's first hour (issue 30): verbatim SMILES on the console, pretrained models by name,
fine-tuning that takes the checkpoint's architecture, user objectives in either form, the sanity
filter, input/output friction, and the property columns of sampled molecules."""

from __future__ import annotations

import gzip
import json
import math
import signal
import warnings
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from molgen.cli import main
from molgen.errors import CheckpointError

BRACKETED = ["c1ccc2[nH]ccc2c1", "C[C@@H](N)C(=O)O", "C[N+](C)(C)C", "CC(=O)[O-]", "[2H]C([2H])([2H])O"]


def run(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- 1. printed SMILES are verbatim ----------------------------------------------------------


@pytest.mark.parametrize("smiles", BRACKETED)
def test_error_lines_print_bracket_atoms_verbatim(smiles, tmp_path, capsys):
    bad = smiles + "Q"  # not a molecule: the error names it
    code, _, err = run(capsys, "optimize", "--objective", "qed", "--start", bad, "-o", tmp_path / "o")
    assert code == 2 and bad in err and "Traceback" not in err


@pytest.mark.parametrize("smiles", BRACKETED)
def test_optimizer_top_line_and_warnings_print_bracket_atoms_verbatim(smiles, tmp_path, capsys):
    from molgen.cli import _common as cli
    from molgen.cli.optimize import _report

    counts = {"invalid": 0, "duplicate": 0, "infeasible": 0, "filtered": 0, "failed": 0}
    result = SimpleNamespace(
        oracle=SimpleNamespace(calls=1, counts=counts), summary={"seconds": 1.0},
        top=lambda k: pd.DataFrame({"objective": [0.5], "smiles": [smiles]}),
    )  # fmt: skip
    _report(result, tmp_path)
    cli._show_warning(f"condition for {smiles} is odd", UserWarning, cli.__file__, 1)
    err = capsys.readouterr().err
    assert f"top: 0.5 {smiles}" in err
    assert f"warning: condition for {smiles} is odd" in err


# -- 2. pretrained models by name; fine-tuning takes the checkpoint's architecture ----------------


def test_pretrained_models_resolve_by_name_from_any_folder(tmp_path, monkeypatch, capsys):
    from molgen.pretrained import PRETRAINED, resolve_model_spec
    from molgen.vae import resolve_model_path

    monkeypatch.chdir(tmp_path)  # no data/ here
    assert resolve_model_path("default").name == "default_model.safetensors" and resolve_model_path("default").is_file()
    assert resolve_model_path("zinc").name == "zinc_model.safetensors" and resolve_model_path("zinc").is_file()
    assert resolve_model_path(None) == resolve_model_path("default")
    (tmp_path / "zinc").mkdir()  # a folder of that name in the working directory wins
    assert resolve_model_spec("zinc") == Path("zinc")
    code, out, _ = run(capsys, "info", "--list")
    assert code == 0 and {m["name"] for m in json.loads(out)} == set(PRETRAINED)


def test_data_folder_is_found_inside_an_installed_package(tmp_path, monkeypatch):
    from molgen import pretrained

    installed = tmp_path / "molgen" / "_data"
    installed.mkdir(parents=True)
    (installed / "default_model.safetensors").write_bytes(b"x")
    monkeypatch.setattr(pretrained, "_PACKAGE_DATA", installed)
    assert pretrained.data_dir() == installed
    with pytest.raises(CheckpointError, match="zinc"):
        pretrained.pretrained_path("zinc")  # listed but not installed: one line naming it
    with pytest.raises(CheckpointError, match="no pretrained model named 'nope'"):
        pretrained.pretrained_path("nope")


def test_the_wheel_ships_the_data_folder():
    setup = (Path(__file__).resolve().parents[1] / "setup.py").read_text()
    project = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert '"molgen._data": "data"' in setup and '"molgen._data" = [' in project and "*.safetensors" in project


def test_init_from_takes_the_checkpoints_architecture_unless_overridden():
    from molgen.vae.init_from import inherit_architecture

    shape = inherit_architecture("default")
    assert shape.representation == "selfies" and shape.max_length == 100
    assert (shape.model["decoder_hidden"], shape.model["encoder_hidden"], shape.model["latent_dim"]) == (256, 128, 128)
    assert "decoder_hidden" in shape.inherited
    override = inherit_architecture("default", decoder_hidden=512, representation="smiles")
    assert override.model["decoder_hidden"] == 512 and override.representation == "smiles"
    plain = inherit_architecture(None)
    assert plain.inherited == [] and plain.representation == "selfies" and "decoder_hidden" not in plain.model


def test_fine_tune_from_a_run_folder_inherits_its_sizes(tiny_run, tiny_smiles, tmp_path, capsys):
    data = tmp_path / "d.smi"
    data.write_text("\n".join(tiny_smiles[:80]) + "\n")
    code, _, err = run(
        capsys, "train", "--data", data, "--out", tmp_path / "ft", "--init-from", tiny_run, "--epochs", 1, "--batch-size", 32, "--quiet",
        "--condition-on", "logp",
    )  # fmt: skip
    assert code == 0, err
    from molgen.vae import MoleculeVAE

    tuned, source = MoleculeVAE.load(tmp_path / "ft", device="cpu"), MoleculeVAE.load(tiny_run, device="cpu")
    assert tuned.config.decoder_hidden == source.config.decoder_hidden == 64 and tuned.config.cond_dim == 1


# -- 3. user objectives in either form -------------------------------------------------------

OBJECTIVES = '''
from rdkit import Chem
def per(smiles):
    return Chem.MolFromSmiles(smiles).GetNumAtoms() / 10
def batch(smiles):
    return [Chem.MolFromSmiles(s).GetNumAtoms() / 10 for s in smiles]
def annotated(smiles: str) -> float:
    return float(len(smiles))
def broken(smiles):
    raise TypeError("no")
def flaky(smiles: list) -> list:
    if any("N" in s for s in smiles):
        raise ValueError("cannot score nitrogen")
    return [1.0] * len(smiles)
'''


@pytest.fixture
def objective_file(tmp_path):
    path = tmp_path / "objs.py"
    path.write_text(OBJECTIVES)
    return path


@pytest.mark.parametrize("name,form", [("per", "molecule"), ("batch", "batch"), ("annotated", "molecule")])
def test_user_objective_per_molecule_and_batch_forms(objective_file, name, form):
    from molgen.optimize.objectives import parse_objective

    objective = parse_objective(f"{objective_file}:{name}")
    scores = objective.score(["CCO", "c1ccc2[nH]ccc2c1", "CC"])
    assert scores.errors == [None] * 3
    expected = [3, 16, 2] if name == "annotated" else [0.3, 0.9, 0.2]
    assert list(scores.values) == pytest.approx(expected)
    assert objective.terms[0].func.form == form


def test_batch_objective_failing_on_one_molecule_fails_only_that_one(objective_file):
    from molgen.optimize.objectives import parse_objective

    scores = parse_objective(f"{objective_file}:flaky").score(["CCO", "CCN", "CC"])
    assert scores.values[0] == 1.0 and math.isnan(scores.values[1]) and scores.values[2] == 1.0
    assert "cannot score nitrogen" in scores.errors[1]


def test_user_objective_of_neither_form_says_what_is_expected(objective_file, tmp_path, capsys):
    code, _, err = run(
        capsys, "optimize", "--objective", f"{objective_file}:broken", "--budget", 4, "-o", tmp_path / "o", "--method", "bo",
        "--option", "n_init=4", "--option", "n_candidates=32", "--option", "finetune_every=0", "--quiet", "--device", "cpu",
    )  # fmt: skip
    assert code == 2
    assert "def f(smiles: str) -> float" in err and "def f(smiles: list[str]) -> list[float]" in err
    assert "n_init" not in err and "Traceback" not in err


def test_optimize_help_documents_the_objective_signature(capsys):
    code, out, _ = run(capsys, "optimize", "--help")
    assert code == 0 and "f(smiles: str) -> float" in out and "docs/examples/objective.py" in out
    assert "[gradient] starting points" in out  # help text printed as written, brackets included


# -- 4. the sanity filter --------------------------------------------------------------------


def test_sanity_filter_reasons():
    from molgen.optimize.sanity import SanityFilter

    sanity = SanityFilter()
    assert sanity.reason("CC(=O)Nc1ccccccccccc(Cl)cc1") == "aromatic ring of 14 atoms"
    assert sanity.reason("C1CCCCCCCCC1") == "ring of 10 atoms"
    assert sanity.reason("O=C1C=CC(=O)C=C1") == "structural alert (MCF/PAINS)"  # a quinone
    assert sanity.reason("CC(=O)Nc1ccc(O)cc1") is None and sanity.reason("c1ccc2[nH]ccc2c1") is None
    assert SanityFilter(alerts=False).reason("O=C1C=CC(=O)C=C1") is None
    # A radical (the drug-like model's [CH1] token can write one); charged closed-shell molecules pass.
    assert sanity.reason("C[C@@H]1CC[C@H]([NH3+])C[C@@H]1C(=O)[CH]Cl") == "radical (unpaired electron)"
    assert sanity.reason("C[C@@H]1CC[C@H]([NH3+])C[C@@H]1C(=O)[O-]") is None
    assert SanityFilter(radicals=False).reason("CC(=O)[CH]Cl") is None


def test_filtered_molecules_cost_no_oracle_call(tmp_path):
    from molgen.optimize import Oracle
    from molgen.optimize.sanity import SanityFilter

    oracle = Oracle("qed", budget=10, sanity=SanityFilter(), log_path=tmp_path / "log.jsonl")
    values = oracle(["CC(=O)Nc1ccccccccccc(Cl)cc1", "CC(=O)Nc1ccc(O)cc1", "C1CCCCCCCCC1"])
    assert math.isnan(values[0]) and values[1] > 0 and math.isnan(values[2])
    assert oracle.calls == 1 and oracle.counts["filtered"] == 2
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert sorted(r["status"] for r in log) == ["filtered", "filtered", "ok"]
    unfiltered = Oracle("qed", budget=10)
    unfiltered(["CC(=O)Nc1ccccccccccc(Cl)cc1"])
    assert unfiltered.calls == 1 and unfiltered.counts["filtered"] == 0


def test_alerts_a_lead_carries_are_allowed_near_it_and_no_others():
    from molgen.optimize import Oracle
    from molgen.optimize.sanity import SanityFilter

    sanity = SanityFilter()
    thio, mannich = "CCC1(CC)C(=O)NC(=NNC(N)=S)NC1=O", "COCc1ccc(C[NH+](C)Cc2ccccc2O)o1"  # two constrained-set leads
    assert sanity.alert_names(sanity.lead_alerts(thio)) == ["MCF10"]
    assert sanity.alert_names(sanity.lead_alerts(mannich)) == ["mannich_A(296)"]
    assert sanity.lead_alerts("CC(=O)Nc1ccc(O)cc1") == frozenset() and SanityFilter(alerts=False).lead_alerts(thio) == frozenset()
    neighbour = "CCC1(C)C(=O)NC(=NNC(N)=S)NC1=O"  # the lead's alert, one methyl fewer
    quinone = "O=C1C=CC(=O)C(C2(CC)C(=O)NC(=NNC(N)=S)NC2=O)=C1"  # the lead's alert and a new one
    assert sanity.reason(neighbour) == "structural alert (MCF/PAINS)"
    assert sanity.reason(neighbour, allowed=sanity.lead_alerts(thio)) is None
    assert sanity.reason(quinone, allowed=sanity.lead_alerts(thio)) == "structural alert (MCF/PAINS)"
    # In the oracle the allowance follows each molecule's lead: another lead's neighbour gets none of it.
    oracle = Oracle("qed", budget=10, constraints=["sim>=0.3"], starts=[thio, "CC(=O)Nc1ccc(O)cc1"], sanity=sanity)
    values = oracle([neighbour, quinone], origins=[0, 0])
    assert values[0] > 0 and math.isnan(values[1]) and oracle.counts["filtered"] == 1
    other = Oracle("qed", budget=10, starts=["CC(=O)Nc1ccc(O)cc1"], sanity=sanity)
    assert math.isnan(other([neighbour], origins=[0])[0]) and other.counts["filtered"] == 1


def test_optimize_filters_by_default_and_can_be_switched_off(tiny_run, tmp_path, capsys):
    common = ["--model", tiny_run, "--method", "bo", "--budget", 6, "--option", "n_init=6", "--option", "n_candidates=32",
              "--option", "finetune_every=0", "--option", "projection=none", "--quiet", "--device", "cpu"]  # fmt: skip
    code, _, err = run(capsys, "optimize", "--objective", "qed", "-o", tmp_path / "on", *common)
    assert code == 0, err
    assert "filtered" in err
    on = json.loads((tmp_path / "on" / "summary.json").read_text())
    assert on["sanity_filter"]["max_ring_size"] == 8 and "filtered" in on["counts"]
    code, _, err = run(capsys, "optimize", "--objective", "qed", "-o", tmp_path / "off", "--no-sanity-filter", *common)
    assert code == 0, err
    off = json.loads((tmp_path / "off" / "summary.json").read_text())
    assert off["sanity_filter"] is None and off["counts"]["filtered"] == 0


# -- 5. friction -----------------------------------------------------------------------------


@pytest.mark.parametrize("sep", [";", "\t"])
def test_semicolon_and_tab_separated_csv_are_read(tmp_path, sep):
    from molgen.datasets import read_molecules

    path = tmp_path / "excel.csv"
    path.write_text(sep.join(["name", "smiles", "value"]) + "\n" + "\n".join(sep.join(["m", s, "1,5"]) for s in BRACKETED[:3]) + "\n")
    result = read_molecules(path)
    assert len(result.smiles) == 3 and result.n_skipped == 0


def test_predictor_labels_find_the_smiles_column(tmp_path):
    from molgen.datasets.labels import read_labels

    path = tmp_path / "labels.csv"
    path.write_text("id;structure;pIC50\n1;CCO;5.5\n2;c1ccc2[nH]ccc2c1;6.0\n3;CCN;7.25\n")
    table = read_labels(path, "pIC50")
    smiles, values, names = table.smiles, table.values, table.names
    assert smiles == ["CCO", "c1ccc2[nH]ccc2c1", "CCN"] and values[:, 0].tolist() == [5.5, 6.0, 7.25] and names == ["pIC50"]


def test_sample_zero_molecules_is_a_one_line_error(tmp_path, capsys):
    code, _, err = run(capsys, "sample", "-n", 0, "-o", tmp_path / "s.csv")
    assert code == 2 and "-n must be at least 1" in err and not (tmp_path / "s.csv").exists()
    code, _, err = run(capsys, "benchmark", "-n", 0, "-o", tmp_path / "r")
    assert code == 2 and "-n must be at least 1" in err and len(err.strip().splitlines()) == 1


def test_benchmark_accepts_moses_train_by_name(tmp_path, monkeypatch):
    import molgen.datasets
    from molgen.metrics.benchmark_run import named_training_set

    fake = tmp_path / "train.csv.gz"
    with gzip.open(fake, "wt") as fh:
        fh.write("SMILES\nCCO\nc1ccc2[nH]ccc2c1\n")
    monkeypatch.setattr(molgen.datasets, "moses_split", lambda name, fetch=True: fake)
    assert named_training_set("moses-train") == ["CCO", "c1ccc2[nH]ccc2c1"]
    assert named_training_set("my_train.smi") is None


def test_report_table_shows_unique_at_k_only_for_samples_of_k(capsys):
    from molgen.metrics.benchmark import _markdown

    metrics = {"valid": 1.0, "unique@1000": 0.99, "unique@10000": 0.99, "n_generated": 1000, "n_valid": 1000,
               "fcd_sample_size": 1000, "fcd_reference_size": 1000}  # fmt: skip
    row = next(line for line in _markdown(metrics, "Test", [], "ours").splitlines() if "**ours**" in line)
    cells = [c.strip() for c in row.split("|")]
    assert cells[3] == "0.990" and cells[4] == "—"  # unique@1000 shown, unique@10000 not


def test_run_lock_leaves_no_file(tmp_path):
    from molgen.utils.io import RunLock

    with RunLock(tmp_path / "report"):
        assert (tmp_path / "report" / ".lock").exists()
    assert not (tmp_path / "report" / ".lock").exists()


def test_interrupted_sampling_keeps_what_was_drawn(tmp_path):
    from molgen.generate.writer import partial_path, write_samples

    def chunks():
        yield ["CCO", None, "c1ccc2[nH]ccc2c1"]
        raise KeyboardInterrupt

    out = tmp_path / "s.csv"
    done = write_samples(chunks(), out)
    assert done.interrupted and done.path == partial_path(out) and not out.exists()
    assert done.path.read_text() == "smiles\nCCO\nc1ccc2[nH]ccc2c1\n"


def test_pool_workers_leave_ctrl_c_to_the_parent():
    from molgen import chem

    with chem.process_pool(1) as pool:
        assert pool.submit(signal.getsignal, signal.SIGINT).result() == signal.SIG_IGN


def test_weak_predictor_is_reported_once(capsys):
    from molgen.cli.optimize import _report

    counts = {"invalid": 0, "duplicate": 0, "infeasible": 0, "filtered": 0, "failed": 0}
    result = SimpleNamespace(
        oracle=SimpleNamespace(calls=1, counts=counts), summary={"seconds": 1.0, "predictor": {"weak": ["qed"], "report": "qed R2 0.1 WARNING"}},
        top=lambda k: pd.DataFrame({"objective": [0.5], "smiles": ["CCO"]}),
    )  # fmt: skip
    _report(result, Path("."))  # optimize() warned when it fitted the predictor; the summary does not repeat it
    assert "R2" not in capsys.readouterr().err


def test_library_deprecations_and_rdkit_logs_stay_off_the_console(capfd):
    from rdkit import Chem

    from molgen.cli import _common as cli

    cli._show_warning("old API", DeprecationWarning, cli.__file__, 1)
    cli._show_warning("torch says", UserWarning, "/site-packages/torch/nn/x.py", 1)
    cli._quiet_rdkit()
    assert Chem.MolFromSmiles("C1CC") is None
    err = capfd.readouterr().err
    assert err == ""
    cli._show_warning("molgen says", UserWarning, cli.__file__, 1)
    assert "molgen says" in capfd.readouterr().err


# -- 6. property columns of sampled molecules ------------------------------------------------


def test_sample_csv_has_property_columns_and_novelty(tiny_run, tmp_path, capsys):
    out = tmp_path / "s.csv"
    code, _, err = run(capsys, "sample", "--model", tiny_run, "-n", 40, "-o", out, "--device", "cpu", "--seed", 1)
    assert code == 0, err
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["smiles", "mw", "logp", "qed", "sa", "tpsa", "hbd", "hba", "rings", "alerts_ok", "novel"]
    from molgen import chem

    for row in frame.head(5).itertuples():
        assert row.mw == pytest.approx(chem.mol_weight(chem.parse_smiles(row.smiles)), abs=0.01)
        assert row.qed == pytest.approx(chem.qed(chem.parse_smiles(row.smiles)), abs=1e-3)
    train = set((tiny_run / "train.smi").read_text().split())
    assert frame.novel.tolist() == [s not in train for s in frame.smiles]
    code, _, err = run(capsys, "sample", "--model", tiny_run, "-n", 40, "-o", tmp_path / "p.csv", "--device", "cpu", "--seed", 1, "--no-properties")
    plain = pd.read_csv(tmp_path / "p.csv")
    assert code == 0 and list(plain.columns) == ["smiles"] and plain.smiles.tolist() == frame.smiles.tolist()


def test_grid_legends_carry_properties():
    from molgen.generate.table import describe_molecule, grid_legend

    assert grid_legend(2, describe_molecule("CC(=O)Nc1ccc(O)cc1")).startswith("#3  QED 0.59  SA 1.")
    assert grid_legend(0, None) == "#1"


def test_describe_molecule_flags_alerts():
    from molgen.generate.table import PROPERTY_COLUMNS, describe_molecule

    quinone = dict(zip(PROPERTY_COLUMNS, describe_molecule("O=C1C=CC(=O)C=C1")))
    assert quinone["alerts_ok"] is False and quinone["rings"] == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert describe_molecule("not a molecule") is None


def test_sampling_without_the_training_set_has_no_novel_column(tmp_path, monkeypatch, capsys):
    """A fresh install has no MOSES cache: the default model's samples come without the novel column, not an error."""
    import molgen.datasets
    from molgen.errors import DataError

    def missing(name, fetch=True):
        assert not fetch, "a property column must not download the MOSES sets"
        raise DataError("MOSES train file not found; run `molgen data moses`")

    monkeypatch.setattr(molgen.datasets, "moses_split", missing)
    code, _, err = run(capsys, "sample", "-n", 8, "-o", tmp_path / "s.csv", "--device", "cpu", "--batch-size", 8)
    assert code == 0, err
    assert "no novel column" in err and pd.read_csv(tmp_path / "s.csv").columns[-1] == "alerts_ok"


def test_no_rich_markup_tags_in_console_messages():
    """Consoles print with markup off, so a closing tag in a message would reach the user literally."""
    import re

    root = Path(__file__).resolve().parents[1] / "molgen"
    tag = re.compile(r"\[/(dim|bold|italic|red|green|yellow|cyan|blue|magenta)\]")
    offenders = [f"{p.relative_to(root)}:{i}" for p in root.rglob("*.py")
                 for i, line in enumerate(p.read_text().splitlines(), 1) if tag.search(line)]
    assert offenders == []
