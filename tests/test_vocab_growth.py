"""Vocabulary growth when fine-tuning, and a stereo-aware model through every molecule-in/molecule-out command."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_ARCH
from rdkit import Chem

from molgen.chem.standardization import has_formal_charge, has_stereo
from molgen.errors import ConfigError
from molgen.tokenizers import Vocabulary
from molgen.train.vocab_growth import NOISE_SCALE, extend_vocabulary, grow_state_dict
from molgen.generate.strings import strings_to_smiles
from molgen.vae import MoleculeVAE
from molgen.vae.training import VAETrainingConfig, _warm_start, train_vae

ROOT = Path(__file__).resolve().parents[1]


def _stereo_charged_zinc(n: int) -> list[str]:
    """The first ``n`` ZINC-250k molecules that carry both a stereocentre and a formal charge."""
    out = []
    with gzip.open(ROOT / "data" / "zinc250k.smi.gz", "rt") as fh:
        for line in fh:
            mol = Chem.MolFromSmiles(line.split()[0])
            if has_stereo(mol) and has_formal_charge(mol):
                out.append(Chem.MolToSmiles(mol))
                if len(out) == n:
                    return out
    return out


@pytest.fixture(scope="module")
def stereo_smiles() -> list[str]:
    return _stereo_charged_zinc(120)


@pytest.fixture(scope="module")
def grown_run(tiny_run, stereo_smiles, tmp_path_factory):
    """The tiny MOSES model (no stereo, no charges) fine-tuned one epoch on stereo/charged ZINC molecules."""
    out = tmp_path_factory.mktemp("grown")
    config = VAETrainingConfig(
        representation="selfies", model=TINY_ARCH, train=dict(epochs=1, batch_size=32, lr=3e-3, seed=0),
        kl=dict(kind="constant", beta=0.5, warmup_steps=0), val_fraction=0.1,
    )  # fmt: skip
    train_vae(stereo_smiles, out, config, device="cpu", show_progress=False, init_from=tiny_run / "model.safetensors")
    return out


def test_extend_vocabulary_keeps_ids_and_appends_by_frequency():
    old = Vocabulary(["[C]", "[O]"])
    grown, added = extend_vocabulary(old, [["[C]", "[C@H1]", "[/C]"], ["[C@H1]", "[O]", "<unk>"]])
    assert added == ["[C@H1]", "[/C]"]
    assert grown.tokens[: len(old)] == old.tokens and grown.tokens[len(old):] == added
    same, none = extend_vocabulary(old, [["[C]"]])
    assert same is old and none == []


def test_grow_state_dict_keeps_old_rows_and_initialises_new_ones():
    torch.manual_seed(0)
    old = {"embedding.weight": torch.randn(10, 6), "output.weight": torch.randn(10, 5), "output.bias": torch.randn(10), "other": torch.randn(3)}
    target = {"embedding.weight": torch.zeros(13, 6), "output.weight": torch.zeros(13, 5), "output.bias": torch.zeros(13), "other": torch.zeros(3)}
    grown = grow_state_dict(old, target, old_vocab_size=10, seed=1)
    for name in old:
        assert torch.equal(grown[name][: len(old[name])], old[name])  # old rows exactly kept
    data_rows = old["embedding.weight"][4:]
    new = grown["embedding.weight"][10:]
    assert not torch.equal(new[0], new[1])  # distinguishable
    spread = data_rows.std(0)
    assert torch.all((new - data_rows.mean(0)).abs() <= 5 * NOISE_SCALE * spread)  # close to the mean row
    assert torch.all(grown["output.bias"][10:] == old["output.bias"][4:].min())  # start unlikely
    with pytest.raises(ConfigError, match="cannot grow"):
        grow_state_dict(old, {**target, "embedding.weight": torch.zeros(13, 7)}, old_vocab_size=10)


def test_warm_start_grows_the_model_and_keeps_old_weights(tiny_run):
    source = MoleculeVAE.load(tiny_run, device="cpu")
    vocab = Vocabulary(source.vocab.tokens[4:] + ["[C@@H1]", "[NH3+1]"])
    from molgen.models.build import build_seq_vae

    vae = MoleculeVAE(build_seq_vae(source.config.__class__(**{**source.config.to_dict(), "vocab_size": len(vocab)})), vocab, None, device="cpu")
    _warm_start(vae, tiny_run / "model.safetensors", seed=0)
    old, new = source.model.state_dict(), vae.model.state_dict()
    for name, weight in old.items():
        assert torch.equal(new[name][: weight.shape[0]], weight), name
    assert new["output.weight"].shape[0] == len(vocab)
    with pytest.raises(ConfigError, match="does not extend"):
        other = Vocabulary(list(reversed(source.vocab.tokens[4:])))
        _warm_start(MoleculeVAE(build_seq_vae(source.config), other, None, device="cpu"), tiny_run / "model.safetensors")


def test_fine_tune_drops_no_molecule_for_vocabulary(grown_run, tiny_run, stereo_smiles, capsys):
    base = MoleculeVAE.load(tiny_run, device="cpu")
    grown = MoleculeVAE.load(grown_run, device="cpu")
    config = json.loads((grown_run / "config.json").read_text())
    assert config["data"]["skipped"] == {"untokenizable": 0, "too_long": 0}
    assert config["data"]["n_train"] + config["data"]["n_val"] == len(stereo_smiles)
    added = config["data"]["vocab_added"]
    assert "[C@@H1]" in added or "[C@H1]" in added
    assert grown.vocab.tokens == base.vocab.tokens + added
    assert grown.meta["init_from"]["vocab_added"] == added  # the checkpoint says where its tokens came from
    # The base model cannot spell these molecules at all; the grown one spells every one.
    assert len(base.tokenize(stereo_smiles)[2]) < len(stereo_smiles) // 2
    assert len(grown.tokenize(stereo_smiles)[2]) == len(stereo_smiles)


def test_growth_line_is_printed(tiny_run, stereo_smiles, tmp_path, capsys):
    config = VAETrainingConfig(representation="selfies", model=TINY_ARCH, train=dict(epochs=1, batch_size=32, seed=0), val_fraction=0.0)
    train_vae(stereo_smiles[:20], tmp_path / "r", config, device="cpu", show_progress=False, init_from=tiny_run / "model.safetensors")
    line = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("vocabulary:")]
    assert len(line) == 1 and "added" in line[0] and "old rows kept exactly" in line[0]


def test_stereo_model_commands_keep_stereo_and_charges(grown_run, stereo_smiles):
    vae = MoleculeVAE.load(grown_run, device="cpu")
    z, kept = vae.encode(stereo_smiles[:8])
    assert kept == list(range(8)) and z.shape == (8, vae.config.latent_dim)
    recon = vae.reconstruct(stereo_smiles[:8])
    assert recon.inputs == stereo_smiles[:8]  # isomeric canonical inputs: nothing stripped on the way in
    assert len(vae.interpolate(stereo_smiles[0], stereo_smiles[1], steps=3)) == 3
    # Decoding writes what the tokens say: SELFIES stereo and charge symbols come out in the SMILES.
    text = "".join(vae.tokenizer.tokenize(stereo_smiles[0]))
    back = strings_to_smiles([text], "selfies", n_jobs=1)[0]
    assert back == stereo_smiles[0] and ("@" in back or "/" in back) and ("+" in back or "-" in back)


def test_stereo_model_scores_what_the_base_model_cannot(grown_run, tiny_run, stereo_smiles):
    from molgen.vae.likelihood import score_molecules

    grown = score_molecules(MoleculeVAE.load(grown_run, device="cpu"), stereo_smiles[:6], samples=2)
    base = score_molecules(MoleculeVAE.load(tiny_run, device="cpu"), stereo_smiles[:6], samples=2)
    assert (grown["status"] == "ok").all() and np.isfinite(grown["iw_ll"]).all()
    assert (base["status"] == "out_of_vocabulary").sum() >= 3


GRADIENT_FAST = dict(n_starts=4, steps=2, decode_every=1, predictor_train_size=60, predictor={"epochs": 2, "model": {"hidden": 8, "members": 1}})
BO_FAST = dict(surrogate="latent", finetune_every=0, projection="none", n_init=4, batch_size=3, n_candidates=64, fit_iters=5, max_train=32)


@pytest.mark.parametrize("method,options", [("gradient", GRADIENT_FAST), ("bo", BO_FAST)])
def test_optimizers_start_from_stereo_molecules(grown_run, stereo_smiles, method, options):
    from molgen.optimize import optimize

    vae = MoleculeVAE.load(grown_run, device="cpu")
    result = optimize("qed", vae, method=method, budget=12, start=stereo_smiles[0], min_similarity=0.0, options=options, seed=0)
    assert result.oracle.calls >= 1
    assert result.oracle.starts == [stereo_smiles[0]]  # the start keeps its stereo and charge


def test_gradient_refuses_a_start_the_base_model_cannot_spell(tiny_run, stereo_smiles):
    from molgen.optimize import optimize

    unspellable = next(s for s in stereo_smiles if not MoleculeVAE.load(tiny_run, device="cpu").tokenize([s])[2])
    with pytest.raises(ConfigError, match="cannot be written"):
        optimize("qed", str(tiny_run), budget=12, start=unspellable, min_similarity=0.0, options=GRADIENT_FAST, seed=0, device="cpu")
