"""What a molecule VAE checkpoint holds, read from its metadata only (no weights loaded): ``molgen info``.

    >>> from molgen.vae.describe import describe_model   # doctest: +SKIP
    >>> describe_model("zinc")["model_config"]["latent_dim"]   # doctest: +SKIP
    56
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["describe_model"]


def describe_model(model: str | Path | None = None) -> dict[str, Any]:
    """Architecture, vocabulary size, training data and history, prior and sampling temperature of ``model``.

    ``model``: a checkpoint, run folder or pretrained name; None is the default model, and then the
    pretrained models are listed too (name -> path).
    """
    from molgen.pretrained import describe_pretrained
    from molgen.utils.checkpoint import read_checkpoint_meta
    from molgen.vae import resolve_model_path

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
    return summary
