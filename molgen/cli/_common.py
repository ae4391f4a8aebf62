"""Shared pieces of the command modules: help texts, the input reader, warnings on the console."""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path

from molgen.cli._app import _POLICY

# The help texts live with the shared option types; the names stay importable from here.
from molgen.cli.options import (  # noqa: F401 - re-exported
    INTDIV_HELP,
    MODEL_HELP,
    REJECTS_HELP,
    SHARD_HELP,
    STRICT_HELP,
)
from molgen.console import err, note, warn
from molgen.errors import DataError

TEMPERATURE_HELP = "softmax temperature (<1: closer to the training data, >1: more diverse); default: the model's own (molgen tune-sampling), else 1"
PRIOR_HELP = "latent prior: auto (the model's fitted prior if it has one, else N(0, I)), standard (N(0, I)) or fitted"


def _policy(**overrides: object):
    from molgen.chem.standardization import StandardizePolicy

    return StandardizePolicy(**{**_POLICY, **overrides})


def _read(
    path: Path | None, smiles_column: str | None, strict: bool, rejects: Path | None, default_ok: bool = False, stereo: str | None = None
):
    """Read molecules leniently (or strictly) under the standardisation policy; report skips and changes.

    The one reader of every command: ``path`` None is the embedded MOSES sample
    when ``default_ok``, else an error; a file without a valid molecule is an error.
    """
    from molgen.datasets import default_training_smiles, read_molecules

    if path is None:
        if not default_ok:
            raise DataError("no input file given; pass --input FILE")
        smiles = default_training_smiles()
        note(f"using the embedded default data: {len(smiles):,} MOSES training molecules")
        return smiles
    policy = _policy(**({"stereo": stereo} if stereo else {}))
    result = read_molecules(path, smiles_column=smiles_column, strict=strict, rejects_to=rejects, standardize=policy)
    err.print(result.summary() + (f"; rejects in {rejects}" if rejects is not None and result.n_skipped else ""))
    if result.standardized is not None:
        note(f"{result.standardized.summary()} ({policy.describe()})")
    if not result.smiles:
        raise DataError(f"{path} contains no valid molecule; check the file and --smiles-column")
    return result.smiles


def _random_subset(smiles: list[str], limit: int, seed: int) -> list[str]:
    """A seeded random ``limit`` of the molecules, in file order (all of them when ``limit`` is 0 or larger)."""
    if not limit or len(smiles) <= limit:
        return smiles
    import numpy as np

    keep = np.sort(np.random.default_rng(seed).choice(len(smiles), limit, replace=False))
    return [smiles[i] for i in keep]


_PACKAGE_DIR = str(Path(__file__).resolve().parents[1])  # the molgen package
_LIBRARY_NOISE = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)


def _show_warning(message, category, filename, lineno, file=None, line=None):  # noqa: ARG001 - warnings' signature
    """One yellow line for molgen's own warnings; other libraries' warnings (deprecations, numerics) are not
    the user's business on the command line (MOLGEN_SHOW_WARNINGS=1 shows them)."""
    import os

    ours = str(Path(filename).resolve()).startswith(_PACKAGE_DIR) and not issubclass(category, _LIBRARY_NOISE)
    if ours or os.environ.get("MOLGEN_SHOW_WARNINGS") == "1":
        warn(message)


def _quiet_rdkit() -> None:
    """RDKit's C++ log (parse errors, kekulization notes) would print over the output; molgen reports failures itself."""
    from rdkit import RDLogger

    RDLogger.DisableLog("rdApp.*")


@contextmanager
def _warnings_to_console(every: bool = True):
    """Show library warnings (e.g. a condition outside the training range) as one yellow line each.

    ``every``: repeat a warning each time it is raised (Python's default shows it once per place).
    """
    with warnings.catch_warnings():
        if every:
            warnings.simplefilter("always", UserWarning)
        warnings.showwarning = _show_warning
        yield


def _write_molecules(path: Path, smiles: list[str], extra: dict[str, list] | None = None) -> None:
    import pandas as pd

    from molgen.utils.io import atomic_output

    frame = pd.DataFrame({"smiles": smiles, **(extra or {})})
    with atomic_output(path, "w") as fh:
        if path.suffix in (".smi", ".txt"):
            fh.write("".join(s + "\n" for s in smiles))
        else:
            frame.to_csv(fh, index=False)


