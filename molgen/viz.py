"""Pictures of results: loss curves, molecule grids, interpolation strips.

Everything renders off-screen (matplotlib's Agg backend, RDKit's Cairo
drawer) and is written atomically, so it works on headless machines.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from molgen.errors import DrawingUnavailableError  # noqa: E402
from molgen.utils.io import atomic_output  # noqa: E402

__all__ = ["plot_history", "molecule_grid", "save_figure", "can_draw_molecules"]


def can_draw_molecules() -> bool:
    """Whether RDKit can draw molecule pictures on this machine."""
    try:
        _rdkit_draw()
    except DrawingUnavailableError:
        return False
    return True


def _rdkit_draw():
    """``rdkit.Chem.Draw``; a one-line :class:`DrawingUnavailableError` where it cannot load.

    RDKit's pip wheels link their drawing code against the X rendering
    libraries, which bare servers and slim containers often lack
    (``ImportError: libXrender.so.1``); everything but the pictures works there.
    """
    try:
        from rdkit.Chem import Draw
    except ImportError as exc:
        raise DrawingUnavailableError(
            f"RDKit cannot draw molecules on this machine ({exc}); install the X rendering libraries "
            "(Debian/Ubuntu: apt-get install libxrender1 libxext6) to get molecule pictures"
        ) from None
    return Draw


def save_figure(fig, path: str | Path, dpi: int = 120) -> Path:
    """Save a matplotlib figure atomically and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format=Path(path).suffix.lstrip(".") or "png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    with atomic_output(path, "wb") as fh:
        fh.write(buf.getvalue())
    return Path(path)


def plot_history(history: Sequence[dict[str, float]], path: str | Path) -> Path:
    """Loss curves from per-epoch records: every ``train_*``/``val_*`` pair of losses, one panel each."""
    keys = [k[len("train_") :] for k in history[0] if k.startswith("train_")]
    keys = [k for k in ("loss", "recon", "kl", "token_accuracy") if k in keys] or keys[:4]
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2), squeeze=False)
    epochs = [r["epoch"] for r in history]
    for ax, key in zip(axes[0], keys):
        for split, style in (("train", "-o"), ("val", "--s")):
            values = [r.get(f"{split}_{key}") for r in history]
            if any(v is not None for v in values):
                ax.plot(epochs, [float("nan") if v is None else v for v in values], style, ms=3, label=split)
        ax.set_title(key)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def molecule_grid(
    smiles: Sequence[str | None],
    path: str | Path,
    legends: Sequence[str] | None = None,
    per_row: int = 5,
    size: int = 250,
    required: bool = True,
) -> Path | None:
    """Draw molecules in a grid PNG; unparsable entries are drawn as empty cells with their legend.

    Where RDKit cannot draw (see :func:`_rdkit_draw`) this raises
    :class:`DrawingUnavailableError`, or with ``required=False`` warns in one
    line and returns ``None``: for pictures that accompany results written elsewhere.
    """
    from rdkit import Chem

    from molgen.chem import try_parse

    try:
        draw = _rdkit_draw()
    except DrawingUnavailableError as exc:
        if required:
            raise
        warnings.warn(f"skipped {Path(path).name}: {exc}", UserWarning, stacklevel=2)
        return None
    mols = [try_parse(s)[0] if s else None for s in smiles]
    mols = [m if m is not None else Chem.Mol() for m in mols]
    img = draw.MolsToGridImage(
        mols,
        molsPerRow=per_row,
        subImgSize=(size, size),
        legends=[str(x) for x in legends] if legends is not None else None,
    )
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    with atomic_output(path, "wb") as fh:
        fh.write(buf.getvalue())
    return Path(path)
