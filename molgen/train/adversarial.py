"""The training loop for adversarial and coupled-adversarial models.

Models with several parameter groups and one optimizer each: GAN, WGAN-GP,
conditional and semi-supervised GAN (discriminator and generator, trained in
alternating *phases*), and VAE-GAN (encoder, decoder and discriminator whose
three losses come from one forward pass — a *coupled* phase: every group's
gradient is taken from the same graph before any group is updated).

:class:`AdversarialTrainer` extends :class:`~molgen.train.trainer.Trainer`
and keeps all of its behaviour — epochs, validation, atomic resumable
checkpoints (every optimizer's state, RNG states, position in the epoch),
NaN/Inf detection, JSONL/CSV logs, progress bars — replacing only the
optimizer and the update step. Its task adds, to the Trainer's task protocol:

- ``param_groups() -> {group: [parameters]}`` (one Adam optimizer each);
- ``phases(global_step) -> list of phase names`` to run on a batch;
- ``phase_step(batch, phase, global_step) -> AdversarialLosses`` (a loss per
  group trained in that phase, and floats to log);
- ``keep_last`` — GAN losses do not measure sample quality, so for those
  tasks the exported model is the latest one, not the lowest-"loss" one.

Mixed precision is not used here: the gradient penalty's double backward and
per-group scaling make it more trouble than the small convnets are worth.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from molgen.errors import ConfigError
from molgen.train.trainer import (
    TrainConfig,
    Trainer,
    TrainResult,
    TrainTask,
    fused_optimizer,
)

__all__ = ["AdversarialTask", "AdversarialTrainer", "OptimizerSet"]


class AdversarialTask(TrainTask, Protocol):
    keep_last: bool

    def param_groups(self) -> dict[str, list[nn.Parameter]]: ...

    def phases(self, global_step: int) -> list[str]: ...

    def phase_step(self, batch: Any, phase: str, global_step: int) -> Any: ...


class OptimizerSet:
    """Several named optimizers behind the interface the Trainer uses for one.

    ``param_groups`` concatenates theirs (the Trainer sets and decays the
    learning rate through it); ``state_dict`` nests theirs by name.
    """

    def __init__(self, optimizers: dict[str, torch.optim.Optimizer]) -> None:
        self.optimizers = optimizers

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [g for opt in self.optimizers.values() for g in opt.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {name: opt.state_dict() for name, opt in self.optimizers.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state[name])

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=set_to_none)


class AdversarialTrainer(Trainer):
    """Train a multi-group model; same run folder, logs and resume semantics as :class:`Trainer`.

    ``betas`` are Adam's (0.5, 0.999) for GANs after Radford et al.; WGAN-GP
    uses (0.0, 0.9) after Gulrajani et al.
    """

    def __init__(
        self,
        task: AdversarialTask,
        config: TrainConfig,
        out_dir: str | Path,
        device: torch.device | str = "cpu",
        generator: torch.Generator | None = None,
        show_progress: bool = True,
        on_epoch_end: Callable[[dict[str, float]], None] | None = None,
        betas: tuple[float, float] = (0.5, 0.999),
    ) -> None:
        super().__init__(task, config, out_dir, device, generator, show_progress, self._epoch_end)
        self._user_epoch_end = on_epoch_end
        groups = task.param_groups()
        owned = sum(len(p) for p in groups.values())
        if owned != len({id(p) for ps in groups.values() for p in ps}):
            raise ConfigError("adversarial parameter groups overlap; each parameter must belong to one group")
        self.optimizer = OptimizerSet(
            {
                name: torch.optim.Adam(
                    params, lr=config.lr, betas=betas, weight_decay=config.weight_decay, fused=fused_optimizer(self.device)
                )
                for name, params in groups.items()
            }
        )
        self.groups = groups
        self.amp_dtype = None  # adversarial steps run in fp32

    def _train_step(self, batch: Any) -> dict[str, float]:
        self.model.train()
        logs: dict[str, float] = {}
        for phase in self.task.phases(self.global_step):
            result = self.task.phase_step(batch, phase, self.global_step)
            for name, loss in result.losses.items():
                if not torch.isfinite(loss):
                    self._diverged(batch, f"{phase} phase: {name} loss is {loss.item()}")
            # All gradients of a coupled phase come from the graph as it is, before any update.
            grads = {
                name: torch.autograd.grad(loss, self.groups[name], retain_graph=True, allow_unused=True)
                for name, loss in result.losses.items()
            }
            for name, group_grads in grads.items():
                logs[f"grad_norm_{name}"] = self._apply(name, group_grads, batch)
            logs.update(result.logs)
        self.global_step += 1
        logs.setdefault("loss", sum(v for k, v in logs.items() if k in ("d_loss", "g_loss")))
        return logs

    def _apply(self, name: str, grads: tuple[torch.Tensor | None, ...], batch: Any) -> float:
        params = self.groups[name]
        for p, g in zip(params, grads):
            p.grad = None if g is None else g.detach()
        norm = torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        if not torch.isfinite(norm):
            self.optimizer.zero_grad()
            self._diverged(batch, f"{name} gradient norm is {norm.item()}")
        self.optimizer.optimizers[name].step()
        for p in params:
            p.grad = None
        return float(norm)

    def _export_last(self) -> None:
        self.task.export(self.out / "model.safetensors", {"history": self.history, "best_epoch": len(self.history)})

    def _epoch_end(self, record: dict[str, float]) -> None:
        if getattr(self.task, "keep_last", False):
            self._export_last()
        if self._user_epoch_end is not None:
            self._user_epoch_end(record)

    def fit(self, resume: bool = False) -> TrainResult:
        result = super().fit(resume)
        if getattr(self.task, "keep_last", False):
            self._export_last()
        return result
