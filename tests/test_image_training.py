"""The adversarial trainer (phases, coupled gradients, exact resume, divergence) and the training pipeline."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from molgen.errors import ConfigError
from molgen.image.training import (
    AdversarialImageTask,
    ImageTrainingConfig,
    labelled_subset,
    train_image_model,
)
from molgen.models.image import build_model, load_image_model
from molgen.train import TrainConfig, TrainingDivergedError
from molgen.train.adversarial import AdversarialTrainer

SHAPE = (1, 8, 8)


def _task(name: str, n: int = 24, seed: int = 0) -> AdversarialImageTask:
    torch.manual_seed(seed)
    model = build_model(name, SHAPE, num_classes=3, hidden=4, latent_dim=4)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(n, *SHAPE, generator=g), torch.arange(n) % 3
    batches = dict(x=x, y=y, x_val=x[:0], y_val=y[:0], batch_size=8, seed=seed)
    labelled = (x[:6], y[:6]) if name == "sgan" else None
    return AdversarialImageTask(model, batches, torch.Generator().manual_seed(seed), {"model_name": name}, labelled=labelled)


def _fit(task, out, epochs: int, resume: bool = False):
    config = TrainConfig(epochs=epochs, batch_size=8, lr=1e-3, patience=0, checkpoint_every=2, seed=0)
    trainer = AdversarialTrainer(task, config, out, generator=task.generator, show_progress=False)
    return trainer, trainer.fit(resume=resume)


@pytest.mark.parametrize("name", ["wgan-gp", "sgan", "vaegan"])
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path, name):
    straight = _task(name)
    _fit(straight, tmp_path / "a", epochs=2)
    first = _task(name)
    _fit(first, tmp_path / "b", epochs=1)
    resumed = _task(name, seed=0)
    resumed.generator = torch.Generator().manual_seed(123)  # overwritten by the checkpoint's RNG state
    resumed.model.apply(lambda m: m.reset_parameters() if hasattr(m, "reset_parameters") else None)
    _fit(resumed, tmp_path / "b", epochs=2, resume=True)
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key


def test_wgan_takes_critic_steps_per_generator_step(tmp_path):
    task = _task("wgan-gp")
    assert [task.phases(s) for s in range(5)] == [["discriminator"]] * 4 + [["discriminator", "generator"]]
    trainer, result = _fit(task, tmp_path, epochs=1)
    record = trainer.history[0]
    assert result.steps == 3 and "train_grad_norm_discriminator" in record and "train_wasserstein" in record
    assert "train_grad_norm_generator" not in record  # 3 batches < 5 critic steps: the generator never moved


def test_coupled_phase_takes_every_gradient_before_any_update(tmp_path):
    task = _task("vaegan")
    model = task.model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batch = task.train_batches(0)[0]
    torch.manual_seed(7)
    task.generator.manual_seed(11)
    losses = task.phase_step(batch, "coupled", 0).losses
    expected = {name: torch.autograd.grad(loss, model.param_groups()[name], retain_graph=True) for name, loss in losses.items()}
    config = TrainConfig(epochs=1, batch_size=8, lr=1e-3, seed=0, grad_clip=1e9)
    trainer = AdversarialTrainer(task, config, tmp_path, generator=task.generator, show_progress=False)
    model.load_state_dict(before)
    torch.manual_seed(7)
    task.generator.manual_seed(11)
    trainer._train_step(batch)
    names = {id(p): n for n, p in model.named_parameters()}
    for group, grads in expected.items():
        for param, grad in zip(model.param_groups()[group], grads):
            step = param.detach() - before[names[id(param)]]
            big = grad.abs() > 1e-6
            # Adam's first step moves each weight by -lr * sign(gradient).
            assert torch.equal(torch.sign(step[big]), -torch.sign(grad[big])), (group, names[id(param)])


def test_overlapping_parameter_groups_are_refused(tmp_path):
    task = _task("dcgan")
    shared = task.model.param_groups()
    task.param_groups = lambda: {"a": shared["generator"], "b": shared["generator"]}
    with pytest.raises(ConfigError, match="overlap"):
        AdversarialTrainer(task, TrainConfig(epochs=1), tmp_path, show_progress=False)


def test_nan_is_reported_with_the_phase_and_nothing_is_applied(tmp_path):
    task = _task("dcgan")
    with torch.no_grad():
        task.model.discriminator.out.bias.fill_(float("nan"))
    with pytest.raises(TrainingDivergedError, match="discriminator phase") as info:
        _fit(task, tmp_path, epochs=1)
    assert "\n" not in str(info.value) and "8 train images" in str(info.value)


def test_labelled_subset_is_balanced_and_reproducible():
    labels = np.repeat(np.arange(10), 30)
    a = labelled_subset(labels, 100, seed=0)
    assert len(a) == 100 and np.bincount(labels[a]).tolist() == [10] * 10
    assert np.array_equal(a, labelled_subset(labels, 100, seed=0))
    assert not np.array_equal(a, labelled_subset(labels, 100, seed=1))


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """60 12x12 images of 3 classes: a bright square in a class-specific corner."""
    rng = np.random.default_rng(0)
    labels = np.arange(60) % 3
    images = (rng.random((60, 1, 12, 12)) * 40).astype(np.uint8)
    for i, c in enumerate(labels):
        images[i, 0, 4 * c : 4 * c + 4, 4 * c : 4 * c + 4] = 255
    path = tmp_path_factory.mktemp("data") / "squares.npz"
    np.savez(path, images=images, labels=labels.astype(np.uint8))
    return path


@pytest.mark.parametrize("name", ["vae", "sgan"])
def test_pipeline_writes_a_complete_run_folder(tmp_path, tiny_data, name):
    config = ImageTrainingConfig(
        model=name, data=str(tiny_data), labelled=6, exclude_classes=[2] if name == "vae" else [],
        model_options={"hidden": 4, "latent_dim": 4}, train={"epochs": 2, "batch_size": 16, "seed": 0},
    )
    model, result = train_image_model(config, tmp_path, device="cpu", show_progress=False)
    assert result.epochs_run == 2
    for name_ in ("config.json", "model.safetensors", "last.safetensors", "metrics.jsonl", "metrics.csv", "loss_curve.png", "samples.png", "samples.gif"):
        assert (tmp_path / name_).exists(), name_
    loaded, meta = load_image_model(tmp_path)
    assert meta["data"]["image_shape"] == [1, 12, 12]
    run = json.loads((tmp_path / "config.json").read_text())
    assert run["seed"] == 0 and "torch" in run["environment"]
    if name == "vae":
        assert meta["data"]["exclude_classes"] == [2]
        assert meta["data"]["n_train"] + meta["data"]["n_val"] == 36  # 54 training images, class 2 left out
    else:
        assert len(meta["data"]["labelled_index"]) == 6
    with pytest.raises(Exception, match="already holds a training run"):
        train_image_model(config, tmp_path, device="cpu", show_progress=False)


def test_monitor_sees_every_epoch_and_does_not_change_training(tmp_path, tiny_data):
    from molgen.image.pipelines import sample_images

    config = ImageTrainingConfig(
        model="dcgan", data=str(tiny_data), model_options={"hidden": 4, "latent_dim": 4},
        train={"epochs": 2, "batch_size": 16, "seed": 0, "lr": 1e-3},
    )
    seen = []

    def monitor(model, record):
        seen.append(record["epoch"])
        sample_images(model, 8, seed=1)  # eval mode, a seeded generator: must not change what training does next

    watched, _ = train_image_model(config, tmp_path / "a", device="cpu", show_progress=False, monitor=monitor)
    plain, _ = train_image_model(config, tmp_path / "b", device="cpu", show_progress=False)
    assert seen == [1, 2]
    for key, value in plain.state_dict().items():
        assert torch.equal(value, watched.state_dict()[key]), key


def test_training_state_keeps_the_fp16_loss_scale(tmp_path):
    """A resumed fp16 AMP run must start from the saved loss scale, or it skips different steps."""
    task = _task("dcgan")
    config = TrainConfig(epochs=1, batch_size=8, lr=1e-3, patience=0, seed=0)
    trainer = AdversarialTrainer(task, config, tmp_path, generator=task.generator, show_progress=False)
    trainer.scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=7)
    trainer.scaler.scale(torch.ones(()))  # creates the scale tensors
    trainer.scaler.update(new_scale=37.0)
    trainer._save_state()
    saved = trainer.scaler.state_dict()
    again = AdversarialTrainer(_task("dcgan"), config, tmp_path, show_progress=False)
    again.scaler = torch.amp.GradScaler("cpu")
    assert again.folder.load_state(again)
    assert again.scaler.state_dict() == saved and saved["scale"] == 37.0 and saved["growth_interval"] == 7


def test_image_train_config_file_and_repeating_a_run(tmp_path, tiny_data, capsys):
    from pathlib import Path

    from molgen.cli import main

    root = Path(__file__).resolve().parents[1]
    tiny = ["--data", str(tiny_data), "--epochs", "1", "--batch-size", "16", "--hidden", "4", "--latent-dim", "4", "--device", "cpu", "--quiet"]
    assert main(["image", "train", "--config", str(root / "configs" / "image_train.toml"), "--out", str(tmp_path / "a"), *tiny]) == 0, capsys.readouterr().err
    record = json.loads((tmp_path / "a" / "config.json").read_text())
    assert record["config"]["model_options"] == {"latent_dim": 4, "hidden": 4}
    assert record["config"]["train"]["lr"] == 1e-3 and record["run"] == {"device": "cpu", "threads": 0}
    assert main(["image", "train", "--config", str(tmp_path / "a" / "config.json"), "--out", str(tmp_path / "b")]) == 0, capsys.readouterr().err
    a, b = load_image_model(tmp_path / "a")[0], load_image_model(tmp_path / "b")[0]
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())


def test_image_settings_are_typed_and_flag_defaults_match():
    import typer

    from molgen.cli._app import app
    from molgen.cli.image import IMAGE_TRAIN_FLAGS
    from molgen.image.train_config import ImageTrainSettings, ModelName
    from molgen.models.image import MODEL_NAMES

    assert set(ModelName.__args__) == set(MODEL_NAMES)
    config = ImageTrainingConfig(model="dcgan", train={"epochs": 1})
    assert (config.train.lr, config.train.patience, config.train.grad_clip) == (2e-4, 0, 10.0)
    assert ImageTrainingConfig(model="dae", model_options={"latent_dim": 8}).model_options.code_dim == 8
    with pytest.raises(ConfigError, match="model_options: unknown key 'latent'"):
        ImageTrainingConfig.from_dict({"model_options": {"latent": 3}})
    with pytest.raises(ConfigError, match="model must be one of"):
        ImageTrainingConfig.from_dict({"model": "gan"})
    image = typer.main.get_command(app).commands["image"]  # type: ignore[attr-defined]
    defaults = ImageTrainSettings().to_dict()
    for param in image.commands["train"].params:
        if param.name in IMAGE_TRAIN_FLAGS:
            value = defaults
            for key in IMAGE_TRAIN_FLAGS[param.name].split("."):
                value = value.get(key) if isinstance(value, dict) else None
            if param.name == "lr":
                value = None  # resolved per model; the flag's None means the same
            assert param.default == value or (param.default == [] and value == []), param.name
