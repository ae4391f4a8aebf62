"""Pretrained models and shipped data files, addressable by name from anywhere.

The files live in the repository's ``data/`` folder; the wheel installs that
folder as ``molgen/_data`` (see ``setup.py``), so an installed molgen finds
them without a checkout, and a checkout (or an editable install) finds them
in ``data/``. Adding a pretrained model is one line in :data:`PRETRAINED`.

Example::

    >>> pretrained_path("default").name
    'default_model.safetensors'
    >>> resolve_model_spec("zinc").name
    'zinc_model.safetensors'
"""

from __future__ import annotations

from pathlib import Path

from molgen.errors import CheckpointError, DataError

__all__ = ["PRETRAINED", "data_dir", "data_file", "pretrained_path", "resolve_model_spec", "describe_pretrained"]

#: Name -> (file in ``data/``, one-line description). One entry per shipped model.
PRETRAINED: dict[str, tuple[str, str]] = {
    "default": ("default_model.safetensors", "SELFIES GRU VAE trained on MOSES (the default of every command)"),
    "zinc": ("zinc_model.safetensors", "SELFIES GRU VAE trained on ZINC-250k without stereochemistry (pLogP optimization)"),
    "drug-like": ("druglike_model.safetensors", "SELFIES GRU VAE on ZINC-250k with stereochemistry and charges (docs/druglike_model.md)"),
}

_PACKAGE_DATA = Path(__file__).resolve().parent / "_data"  # installed from a wheel
_CHECKOUT_DATA = Path(__file__).resolve().parent.parent / "data"  # source checkout or editable install


def data_dir() -> Path:
    """The folder holding the shipped data files: ``molgen/_data`` when installed, else the checkout's ``data/``."""
    for folder in (_PACKAGE_DATA, _CHECKOUT_DATA):
        if (folder / PRETRAINED["default"][0]).is_file():
            return folder
    return _CHECKOUT_DATA


def data_file(name: str) -> Path:
    """Path of a shipped file of ``data/``; one-line :class:`DataError` when the installation lacks it."""
    path = data_dir() / name
    if not path.is_file():
        raise DataError(f"the shipped data file {name} is missing from {path.parent}; reinstall molgen (pip install molgen) or pass your own file")
    return path


def pretrained_path(name: str) -> Path:
    """File of the pretrained model ``name`` (a key of :data:`PRETRAINED`)."""
    if name not in PRETRAINED:
        raise CheckpointError(f"no pretrained model named {name!r}; the names are {', '.join(PRETRAINED)} (or pass a checkpoint file or run folder)")
    path = data_dir() / PRETRAINED[name][0]
    if not path.is_file():
        raise CheckpointError(f"the pretrained model {name!r} ({path}) is missing; reinstall molgen or pass --model PATH")
    return path


def resolve_model_spec(spec: str | Path | None) -> Path:
    """``None`` or a pretrained name -> its shipped file; anything else is returned as a path.

    A file or folder of that name in the working directory wins over the pretrained name.
    """
    if spec is None:
        return pretrained_path("default")
    text = str(spec)
    if text in PRETRAINED and not Path(text).exists():
        return pretrained_path(text)
    return Path(spec)


def describe_pretrained() -> list[dict[str, object]]:
    """Name, file and description of every pretrained model (for ``molgen info --list``)."""
    folder = data_dir()
    return [
        {"name": name, "path": str(folder / file), "description": text, "present": (folder / file).is_file()}
        for name, (file, text) in PRETRAINED.items()
    ]
