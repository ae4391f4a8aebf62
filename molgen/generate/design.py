"""``molgen sample --substructure/--near``: the file-writing side of core-keeping and near-lead sampling.

:func:`write_design_samples` runs :func:`molgen.generate.substructure.sample_with_core` or
:func:`molgen.generate.near.sample_near` and writes the molecules atomically (``.smi``:
SMILES only; otherwise CSV with ``smiles`` and, near leads, ``similarity`` and
``reference``). Near leads with a core, only molecules with the core are kept.
Both write distinct molecules: a repeat costs its decode but is not written again.
"""

from __future__ import annotations

import time
from pathlib import Path

from molgen.errors import ConfigError

__all__ = ["write_design_samples"]


def write_design_samples(
    vae,
    output: Path,
    n: int,
    substructure: list[str],
    near: list[str],
    radius: float | None = None,
    similarity: str | None = None,
    seeds: list[str] | None = None,
    temperature: float | None = None,
    greedy: bool = False,
    seed: int = 0,
    show_progress: bool = True,
) -> str:
    """Sample, write ``output`` and return a one-line report."""
    from molgen.generate.near import parse_similarity_range, sample_near
    from molgen.generate.substructure import CoreFilter, sample_with_core
    from molgen.utils.io import atomic_output
    from molgen.utils.progress import progress_bar

    core = CoreFilter(substructure) if substructure else None
    start = time.perf_counter()
    if near:
        bounds = parse_similarity_range(similarity) if similarity else None
        temp = 0.0 if greedy or temperature is None else temperature
        frame = sample_near(vae, near, n, radius=radius, similarity=bounds, temperature=temp, seed=seed, require=core)
        smiles = list(frame.smiles)
        detail = f"similarity {frame.similarity.min():.3f}..{frame.similarity.max():.3f}" if len(frame) else "none in range"
    else:
        if radius is not None or similarity is not None:
            raise ConfigError("--radius and --similarity apply with --near SMILES or --near-file")
        with progress_bar(n, "sampling with core", unit="mol", enabled=show_progress) as bar:
            done = [0]

            def advance(decoded: int, kept: int) -> None:
                bar.advance(kept - done[0], decodes_per_kept=decoded / max(kept, 1))
                done[0] = kept

            smiles, stats = sample_with_core(vae, substructure, n, seeds=seeds, temperature=0.0 if greedy else temperature,
                                             seed=seed, progress=advance)  # fmt: skip
        frame = None
        detail = f"{stats.decodes_per_kept:.2f} decodes per molecule from {stats.seeds:,} seed molecules"
    with atomic_output(output, "w") as fh:
        if output.suffix in (".smi", ".txt"):
            fh.writelines(s + "\n" for s in smiles)
        elif frame is not None:
            frame.to_csv(fh, index=False, float_format="%.4f")
        else:
            fh.write("smiles\n")
            fh.writelines(s + "\n" for s in smiles)
    seconds = time.perf_counter() - start
    return f"wrote {len(smiles):,} molecules to {output} in {seconds:.1f} s ({detail}; unique {len(set(smiles)) / max(1, len(smiles)):.4f})"
