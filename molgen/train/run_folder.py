"""The run folder of a training run, as a callback: resumable state, the best model, logs and the loss curve.

:class:`RunFolder` writes ``last.safetensors`` (model, optimizer, RNG states
and the position inside the epoch: resuming is exact), ``model.safetensors``
(the task's self-describing export of the best epoch) and the per-epoch logs
``metrics.jsonl``/``metrics.csv``. :class:`LossCurvePlot` draws
``loss_curve.png`` with :func:`molgen.viz.plot_history`. Only the main
process of a distributed run writes.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import torch

from molgen.errors import MolgenError
from molgen.train.callbacks import Callback
from molgen.utils.checkpoint import (
    flatten_state,
    load_checkpoint,
    save_checkpoint,
    unflatten_state,
)
from molgen.utils.io import atomic_write_text

# Hooks receive the running molgen.train.Trainer; typed loosely so that this module does not import it (no cycle).
_Trainer = Any

__all__ = ["MODEL_FILE", "RESUME_FILE", "LossCurvePlot", "RunFolder"]

RESUME_FILE = "last.safetensors"
MODEL_FILE = "model.safetensors"


class RunFolder(Callback):
    """Checkpoints, the exported best model and the logs of a run in ``out``."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)

    def on_fit_start(self, trainer: _Trainer, resume: bool) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        if resume and not self.load_state(trainer):
            raise MolgenError(f"nothing to resume in {self.out} (no {RESUME_FILE}); start without --resume")
        if not resume and (self.out / RESUME_FILE).exists():
            raise MolgenError(f"{self.out} already holds a training run; pass --resume to continue it or choose a new --out")

    def on_step_end(self, trainer: _Trainer) -> None:
        if trainer.global_step % trainer.config.checkpoint_every == 0:
            self.save_state(trainer)

    def on_stop(self, trainer: _Trainer) -> None:
        # Keep the position inside the epoch so --resume goes on from the next batch.
        self.save_state(trainer)
        if trainer.dist.is_main and not (self.out / MODEL_FILE).exists():
            trainer.task.export(self.out / MODEL_FILE, {"history": trainer.history, "partial": True})

    def on_improved(self, trainer: _Trainer) -> None:
        if trainer.dist.is_main:
            trainer.task.export(self.out / MODEL_FILE, {"history": trainer.history, "best_epoch": trainer.epoch + 1})

    def on_epoch_state(self, trainer: _Trainer) -> None:
        self.save_state(trainer)

    def on_epoch_end(self, trainer: _Trainer, record: dict[str, float]) -> None:
        self.write_logs(trainer)

    def on_fit_end(self, trainer: _Trainer) -> None:
        self.save_state(trainer)
        self.write_logs(trainer)

    def save_state(self, trainer: _Trainer) -> None:
        """Everything needed to continue the run exactly, atomically (main process only)."""
        if not trainer.dist.is_main:
            return
        opt_tensors, opt_skeleton = flatten_state(trainer.optimizer.state_dict(), "optim")
        tensors = {f"model.{k}": v for k, v in trainer.model.state_dict().items()}
        tensors.update(opt_tensors)
        tensors["rng.torch"] = torch.get_rng_state()
        tensors["rng.generator"] = trainer.generator.get_state()
        if trainer.device.type == "cuda":  # dropout and other draws on the GPU use its own generator
            tensors["rng.cuda"] = torch.cuda.get_rng_state(trainer.device)
        meta = {
            "kind": "training-state",
            "optimizer": opt_skeleton,
            "global_step": trainer.global_step,
            "epoch": trainer.epoch,
            "batch_in_epoch": trainer.batch_in_epoch,
            "best_val": trainer.best_val if math.isfinite(trainer.best_val) else None,
            "bad_epochs": trainer.bad_epochs,
            "history": trainer.history,
            "epoch_sums": trainer.epoch_sums,
            "train_config": trainer.config.to_dict(),
            # fp16 AMP's loss scale and growth counter: a resumed run skips the same steps
            "grad_scaler": trainer.scaler.state_dict(),
        }
        save_checkpoint(self.out / RESUME_FILE, tensors, meta)

    def load_state(self, trainer: _Trainer) -> bool:
        """Restore the state :meth:`save_state` wrote; False when there is none."""
        path = self.out / RESUME_FILE
        if not path.exists():
            return False
        tensors, meta = load_checkpoint(path)
        if meta.get("kind") != "training-state":
            raise MolgenError(f"{path} is not a training state; remove it or start without --resume")
        trainer.model.load_state_dict({k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")})
        trainer.optimizer.load_state_dict(unflatten_state(meta["optimizer"], tensors))
        torch.set_rng_state(tensors["rng.torch"])
        trainer.generator.set_state(tensors["rng.generator"])
        if "rng.cuda" in tensors and trainer.device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"], trainer.device)
        if meta.get("grad_scaler") and trainer.scaler.is_enabled():
            trainer.scaler.load_state_dict(meta["grad_scaler"])
        trainer.global_step, trainer.epoch, trainer.batch_in_epoch = meta["global_step"], meta["epoch"], meta["batch_in_epoch"]
        trainer.best_val = meta["best_val"] if meta["best_val"] is not None else math.inf
        trainer.bad_epochs = meta["bad_epochs"]
        trainer.history = meta["history"]
        trainer.epoch_sums = meta.get("epoch_sums", {})
        return True

    def write_logs(self, trainer: _Trainer) -> None:
        """``metrics.jsonl`` and ``metrics.csv``: one row per epoch."""
        if not trainer.history or not trainer.dist.is_main:
            return
        history = trainer.history
        atomic_write_text(self.out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))
        keys = sorted({k for r in history for k in r}, key=lambda k: (k not in ("epoch", "step"), k))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
        atomic_write_text(self.out / "metrics.csv", buf.getvalue())


class LossCurvePlot(Callback):
    """``loss_curve.png`` in ``out``, redrawn after every epoch (by :mod:`molgen.viz`)."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)

    def _draw(self, trainer: _Trainer) -> None:
        if trainer.history and trainer.dist.is_main:
            from molgen.viz import plot_history

            plot_history(trainer.history, self.out / "loss_curve.png")

    def on_epoch_end(self, trainer: _Trainer, record: dict[str, float]) -> None:
        self._draw(trainer)

    def on_fit_end(self, trainer: _Trainer) -> None:
        self._draw(trainer)
