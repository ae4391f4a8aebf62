"""What happens around the training loop, as callbacks: the loop itself works in memory.

:func:`~molgen.train.fit` calls each callback at fixed points of a run; every
hook receives the :class:`~molgen.train.Trainer` (its model, optimizer,
step counters, history). :class:`~molgen.train.run_folder.RunFolder` writes a
run folder (checkpoints, logs, resume) from these hooks; :class:`KeepBest`
keeps the best weights in memory instead, for small models trained inside
another computation (the latent property predictor, steering, BO's retraining).

Example::

    >>> best = KeepBest()
    >>> result = fit(task, TrainConfig(epochs=20, patience=3), [best])   # doctest: +SKIP
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

# Hooks receive the running molgen.train.Trainer; typed loosely so that this module does not import it (no cycle).
_Trainer = Any

__all__ = ["Callback", "EpochHook", "KeepBest"]


class Callback:
    """Hooks of a training run, in the order they are called; each does nothing unless overridden."""

    def on_fit_start(self, trainer: _Trainer, resume: bool) -> None:
        """Before the first step (``resume``: continue from saved state, which this callback may load)."""

    def on_step_end(self, trainer: _Trainer) -> None:
        """After every optimizer step (``trainer.global_step`` counts them)."""

    def on_stop(self, trainer: _Trainer) -> None:
        """The run was told to stop (SIGTERM) in the middle of an epoch."""

    def on_improved(self, trainer: _Trainer) -> None:
        """The epoch just validated is the best so far (``trainer.history[-1]``)."""

    def on_epoch_state(self, trainer: _Trainer) -> None:
        """The epoch counters have moved on to the next epoch (a consistent point to save state)."""

    def on_epoch_end(self, trainer: _Trainer, record: dict[str, float]) -> None:
        """After a full epoch: its log ``record`` (train and validation means, lr, seconds)."""

    def on_fit_end(self, trainer: _Trainer) -> None:
        """After the last epoch, whatever stopped the run."""


class KeepBest(Callback):
    """Keep a copy of the weights of the best validated epoch and load them back when training ends."""

    def __init__(self) -> None:
        self.state: dict[str, Any] | None = None

    def on_improved(self, trainer: _Trainer) -> None:
        self.state = copy.deepcopy(trainer.model.state_dict())

    def on_fit_end(self, trainer: _Trainer) -> None:
        if self.state is not None:
            trainer.model.load_state_dict(self.state)
        trainer.model.eval()


class EpochHook(Callback):
    """Call ``function(record)`` after every full epoch."""

    def __init__(self, function: Callable[[dict[str, float]], None]) -> None:
        self.function = function

    def on_epoch_end(self, trainer: _Trainer, record: dict[str, float]) -> None:
        self.function(record)
