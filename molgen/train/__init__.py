"""Training: the shared Trainer, KL schedules, checkpoints and progress bars."""

from __future__ import annotations

from molgen.train.schedules import KLSchedule
from molgen.train.trainer import (
    TrainConfig,
    Trainer,
    TrainingDivergedError,
    TrainResult,
    TrainTask,
)
from molgen.utils.checkpoint import (
    load_checkpoint,
    read_checkpoint_meta,
    save_checkpoint,
)

__all__ = [
    "KLSchedule",
    "TrainConfig",
    "Trainer",
    "TrainResult",
    "TrainTask",
    "TrainingDivergedError",
    "load_checkpoint",
    "read_checkpoint_meta",
    "save_checkpoint",
]
