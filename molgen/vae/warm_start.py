"""``train --init-from``: a new run starts from a checkpoint's weights, its vocabulary grown by the data's new tokens."""

from __future__ import annotations

from pathlib import Path

from molgen.errors import ConfigError
from molgen.tokenizers import SPECIAL_TOKENS
from molgen.train.vocab_growth import grow_state_dict
from molgen.vae.bundle import MoleculeVAE

__all__ = ["growth_line", "warm_start"]


def growth_line(path: str | Path, old_size: int, added: list[str]) -> str:
    """The one line a fine-tune prints about its vocabulary."""
    if not added:
        return f"vocabulary: all tokens of the data are in {path}'s {old_size - len(SPECIAL_TOKENS)} tokens; none added"
    shown = " ".join(added[:8]) + (" ..." if len(added) > 8 else "")
    return f"vocabulary: added {len(added)} token(s) to {path}'s {old_size - len(SPECIAL_TOKENS)} ({shown}); old rows kept exactly"


def warm_start(vae: MoleculeVAE, path: str | Path, seed: int = 0) -> None:
    """Copy weights from a compatible checkpoint (fresh optimizer, same architecture, same or grown vocabulary).

    A vocabulary that extends the source's (the source's tokens first, in
    order) grows the token-indexed layers (:mod:`molgen.train.vocab_growth`).

    An unconditional source may also start a conditional run of the same
    architecture: the weights that read the condition (the trailing input
    columns of every layer that sees ``[..., c]``) start at zero, so training
    begins from exactly the source model and learns to use the properties.
    The same holds for the "no condition" flag of condition dropout, which a
    conditional source without it gains.
    """
    source = MoleculeVAE.load(path, device="cpu")
    expected = vae.config.to_dict()
    if vae.vocab.tokens[: len(source.vocab)] != source.vocab.tokens:
        raise ConfigError(f"--init-from {path}: this run's vocabulary does not extend the checkpoint's; start a new run from it")
    expected["vocab_size"] = len(source.vocab)
    if source.config.cond_dim == 0:
        expected["cond_dim"] = 0
    if not source.config.null_condition:
        expected["null_condition"] = False
    if source.config.cond_dim and source.conditions and vae.conditions and source.conditions.names != vae.conditions.names:
        raise ConfigError(
            f"--init-from {path} is conditioned on {', '.join(source.conditions.names)}, this run on {', '.join(vae.conditions.names)}"
        )
    if source.config.to_dict() != expected:
        raise ConfigError(
            f"--init-from {path}: architecture {source.config.to_dict()} differs from this run's {vae.config.to_dict()}; "
            "pass the same model options"
        )
    state = vae.model.state_dict()
    grown = grow_state_dict(source.model.state_dict(), state, len(source.vocab), seed=seed)
    for name, weight in grown.items():
        target = state[name]
        if target.shape != weight.shape:
            target.zero_()
            target[..., : weight.shape[-1]] = weight
        else:
            target.copy_(weight)
    vae.model.load_state_dict(state)


