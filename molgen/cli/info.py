"""``molgen info`` and ``molgen data moses``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from molgen.cli._app import app, data_app
from molgen.cli.options import ModelOpt
from molgen.console import out


@app.command()
def info(
    model: ModelOpt = None,
    list_models: bool = typer.Option(False, "--list", help="list the pretrained models (names usable as --model and --init-from) instead"),
) -> None:
    """Show what a checkpoint holds: architecture, vocabulary, training data and history (--list: the pretrained models)."""
    from molgen.pretrained import describe_pretrained
    from molgen.utils.checkpoint import read_checkpoint_meta
    from molgen.vae import resolve_model_path

    if list_models:
        out.print_json(json.dumps(describe_pretrained()))
        return
    path = resolve_model_path(model)
    meta = read_checkpoint_meta(path)
    vocab = meta.get("vocab", {})
    summary = {
        "path": str(path),
        "kind": meta.get("kind"),
        "model_config": meta.get("model_config"),
        "conditions": (meta.get("conditions") or {}).get("names"),
        "vocabulary_size": len(vocab.get("tokens", [])) if isinstance(vocab, dict) else None,
        "train_set": meta.get("train_set"),
        "n_train": meta.get("n_train"),
        "best_epoch": meta.get("best_epoch"),
        "last_epoch": (meta.get("history") or [{}])[-1],
        "latent_prior": meta.get("latent_prior"),
        "sampling_temperature": (meta.get("sampling") or {}).get("temperature"),
    }
    if model is None:
        summary["pretrained_models"] = {m["name"]: m["path"] for m in describe_pretrained()}
    out.print_json(json.dumps(summary))


@data_app.command("moses")
def data_moses(
    cache_dir: Optional[Path] = typer.Option(None, help="where to put the files (default ~/.cache/molgen/moses or $MOLGEN_CACHE)"),
    wheel: Optional[Path] = typer.Option(None, help="a local molsets wheel or unpacked folder (no download)"),
) -> None:
    """Materialise the MOSES train/test/test_scaffolds sets (from the molsets wheel on PyPI)."""
    from molgen.datasets import materialize_moses

    paths = materialize_moses(cache_dir=cache_dir, wheel=wheel)
    for name, path in paths.items():
        out.print(f"{name}: {path}")


