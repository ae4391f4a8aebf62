"""A whole ``molgen train`` run from its settings: read the molecules, train, write the run folder.

Three lines of Python do what the command does::

    >>> from molgen.vae.train_run import VAETrainSettings, train_from_settings
    >>> settings = VAETrainSettings.from_file("configs/train.toml")        # doctest: +SKIP
    >>> vae, result = train_from_settings(settings)                        # doctest: +SKIP

``settings`` may also be a run folder's ``config.json``: with another
``settings.run.out`` the run is repeated, to the same weights.
"""

from __future__ import annotations

from pathlib import Path

from molgen.console import err, note
from molgen.errors import ConfigError, DataError
from molgen.train import TrainResult
from molgen.utils.threads import set_torch_threads
from molgen.vae.bundle import MODEL_FILE, MoleculeVAE
from molgen.vae.train_config import DataOptions, VAETrainSettings
from molgen.vae.training import train_vae

__all__ = ["VAETrainSettings", "read_training_smiles", "summary_line", "train_from_settings"]

#: ``data.path`` naming the full MOSES training set (from the MOSES cache) instead of a file.
MOSES_TRAIN = "moses-train"


def read_training_smiles(data: DataOptions) -> tuple[list[str], str | None]:
    """The molecules ``data`` names (bad lines skipped and counted on stderr) and the name of a known training set, if any."""
    from molgen.datasets import default_training_smiles, moses_split, read_molecules

    path, known = data.path, None
    if path is not None and str(path) == MOSES_TRAIN:
        known, path = MOSES_TRAIN, moses_split("train")
    if path is None:
        smiles = default_training_smiles()
        note(f"using the embedded default data: {len(smiles):,} MOSES training molecules")
    else:
        result = read_molecules(path, smiles_column=data.smiles_column, strict=data.strict, rejects_to=data.rejects, standardize=data.standardize)
        err.print(result.summary() + (f"; rejects in {data.rejects}" if data.rejects is not None and result.n_skipped else ""))
        if result.standardized is not None:
            note(f"{result.standardized.summary()} ({data.standardize.describe()})")
        if not result.smiles:
            raise DataError(f"{path} contains no valid molecule; check the file and the SMILES column (--smiles-column)")
        smiles = result.smiles
    return (smiles[: data.limit] if data.limit else smiles), known


def train_from_settings(settings: VAETrainSettings) -> tuple[MoleculeVAE, TrainResult]:
    """Train the run ``settings`` describe into ``settings.run.out``; returns the best model and why training stopped."""
    run = settings.run
    if run.out is None:
        raise ConfigError("no run folder: give --out DIR (or run.out in the config file)")
    set_torch_threads(run.threads)
    data = settings.data
    if run.resume and data == DataOptions():
        # Resuming without naming the data: the molecules the run recorded (checked against its digest later).
        data = VAETrainSettings.from_file(Path(run.out) / "config.json").data if (Path(run.out) / "config.json").exists() else data
    smiles, known = read_training_smiles(data)
    return train_vae(
        smiles,
        run.out,
        settings.training_config(),
        device=run.device,
        resume=run.resume,
        show_progress=not run.quiet,
        train_set_name=known,
        data_summary=data.to_dict(),
        init_from=None if run.resume else run.init_from,
        record=settings.record(),
    )


def summary_line(result: TrainResult, out: str | Path) -> str:
    """The one line ``molgen train`` ends with."""
    return (
        f"trained {result.epochs_run} epoch(s), {result.steps} steps in {result.seconds / 60:.1f} min "
        f"(stopped: {result.stopped_because}); best validation loss {result.best_val_loss:.3f}; model: {Path(out) / MODEL_FILE}"
    )
