"""``molgen encode``, ``decode``, ``reconstruct`` and ``interpolate``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from molgen.cli._app import app
from molgen.cli._common import (
    _read,
    _write_molecules,
)
from molgen.cli.options import (
    DeviceOpt,
    ModelOpt,
    RejectsOpt,
    SeedOpt,
    SmilesColumnOpt,
    StrictOpt,
)
from molgen.console import err, out
from molgen.errors import DataError


@app.command()
def encode(
    input: Path = typer.Option(..., "--input", "-i", help="SMILES file"),
    output: Path = typer.Option(Path("z.npy"), "-o", "--output", help=".npy of latent vectors (posterior means)"),
    model: ModelOpt = None,
    smiles_column: SmilesColumnOpt = None,
    sample_posterior: bool = typer.Option(False, "--sample", help="sample z ~ q(z|x) instead of the mean"),
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    strict: StrictOpt = False,
    rejects: RejectsOpt = None,
) -> None:
    """Encode molecules to latent vectors; writes Z.npy and Z.smi (the molecules, row by row)."""
    import numpy as np

    from molgen.utils.io import atomic_output
    from molgen.vae import MoleculeVAE

    vae = MoleculeVAE.load(model, device=device)
    smiles = _read(input, smiles_column, strict, rejects)
    z, kept = vae.encode(smiles, sample=sample_posterior, seed=seed)
    with atomic_output(output, "wb") as fh:
        np.save(fh, z)
    _write_molecules(output.with_suffix(".smi"), [smiles[i] for i in kept])
    dropped = len(smiles) - len(kept)
    err.print(f"encoded {len(kept):,} molecules to {output} {z.shape}" + (f"; {dropped} not representable by this model's vocabulary/length were skipped" if dropped else ""))


@app.command()
def decode(
    latents: Path = typer.Option(..., "--latents", help=".npy array [n, latent_dim]"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="write SMILES here (default: print)"),
    model: ModelOpt = None,
    temperature: float = typer.Option(1.0),
    sample_tokens: bool = typer.Option(False, "--sample", help="sample tokens instead of greedy decoding"),
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
) -> None:
    """Decode latent vectors to molecules (greedy by default)."""
    import numpy as np

    from molgen.generate.decoding import DecodeOptions
    from molgen.utils.io import load_numpy
    from molgen.vae import MoleculeVAE

    vae = MoleculeVAE.load(model, device=device)
    fix = "pass a .npy file written by molgen encode"
    z = load_numpy(latents, "an array of latent vectors", fix)
    if not isinstance(z, np.ndarray):
        z.close()
        raise DataError(f"{latents} is an .npz archive, not one array of latent vectors; {fix}")
    opts = DecodeOptions(strategy="sample" if sample_tokens else "greedy", temperature=temperature)
    smiles = vae.decode(z, opts, seed=seed)
    rows = [s or "" for s in smiles]
    if output:
        _write_molecules(output, rows, {"valid": [bool(s) for s in smiles]})
    else:
        for s in rows:
            print(s or "<invalid>")
    err.print(f"decoded {len(smiles):,} vectors: {sum(bool(s) for s in smiles):,} valid")


@app.command()
def reconstruct(
    input: Path = typer.Option(..., "--input", "-i"),
    model: ModelOpt = None,
    limit: int = typer.Option(0, help="use only the first N molecules (0: all)"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="CSV of input, reconstruction, match"),
    smiles_column: SmilesColumnOpt = None,
    device: DeviceOpt = "auto",
    strict: StrictOpt = False,
    rejects: RejectsOpt = None,
) -> None:
    """Reconstruction accuracy: encode to the mean, decode greedily, compare canonical SMILES."""
    from molgen.vae import MoleculeVAE

    vae = MoleculeVAE.load(model, device=device)
    smiles = _read(input, smiles_column, strict, rejects)
    if limit:
        smiles = smiles[:limit]
    result = vae.reconstruct(smiles)
    if output:
        _write_molecules(output, result.inputs, {"reconstruction": [o or "" for o in result.outputs], "match": [a == b for a, b in zip(result.inputs, result.outputs)]})
    valid = sum(bool(o) for o in result.outputs) / max(1, len(result.outputs))
    out.print(f"reconstruction accuracy {result.accuracy:.4f} on {len(result.inputs):,} molecules (greedy, exact canonical match); valid decodes {valid:.4f}")


@app.command()
def interpolate(
    start: str = typer.Argument(..., help="SMILES of the first molecule"),
    end: str = typer.Argument(..., help="SMILES of the last molecule"),
    steps: int = typer.Option(10),
    method: str = typer.Option("slerp", help="slerp or linear"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="PNG grid of the path"),
    model: ModelOpt = None,
    device: DeviceOpt = "auto",
) -> None:
    """Decode the path between two molecules in latent space."""
    from molgen.vae import MoleculeVAE

    vae = MoleculeVAE.load(model, device=device)
    path = vae.interpolate(start, end, steps, method)  # type: ignore[arg-type]
    for i, s in enumerate(path):
        print(f"{i:3d}  {s or '<invalid>'}")
    if output:
        from molgen.viz import molecule_grid

        molecule_grid(path, output, legends=[f"step {i}" for i in range(len(path))], per_row=min(5, len(path)))
        err.print(f"wrote {output}")


