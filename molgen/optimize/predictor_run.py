"""Fit a latent property predictor and save it with its report: what ``molgen predictor train`` does.

    >>> from molgen.optimize.predictor_run import fit_and_save_predictor    # doctest: +SKIP
    >>> trained, path = fit_and_save_predictor(vae, "pred/", smiles=train_smiles, properties=["qed", "logp"])  # doctest: +SKIP
    >>> print(trained.report.summary())                                     # doctest: +SKIP

With ``labels`` (a :class:`~molgen.datasets.labels.LabelTable` of measured values)
the predictor learns those instead of RDKit properties.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from molgen.errors import ConfigError

__all__ = ["fit_and_save_predictor"]


def fit_and_save_predictor(
    vae,
    out: str | Path,
    config=None,
    smiles: Sequence[str] | None = None,
    properties: Sequence[str] = ("qed", "logp", "sa", "plogp"),
    labels=None,
    show_progress: bool = False,
):
    """Train on ``labels`` (measured values) or on RDKit ``properties`` of ``smiles`` -> (TrainedPredictor, path).

    ``out``: a ``.safetensors`` file or a folder (gets ``predictor.safetensors``); ``report.json``
    (held-out R^2 and Spearman per target, train/validation sizes) is written beside it.
    ``config``: a :class:`~molgen.optimize.predictor.PredictorTrainingConfig` (default: its defaults).
    """
    from molgen.optimize.predictor import PredictorTrainingConfig, save_predictor, train_label_predictor, train_property_predictor
    from molgen.utils.io import atomic_write_text

    config = config or PredictorTrainingConfig()
    if labels is not None:
        trained = train_label_predictor(vae, labels.smiles, labels.values, labels.names, config, show_progress=show_progress)
    else:
        if not smiles:
            raise ConfigError("no molecules to label; pass smiles= (or labels=)")
        trained = train_property_predictor(vae, list(smiles), list(properties), config, show_progress=show_progress)
    out = Path(out)
    path = out if out.suffix == ".safetensors" else out / "predictor.safetensors"
    save_predictor(path, trained)
    report = {"r2": trained.report.r2, "spearman": trained.report.spearman, "n_train": trained.report.n_train, "n_val": trained.report.n_val}
    atomic_write_text(path.with_name("report.json"), json.dumps(report, indent=2))
    return trained, path
