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
    from molgen.vae.describe import describe_model

    out.print_json(json.dumps(describe_pretrained() if list_models else describe_model(model)))


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


