"""train.fit: the training loop in memory, with callbacks for everything around it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from molgen.train import Callback, KeepBest, TrainConfig, TrainingDivergedError, fit


class _Line:
    """y = 3x + 1 with a held-out set; ``poison`` makes the loss NaN at that step."""

    def __init__(self, poison: int | None = None) -> None:
        torch.manual_seed(0)
        self.model = nn.Linear(1, 1)
        g = torch.Generator().manual_seed(1)
        self.x = torch.rand(64, 1, generator=g)
        self.y = 3 * self.x + 1
        self.poison = poison

    def train_batches(self, epoch: int) -> list[slice]:
        return [slice(i, i + 16) for i in range(0, 48, 16)]

    def val_batches(self) -> list[slice]:
        return [slice(48, 64)]

    def step(self, batch: slice, global_step: int):
        loss = (self.model(self.x[batch]) - self.y[batch]).pow(2).mean()
        if self.poison is not None and global_step == self.poison and self.model.training:
            loss = loss * float("nan")
        return loss, {"mse": float(loss.detach())}

    def describe_batch(self, batch: slice) -> str:
        return f"rows {batch.start}-{batch.stop}"


class _Recorder(Callback):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def on_improved(self, trainer) -> None:
        self.calls.append(f"improved {trainer.epoch + 1}")

    def on_epoch_end(self, trainer, record) -> None:
        self.calls.append(f"epoch {record['epoch']}")

    def on_fit_end(self, trainer) -> None:
        self.calls.append("end")


def test_fit_trains_in_memory_and_keeps_the_best_weights(tmp_path, monkeypatch):
    task, recorder, best = _Line(), _Recorder(), KeepBest()
    monkeypatch.chdir(tmp_path)
    result = fit(task, TrainConfig(epochs=40, lr=0.05, patience=0, precision="fp32"), [best, recorder])
    assert list(tmp_path.iterdir()) == []  # nothing written without a RunFolder
    assert result.epochs_run == 40 and result.steps == 120
    assert recorder.calls[:2] == ["improved 1", "epoch 1"] and recorder.calls[-1] == "end"
    with torch.no_grad():
        val = float((task.model(task.x[48:]) - task.y[48:]).pow(2).mean())
    assert val == pytest.approx(result.best_val_loss, rel=1e-6)  # the model holds the best epoch's weights
    assert not task.model.training


def test_fit_stops_early_and_diagnoses_a_nan_loss():
    task = _Line()
    # A learning rate of 0 never improves: patience 2 stops after epoch 3 (the first counts as an improvement).
    assert fit(task, TrainConfig(epochs=10, lr=1e-12, patience=2, min_delta=1e-3, precision="fp32")).epochs_run == 3
    poisoned = _Line(poison=4)
    with pytest.raises(TrainingDivergedError, match=r"step 4 .*loss is nan.*rows 16-32"):
        fit(poisoned, TrainConfig(epochs=5, lr=0.05, grad_clip=0.0, precision="fp32"))
    assert all(torch.isfinite(v).all() for v in poisoned.model.state_dict().values())  # the NaN update was not applied
