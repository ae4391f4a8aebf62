"""Scores from a latent property predictor: ``pred:NAME`` objectives and scoring-file predictor components.

For targets that are only measured (pIC50, solubility), the predictor fitted by
``molgen predictor train --labels`` is the objective: a molecule is encoded and
the ensemble's mean for ``NAME`` is its score. A molecule the model cannot
encode scores NaN (a logged failure, not a crash).

    >>> from molgen.optimize.predicted import predicted_values     # doctest: +SKIP
    >>> predicted_values(vae, trained, "pIC50", ["CCO", "c1ccccc1"])  # doctest: +SKIP
    [5.1, 4.7]
"""

from __future__ import annotations

import numpy as np

from molgen.errors import ConfigError
from molgen.optimize.objectives import Term

__all__ = ["predicted_values", "predicted_prefix"]


def predicted_values(vae, trained, name: str, smiles: list[str]) -> list[float]:
    """The predictor ``trained``'s mean of output ``name`` for each molecule (NaN where it cannot be encoded)."""
    import torch

    z, kept = vae.encode(smiles)
    values = np.full(len(smiles), np.nan)
    if len(kept):
        with torch.no_grad():
            mean = trained.model.predict(torch.from_numpy(z).to(vae.device))[0][:, trained.model.names.index(name)]
        values[kept] = mean.cpu().numpy()
    return list(values)


def predicted_prefix(vae, trained) -> dict:
    """The ``pred:`` objective prefix for ``parse_objective(..., prefixes=...)`` (empty without a predictor)."""
    if trained is None:
        return {}

    def factory(name: str) -> Term:
        if name not in trained.model.names:
            raise ConfigError(f"the predictor has no output {name!r}; it predicts {', '.join(trained.model.names)}")
        return Term("property", f"pred:{name}", prop=name, func=lambda smiles: predicted_values(vae, trained, name, smiles))

    return {"pred": factory}
