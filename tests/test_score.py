"""Likelihood scoring: the ELBO and importance-weighted estimates against hand computations, statuses of
molecules the model cannot spell, AUROC and thresholds, and the ``molgen score`` command."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from molgen.cli import main
from molgen.errors import ConfigError
from molgen.vae import MoleculeVAE
from molgen.vae.likelihood import COLUMNS, auroc, flag_threshold, score_molecules

MOLS = ["CCOc1ccccc1C(=O)NCC1CCCO1", "Cc1ccc(S(=O)(=O)N2CCCC2)cc1", "O=C(Nc1ccccc1)c1ccco1"]


@pytest.fixture()
def vae(tiny_run):
    return MoleculeVAE.load(tiny_run, device="cpu")


def test_scores_match_a_hand_computed_elbo_when_the_posterior_is_a_point(vae):
    # With logvar = -20 every z ~ q(z|x) is mu, so log p(x|z) is the teacher-forced likelihood at
    # mu and the IW estimate is log p(x|mu) + log N(mu; 0, I) - log q(z|x), where
    # log q(z|x) = -0.5 * sum(eps^2 + logvar + log 2 pi): the eps^2 part is the only random term.
    with torch.no_grad():
        vae.model.to_logvar.weight.zero_()
        vae.model.to_logvar.bias.fill_(-20.0)
    frame = score_molecules(vae, MOLS, samples=4)
    ids, lengths, kept = vae.tokenize(MOLS)
    assert kept == [0, 1, 2]
    vae.model.eval()
    for i in range(3):
        one, n = ids[i : i + 1, : lengths[i]], lengths[i : i + 1]
        out = vae.model(one, n)
        mu = out.mu[0]
        d = mu.numel()
        kl = 0.5 * float((mu.detach().pow(2) + math.exp(-20.0) - 1.0 + 20.0).sum())
        log_pz = -0.5 * float(mu.detach().pow(2).sum()) - 0.5 * d * math.log(2 * math.pi)
        log_qz = -0.5 * d * (-20.0 + math.log(2 * math.pi))
        row = frame.iloc[i]
        assert row.status == "ok" and row.n_tokens == int(n) - 1
        assert row.recon_ll == pytest.approx(-out.recon.item(), abs=1e-3)
        assert row.kl == pytest.approx(kl, rel=1e-5)
        assert row.elbo == pytest.approx(-out.recon.item() - kl, abs=1e-2)
        # log-mean-exp over 4 draws of 0.5 * chi^2_8 (mean 4): positive, and far below the 80-nat logvar term.
        assert 0.0 < row.iw_ll - (-out.recon.item() + log_pz - log_qz) < 15.0
        assert row.iw_ll_per_token == pytest.approx(row.iw_ll / row.n_tokens)


def test_importance_weighting_tightens_the_bound(vae):
    mols = MOLS * 2
    k1 = score_molecules(vae, mols, samples=1, seed=0)
    k64 = score_molecules(vae, mols, samples=64, seed=0)
    # The IW bound is tighter than the ELBO in expectation (single molecules may fluctuate, since the
    # ELBO column uses the closed-form KL), and grows with K.
    assert k64.iw_ll.mean() > k64.elbo.mean()
    assert k64.iw_ll.mean() > k1.iw_ll.mean()
    assert np.all(k64[["elbo", "iw_ll"]].to_numpy() < 0)
    again = score_molecules(vae, mols, samples=64, seed=0)
    pd.testing.assert_frame_equal(k64, again)


def test_molecules_the_model_cannot_spell_are_reported_in_order(vae):
    inputs = ["C[N+](C)(C)C", MOLS[0], "c1ccccc1I", "not a molecule", "C" * 150]
    frame = score_molecules(vae, inputs, samples=2)
    assert list(frame.columns) == COLUMNS and list(frame.smiles) == inputs
    assert list(frame.status) == ["out_of_vocabulary", "ok", "out_of_vocabulary", "invalid", "too_long"]
    assert frame.iw_ll.isna().tolist() == [True, False, True, True, True]
    with pytest.raises(ConfigError):
        score_molecules(vae, MOLS, samples=0)


def test_auroc_and_threshold_by_hand():
    assert auroc([3.0, 2.0], [1.0, 0.0]) == 1.0
    assert auroc([0.0], [1.0]) == 0.0
    assert auroc([2.0, 0.0], [1.0]) == 0.5
    assert auroc([1.0, 1.0], [1.0]) == 0.5  # ties count one half
    assert auroc([-5.0], [float("nan")]) == 1.0  # unscorable outliers rank lowest
    assert flag_threshold([1.0, 2.0, 3.0, 4.0, 5.0], 0.25) == pytest.approx(2.0)
    with pytest.raises(ConfigError):
        flag_threshold([1.0], 0.0)
    with pytest.raises(ConfigError):
        auroc([], [1.0])


def test_score_command_writes_scores_and_flags(tiny_run, tiny_smiles, tmp_path, capsys):
    src = tmp_path / "in.smi"
    src.write_text("\n".join(MOLS + ["C[N+](C)(C)C"]) + "\n")
    out = tmp_path / "scores.csv"
    ref = tmp_path / "ref.smi"
    ref.write_text("\n".join(tiny_smiles[:40]) + "\n")
    code = main(["score", "--model", str(tiny_run), "-i", str(src), "-o", str(out), "--samples", "4",
                 "--reference", str(ref), "--flag-quantile", "0.1", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 0, err
    frame = pd.read_csv(out)
    assert list(frame.columns) == COLUMNS + ["flagged"] and len(frame) == 4
    assert bool(frame.flagged.iloc[3]) and frame.status.iloc[3] == "out_of_vocabulary"
    assert "flagged" in err and "not representable" in err
    code = main(["score", "--model", str(tiny_run), "-i", str(src), "--flag-on", "bogus"])
    assert code == 2 and "--flag-on" in capsys.readouterr().err


def test_strip_stereo_scores_stereo_inputs_a_stereo_free_model_cannot_spell(tiny_run, tmp_path, capsys):
    src = tmp_path / "stereo.smi"
    src.write_text("C[C@@H](O)CC\nCC(O)CC\n")
    out = tmp_path / "scores.csv"
    args = ["score", "--model", str(tiny_run), "-i", str(src), "-o", str(out), "--samples", "2", "--reference", "none", "--device", "cpu"]
    assert main(args) == 0
    err = capsys.readouterr().err
    frame = pd.read_csv(out)
    assert list(frame.status) == ["out_of_vocabulary", "ok"] and "--strip-stereo" in err
    assert main([*args, "--strip-stereo"]) == 0
    frame = pd.read_csv(out)
    # --strip-stereo is the input policy's --drop-stereo: the molecule is read, scored and written
    # without its stereocentre, and the change is counted, never silent.
    assert list(frame.status) == ["ok", "ok"] and list(frame.smiles) == ["CCC(C)O", "CCC(C)O"]
    assert "dropped stereo from 1" in capsys.readouterr().err
    assert frame.n_tokens.iloc[0] == frame.n_tokens.iloc[1]
