"""``molgen image`` commands end to end on a tiny data set, the metric formulas, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from molgen.cli.image import image_app
from molgen.errors import CheckpointError, ConfigError
from molgen.image.evaluate import auroc, frechet_distance, psnr
from molgen.utils.checkpoint import save_checkpoint

runner = CliRunner()
TINY = ["--hidden", "4", "--latent-dim", "4", "--epochs", "2", "--batch-size", "16", "--quiet"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A VAE trained without class 2 and a conditional GAN, on 60 12x12 images of 3 classes."""
    root = tmp_path_factory.mktemp("image_cli")
    rng = np.random.default_rng(0)
    labels = np.arange(60) % 3
    images = (rng.random((60, 1, 12, 12)) * 40).astype(np.uint8)
    for i, c in enumerate(labels):
        images[i, 0, 4 * c : 4 * c + 4, 4 * c : 4 * c + 4] = 255
    np.savez(root / "squares.npz", images=images, labels=labels.astype(np.uint8))
    data = str(root / "squares.npz")
    for name, extra in (("vae", ["--exclude-class", "2"]), ("cgan", [])):
        result = runner.invoke(image_app, ["train", "--model", name, "--data", data, "--out", str(root / name), *TINY, *extra])
        assert result.exit_code == 0, result.output
    return root


def _invoke(*args: str):
    result = runner.invoke(image_app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result


def test_sample_grid_and_npz_for_a_requested_label(runs):
    _invoke("sample", "--model", str(runs / "cgan"), "-n", "6", "--label", "1", "-o", str(runs / "ones.png"), "--per-row", "3")
    width, height = Image.open(runs / "ones.png").size
    assert (width, height) == (2 * (3 * 14 + 2), 2 * (2 * 14 + 2))  # 3x2 cells of 12 px + 2 px gaps, scaled x2
    _invoke("sample", "--model", str(runs / "vae"), "-n", "5", "-o", str(runs / "s.npz"))
    with np.load(runs / "s.npz") as z:
        assert z["images"].shape == (5, 1, 12, 12) and z["images"].dtype == np.uint8


def test_labels_are_checked(runs):
    with pytest.raises(ConfigError, match="unconditional"):
        _invoke("sample", "--model", str(runs / "vae"), "--label", "1", "-o", str(runs / "x.png"))
    with pytest.raises(ConfigError, match="out of range"):
        _invoke("sample", "--model", str(runs / "cgan"), "--label", "3", "-o", str(runs / "x.png"))


@pytest.mark.parametrize("model", ["vae", "cgan"])
def test_interpolate_writes_a_strip(runs, model):
    out = runs / f"path_{model}.png"
    result = _invoke("interpolate", "--model", str(runs / model), "--from-index", "0", "--to-index", "4", "--steps", "5", "-o", str(out))
    cells = 7 if model == "vae" else 5  # encoder models show the two end images too
    assert Image.open(out).size[0] == 3 * (cells * 14 + 2)
    assert "classes 0 -> 1" in result.output
    with pytest.raises(ConfigError, match="out of range"):
        _invoke("interpolate", "--model", str(runs / model), "--to-index", "999", "-o", str(out))


def test_denoise_reports_psnr(runs):
    result = _invoke("denoise", "--model", str(runs / "vae"), "--noise", "0.5", "-n", "4", "-o", str(runs / "d.png"))
    assert "PSNR noisy" in result.output and (runs / "d.png").exists()


def test_anomaly_auroc_for_the_held_out_class(runs):
    result = _invoke("anomaly", "--model", str(runs / "vae"), "--holdout-class", "2", "-o", str(runs / "roc.png"))
    line = next(x for x in result.output.splitlines() if x.startswith("{"))
    report = json.loads(line)
    assert 0.0 <= report["anomaly_auroc"] <= 1.0 and report["holdout_classes"] == [2]
    assert (runs / "roc.png").exists()


@pytest.mark.parametrize("model", ["vae", "cgan"])
def test_evaluate_writes_json_markdown_and_pictures(runs, model, monkeypatch):
    monkeypatch.setenv("MOLGEN_CACHE", str(runs / "cache"))
    out = runs / f"report_{model}"
    _invoke("evaluate", "--model", str(runs / model), "-o", str(out), "--n-samples", "30", "--iw-samples", "2",
            "--reference-steps", "20", "--baseline-steps", "10")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_test"] == 6 and metrics["frechet_classifier_distance"] >= 0
    assert "| frechet_classifier_distance |" in (out / "report.md").read_text()
    assert (out / "samples.png").exists()
    if model == "vae":
        assert metrics["test_neg_elbo_nats"] >= metrics["test_recon_nats"] > 0
        assert 0 <= metrics["anomaly_auroc"] <= 1 and 0 <= metrics["class_coverage"] <= 1
        assert (out / "latent_pca.png").exists() and (out / "reconstructions.png").exists()
    else:
        assert 0 <= metrics["conditional_accuracy"] <= 1
        assert metrics["n_labelled"] == 54  # 100 asked, capped at 3 classes x 18 training images
        assert metrics["augmentation_gain"] == pytest.approx(metrics["augmented_test_accuracy"] - metrics["labels_only_test_accuracy"])


def test_wrong_or_missing_checkpoints_are_one_line_errors(runs):
    save_checkpoint(runs / "mol.safetensors", {"w": torch.zeros(1)}, {"kind": "seq_vae"})
    for path, match in ((runs / "mol.safetensors", "molecular model"), (runs / "missing", "does not exist")):
        with pytest.raises(CheckpointError, match=match) as info:
            _invoke("sample", "--model", str(path), "-o", str(runs / "x.png"))
        assert "\n" not in str(info.value)
    (runs / "garbage.safetensors").write_bytes(b"\x00" * 3)
    with pytest.raises(CheckpointError, match="truncated"):
        _invoke("evaluate", "--model", str(runs / "garbage.safetensors"))


def test_unknown_model_name_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="model must be one of .*not .diffusion."):
        _invoke("train", "--model", "diffusion", "--out", str(tmp_path / "x"))


def test_frechet_distance_matches_the_closed_form():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 5))
    shift = np.array([1.0, -2.0, 0.0, 0.5, 3.0])
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # Same covariance: only the mean term remains.
    assert frechet_distance(a, a + shift) == pytest.approx(float(shift @ shift), rel=1e-6)
    # Doubling every feature: |mu|^2 + tr(C) + 4 tr(C) - 2 * 2 tr(C) = |mu|^2 + tr(C).
    expected = float(a.mean(0) @ a.mean(0) + np.trace(np.cov(a, rowvar=False)))
    assert frechet_distance(a, 2 * a) == pytest.approx(expected, rel=1e-6)


def test_psnr_and_auroc_values():
    x = torch.full((2, 1, 4, 4), 0.5)
    assert psnr(x + 0.1, x) == pytest.approx(20.0)
    value, fpr, tpr = auroc(np.array([0.1, 0.2, 0.9, 0.8]), np.array([False, False, True, True]))
    assert value == 1.0 and fpr[0] == 0 and tpr[-1] == 1
    assert auroc(np.array([0.9, 0.1, 0.2, 0.8]), np.array([True, True, False, False]))[0] == pytest.approx(0.5)
