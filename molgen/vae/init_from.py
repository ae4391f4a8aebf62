"""``train --init-from``: the new run takes its architecture from the checkpoint it starts from.

Fine-tuning needs the same layer shapes as the source model, so every model
option the user did not set explicitly (architecture, sizes, representation,
length limit) is read from the checkpoint; options the user did set win, and
a real mismatch is then reported by the warm start with both architectures.

Example::

    >>> opts = inherit_architecture("default")
    >>> opts.representation, opts.model["decoder_hidden"], opts.max_length
    ('selfies', 256, 100)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from molgen.errors import ConfigError

__all__ = ["SIZE_OPTIONS", "InheritedArchitecture", "inherit_architecture", "model_options"]

#: Model options a checkpoint can supply (keys of ``SeqVAEConfig`` that ``model_options`` accepts).
SIZE_OPTIONS = ("latent_dim", "decoder_hidden", "decoder_layers", "encoder_hidden", "encoder_layers", "embed_dim", "n_heads")


@dataclass
class InheritedArchitecture:
    """The resolved options: ``model`` is the ``model_options`` result, ``inherited`` names what came from the checkpoint."""

    arch: str
    representation: str
    max_length: int
    model: dict[str, Any]
    inherited: list[str] = field(default_factory=list)

    def describe(self) -> str:
        m = self.model
        return (
            f"{self.arch}, latent {m.get('latent_dim')}, embed {m.get('embed_dim')}, encoder {m.get('encoder_hidden')}x{m.get('encoder_layers')}, "
            f"decoder {m.get('decoder_hidden')}x{m.get('decoder_layers')}; {self.representation}, max length {self.max_length}"
        )


def inherit_architecture(
    checkpoint: str | Path | None,
    arch: str | None = None,
    representation: str | None = None,
    max_length: int | None = None,
    **sizes: int | None,
) -> InheritedArchitecture:
    """Fill the options left ``None`` from ``checkpoint`` (a file, run folder or pretrained name; None: no checkpoint).

    Without a checkpoint, or when ``arch`` names another architecture than the checkpoint's, the
    usual defaults apply (gru, selfies, 100 tokens) and nothing is inherited.
    """
    from molgen.utils.checkpoint import read_checkpoint_meta
    from molgen.vae import resolve_model_path

    unknown = set(sizes) - set(SIZE_OPTIONS)
    if unknown:
        raise TypeError(f"unknown model option(s) {sorted(unknown)}")
    source: dict[str, Any] = {}
    if checkpoint is not None:
        source = read_checkpoint_meta(resolve_model_path(checkpoint)).get("model_config") or {}
    inherited: list[str] = []
    same_arch = bool(source) and (arch is None or arch == source.get("arch", "gru"))
    if same_arch:
        if arch is None:
            arch = source.get("arch", "gru")
            inherited.append("arch")
        for name in SIZE_OPTIONS:
            if sizes.get(name) is None and name in source and (name != "n_heads" or arch == "transformer"):
                sizes[name] = int(source[name])
                inherited.append(name)
    if representation is None:
        representation = source.get("representation", "selfies")
        inherited += ["representation"] if source else []
    if max_length is None:
        # The model counts the end token in its length; the option does not.
        max_length = int(source["max_length"]) - 1 if "max_length" in source else 100
        inherited += ["max_length"] if "max_length" in source else []
    arch = arch or "gru"
    return InheritedArchitecture(arch, representation, max_length, model_options(arch, **sizes), inherited)


def model_options(arch: str = "gru", **sizes: int | None) -> dict[str, Any]:
    """:class:`SeqVAEConfig` overrides for ``arch``: the sizes given (``None``: default) over that architecture's defaults."""
    from molgen.models.transformer_vae import TRANSFORMER_DEFAULTS

    if arch not in ("gru", "transformer"):
        raise ConfigError(f"unknown architecture {arch!r}; choose gru or transformer")
    given = {k: v for k, v in sizes.items() if v is not None}
    if arch == "gru" and "n_heads" in given:
        raise ConfigError("--n-heads applies to --arch transformer only")
    base: dict[str, Any] = dict(TRANSFORMER_DEFAULTS) if arch == "transformer" else {}
    return {"arch": arch, **base, **given}
