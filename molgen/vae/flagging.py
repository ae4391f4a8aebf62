"""Score molecules and flag those unlike the training data: what ``molgen score`` does, as one call.

The flag threshold is the ``flag_quantile`` of the scores of in-distribution
reference molecules (by default a seeded sample of the model's own training
set); a molecule below it, or one the model cannot spell at all (NaN score),
is flagged. The command is these three lines:

    >>> from molgen.vae import MoleculeVAE                                                        # doctest: +SKIP
    >>> scored = score_and_flag(MoleculeVAE.load(), ["CCO", "c1ccccc1O"], reference="train")     # doctest: +SKIP
    >>> scored.write("scores.csv"); print(scored.summary())                                        # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from molgen.errors import ConfigError

__all__ = ["FLAG_COLUMNS", "FlaggedScores", "score_and_flag"]

#: Score columns a flag can use.
FLAG_COLUMNS = ("iw_ll_per_token", "iw_ll", "elbo")


@dataclass
class FlaggedScores:
    """Scores (one row per molecule, ``flagged`` when a reference set the threshold) and how they were made."""

    frame: pd.DataFrame
    samples: int
    flag_on: str
    flag_quantile: float
    threshold: float | None = None
    n_reference: int = 0
    strip_stereo: bool = False

    def write(self, path: str | Path) -> None:
        """The scores as CSV, written atomically (4 decimals)."""
        from molgen.utils.io import atomic_output

        with atomic_output(Path(path), "w") as fh:
            self.frame.to_csv(fh, index=False, float_format="%.4f")

    def summary(self) -> str:
        """One line: molecules scored, the median IW log-likelihood, what could not be scored and what was flagged."""
        frame = self.frame
        unscorable = int((frame["status"] != "ok").sum())
        msg = f"scored {len(frame) - unscorable:,} molecules (K={self.samples}); median IW log-likelihood {frame['iw_ll'].median():.2f} nats"
        if unscorable:
            msg += f"; {unscorable:,} not representable by this model ({', '.join(sorted(set(frame['status']) - {'ok'}))})"
            stereo = sum(1 for text in frame["smiles"] if "@" in str(text) or "/" in str(text) or "\\" in str(text))
            if stereo and not self.strip_stereo:
                msg += f"; {stereo:,} input(s) carry stereochemistry: --strip-stereo scores them without it"
        if self.threshold is not None:
            msg += (
                f"; flagged {int(frame['flagged'].sum()):,} below {self.flag_on} {self.threshold:.3f} "
                f"(the {self.flag_quantile:g} quantile of {self.n_reference:,} reference molecules)"
            )
        return msg


def score_and_flag(
    vae,
    smiles: Sequence[str],
    reference: Sequence[str] | str | None = "train",
    samples: int = 32,
    batch_size: int = 64,
    seed: int = 0,
    reference_size: int = 1000,
    flag_quantile: float = 0.01,
    flag_on: str = "iw_ll_per_token",
    strip_stereo: bool = False,
    score_seed: int | None = None,
    show_progress: bool = False,
) -> FlaggedScores:
    """Per-molecule ELBO and IW log-likelihood of ``smiles``, flagged against ``reference``.

    ``reference``: in-distribution molecules, ``"train"`` (the checkpoint's training set; a warning and no
    flags when it is not available) or None (no flags); ``reference_size`` of them are drawn with ``seed``.
    ``score_seed``: the seed of the molecules' own draws (default ``seed``; a shard passes its own, while the
    reference, drawn with ``seed``, stays the same in every shard).
    """
    from molgen.utils.progress import progress_bar
    from molgen.vae.likelihood import flag_threshold, score_molecules

    if flag_on not in FLAG_COLUMNS:
        raise ConfigError(f"--flag-on must be iw_ll_per_token, iw_ll or elbo, not {flag_on!r}")
    ref = _reference(vae, reference, reference_size, seed)
    result = FlaggedScores(pd.DataFrame(), samples, flag_on, flag_quantile, n_reference=len(ref or ()), strip_stereo=strip_stereo)
    with progress_bar(len(smiles) + result.n_reference, "scoring", unit="mol", enabled=show_progress) as bar:
        if ref:
            ref_scores = score_molecules(vae, ref, samples, batch_size, seed, progress=bar, strip_stereo=strip_stereo)
            result.threshold = flag_threshold(ref_scores[flag_on], flag_quantile)
        own_seed = seed if score_seed is None else score_seed
        result.frame = score_molecules(vae, smiles, samples, batch_size, own_seed, progress=bar, strip_stereo=strip_stereo)
    if result.threshold is not None:
        # Molecules the model cannot spell (NaN score) are as far from the training data as it gets.
        result.frame["flagged"] = ~(result.frame[flag_on] >= result.threshold)
    return result


def _reference(vae, reference, size: int, seed: int) -> list[str] | None:
    """A seeded ``size`` of the reference molecules (None: no flags)."""
    if reference is None or (isinstance(reference, str) and reference.lower() == "none"):
        return None
    if isinstance(reference, str):
        if reference != "train":
            raise ConfigError(f"reference must be 'train', None or a list of molecules, not {reference!r}")
        from molgen.vae import training_smiles

        reference = training_smiles(vae)
        if reference is None:
            warnings.warn("the checkpoint's training set is not available; no flags (pass --reference FILE)", stacklevel=3)
            return None
    reference = list(reference)
    return [reference[i] for i in np.random.default_rng(seed).permutation(len(reference))[:size]]
