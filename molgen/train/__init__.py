"""Training: one loop that works in memory (:func:`fit`), with the run folder, logs and plots as callbacks.

>>> from molgen.train import KeepBest, TrainConfig, fit                     # doctest: +SKIP
>>> result = fit(task, TrainConfig(epochs=20, patience=3), [KeepBest()])    # doctest: +SKIP
"""

from __future__ import annotations

from molgen.train.callbacks import Callback, EpochHook, KeepBest
from molgen.train.run_folder import LossCurvePlot, RunFolder
from molgen.train.schedules import KLSchedule
from molgen.train.trainer import (
    TrainConfig,
    Trainer,
    TrainingDivergedError,
    TrainResult,
    TrainTask,
    fit,
)
from molgen.utils.checkpoint import (
    load_checkpoint,
    read_checkpoint_meta,
    save_checkpoint,
)

__all__ = [
    "Callback",
    "EpochHook",
    "KLSchedule",
    "KeepBest",
    "LossCurvePlot",
    "RunFolder",
    "TrainConfig",
    "TrainResult",
    "TrainTask",
    "Trainer",
    "TrainingDivergedError",
    "fit",
    "load_checkpoint",
    "read_checkpoint_meta",
    "save_checkpoint",
]
