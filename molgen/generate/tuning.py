"""A model's own sampling defaults, chosen by measurement: the decoding temperature.

Sampling every token at temperature 1 reproduces the decoder's full
uncertainty, including the low-probability tokens an under-trained decoder
gives too much mass, which is where unnatural molecules come from. A lower
temperature trades a little diversity and novelty for closeness to real
chemistry. Like a language model's shipped generation settings, the choice
belongs to the model, so :func:`tune_temperature` measures it: for each
candidate temperature it samples the model and computes the Frechet ChemNet
Distance to *validation* molecules (never the benchmark's test set, so the
benchmark stays a fair test) and the novelty against the training set, and
picks the closest temperature whose novelty stays above a floor. The result
is stored in the checkpoint's metadata (``sampling``), where
:meth:`molgen.vae.MoleculeVAE.sample` and ``molgen sample`` read it whenever
no temperature is given.

FCD from a few thousand samples is biased upwards, equally for every
candidate, so it ranks temperatures correctly but is not the number to
report; report a full benchmark of the chosen setting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from molgen.errors import ConfigError, DataError

__all__ = ["TemperatureTrial", "tune_temperature", "tune_model_temperature", "trials_record", "trials_table", "DEFAULT_TEMPERATURE", "sampling_temperature"]

DEFAULT_TEMPERATURE = 1.0


@dataclass
class TemperatureTrial:
    temperature: float
    valid: float
    unique: float
    novelty: float | None
    fcd: float


def sampling_temperature(meta: dict) -> float:
    """The temperature a checkpoint's metadata recommends (1.0 when it has none)."""
    return float((meta.get("sampling") or {}).get("temperature", DEFAULT_TEMPERATURE))


def tune_temperature(
    vae,
    validation: Sequence[str],
    temperatures: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
    train: Sequence[str] | None = None,
    n: int = 5000,
    min_novelty: float = 0.9,
    seed: int = 0,
    prior: str = "auto",
) -> tuple[float, list[TemperatureTrial]]:
    """Sample ``n`` molecules at each temperature; return the best one and every trial.

    The best temperature has the lowest FCD to ``validation`` among those
    whose novelty against ``train`` is at least ``min_novelty`` (with no
    ``train``, novelty is not measured and every temperature qualifies).
    """
    from molgen.metrics.fcd import chemnet_statistics, frechet_distance

    temps = sorted({float(t) for t in temperatures})
    if not temps or any(not (t > 0 and np.isfinite(t)) for t in temps):
        raise ConfigError(f"temperatures must be finite numbers > 0, got {list(temperatures)}")
    if not 0.0 <= min_novelty <= 1.0:
        raise ConfigError(f"the novelty floor must be in [0, 1], not {min_novelty}")
    if n < 100:
        raise ConfigError(f"-n {n} is too few samples to compare temperatures; use at least 1,000")
    if len(validation) < 1000:
        raise DataError(f"{len(validation)} validation molecules are too few for an FCD; give at least 1,000")
    ref_mu, ref_sigma = chemnet_statistics(list(validation))
    known = set(train) if train is not None else None
    trials = []
    for t in temps:
        samples = vae.sample(n, temperature=t, seed=seed, prior=prior)
        valid = [s for s in samples if s]
        if len(valid) < 2:
            raise DataError(f"only {len(valid)} of {n} samples at temperature {t} are valid; the model cannot be tuned")
        unique = set(valid)
        novelty = None if known is None else float(np.mean([s not in known for s in unique]))
        mu, sigma = chemnet_statistics(valid)
        fcd = frechet_distance(mu, sigma, ref_mu, ref_sigma)
        trials.append(TemperatureTrial(t, len(valid) / n, len(unique) / len(valid), novelty, fcd))
    allowed = [r for r in trials if r.novelty is None or r.novelty >= min_novelty]
    if not allowed:
        raise DataError(
            f"no temperature keeps novelty >= {min_novelty} (best {max(r.novelty or 0 for r in trials):.3f}); "
            "lower --min-novelty or try higher temperatures"
        )
    best = min(allowed, key=lambda r: r.fcd)
    return best.temperature, trials


def trials_record(trials: list[TemperatureTrial]) -> list[dict]:
    """The trials as JSON-ready rows (for the checkpoint's metadata)."""
    return [asdict(r) for r in trials]


def tune_model_temperature(vae, validation: Sequence[str], validation_name: str = "validation", **options) -> tuple[float, list[TemperatureTrial]]:
    """:func:`tune_temperature` (``options``: its keywords), and the choice stored in ``vae.meta["sampling"]``,
    where sampling reads it; save the model to keep it.

    Example::

        >>> best, trials = tune_model_temperature(vae, validation_smiles, train=train)  # doctest: +SKIP
        >>> vae.save("tuned.safetensors")                                               # doctest: +SKIP
    """
    import inspect

    settings = inspect.signature(tune_temperature).bind(vae, validation, **options)
    settings.apply_defaults()  # the n and novelty floor actually used, recorded with the choice
    best, trials = tune_temperature(*settings.args, **settings.kwargs)
    used = settings.arguments
    vae.meta["sampling"] = dict(temperature=best, min_novelty=used["min_novelty"], n=used["n"], validation=validation_name, trials=trials_record(trials))
    return best, trials


def trials_table(trials: list[TemperatureTrial], best: float, fcd_title: str = "FCD"):
    """The trials as a rich table, the chosen temperature marked with ``*``."""
    from rich.table import Table

    table = Table("temperature", "valid", "unique", "novelty", fcd_title)
    for r in trials:
        mark = " *" if r.temperature == best else ""
        table.add_row(f"{r.temperature:g}{mark}", f"{r.valid:.3f}", f"{r.unique:.3f}", "-" if r.novelty is None else f"{r.novelty:.3f}", f"{r.fcd:.3f}")
    return table
