"""A diversity filter for optimization: a memory of Bemis-Murcko scaffolds that caps the reward per chemotype.

After ``bucket_size`` hits on one scaffold, further molecules with that scaffold
score ``penalty`` times their objective (0 by default: they score zero), as in
REINVENT's scaffold memory (Blaschke et al. 2020, "Memory-assisted reinforcement
learning for diverse molecular de novo design"). The optimizer sees the filtered
score, so it moves on to other chemotypes; the unfiltered score stays in
``molecules.csv`` (``objective_unfiltered``) and the output is ranked by the
filtered one, so the top of the list spans distinct scaffolds.

A hit is a successfully scored molecule whose unfiltered score is at least
``min_score`` (every one when it is None). Acyclic molecules share the empty
scaffold. The filter assumes scores where 0 is poor (QED, desirabilities,
similarities); for objectives that go negative, use a penalty factor or shift them.

    >>> memory = ScaffoldMemory(DiversityConfig(bucket_size=1))
    >>> [memory.filter(s, 0.8) for s in ("c1ccccc1CC", "c1ccccc1CCC", "C1CCNCC1")]
    [0.8, 0.0, 0.8]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from molgen import chem
from molgen.config import ConfigMixin
from molgen.errors import ConfigError

__all__ = ["DiversityConfig", "ScaffoldMemory", "murcko_scaffold"]


@dataclass
class DiversityConfig(ConfigMixin):
    """Settings of the scaffold memory; unknown keys are rejected by :meth:`from_dict`."""

    _config_label = "diversity filter keys"

    bucket_size: int = 10  # hits one scaffold may collect at full score
    penalty: float = 0.0  # factor on the score of every later molecule of a full scaffold (0: score zero)
    min_score: float | None = None  # unfiltered score a molecule needs to count as a hit (None: any)
    generic: bool = False  # compare generic scaffolds (every atom carbon, every bond single)
    # With penalty 0 a molecule of a full scaffold is known to score zero before it is scored: it then costs
    # no oracle call (logged as filtered), so the budget goes to new scaffolds. False: score it anyway.
    skip_full: bool = True

    def __post_init__(self) -> None:
        if int(self.bucket_size) != self.bucket_size or self.bucket_size < 1:
            raise ConfigError(f"diversity filter bucket_size must be a whole number >= 1, not {self.bucket_size}")
        if not 0 <= self.penalty < 1:
            raise ConfigError(f"diversity filter penalty must be in [0, 1), not {self.penalty}")
        if self.min_score is not None and not math.isfinite(self.min_score):
            raise ConfigError("diversity filter min_score must be a finite number")


def murcko_scaffold(smiles: str, generic: bool = False) -> str:
    """Canonical SMILES of the Bemis-Murcko scaffold ('' for an acyclic molecule)."""
    from rdkit import Chem
    from rdkit.Chem.Scaffolds import MurckoScaffold

    core = MurckoScaffold.GetScaffoldForMol(chem.parse_smiles(smiles))
    if generic and core.GetNumAtoms():
        core = MurckoScaffold.MakeScaffoldGeneric(core)
    return Chem.MolToSmiles(core)


class ScaffoldMemory:
    """Counts hits per scaffold and filters scores; :attr:`counts` maps scaffold -> hits seen."""

    def __init__(self, config: DiversityConfig | None = None) -> None:
        self.config = config or DiversityConfig()
        self.counts: dict[str, int] = {}

    def filter(self, smiles: str, score: float) -> float:
        """The score the optimizer sees for a newly scored molecule (records it as a hit when it is one)."""
        if not math.isfinite(score):
            return score
        scaffold = murcko_scaffold(smiles, self.config.generic)
        full = self.counts.get(scaffold, 0) >= self.config.bucket_size
        if self.config.min_score is None or score >= self.config.min_score:
            self.counts[scaffold] = self.counts.get(scaffold, 0) + 1
        return score * self.config.penalty if full else score

    def full_reason(self, smiles: str, pending: dict[str, int]) -> str | None:
        """Why ``smiles`` need not be scored (its scaffold is full and the penalty is 0), else None.

        ``pending`` counts the molecules of each scaffold already sent for scoring in the same batch
        (they are hits only when there is no ``min_score``); it is updated for molecules that go on.
        """
        cfg = self.config
        if not cfg.skip_full or cfg.penalty != 0:
            return None
        scaffold = murcko_scaffold(smiles, cfg.generic)
        hits = self.counts.get(scaffold, 0) + (pending.get(scaffold, 0) if cfg.min_score is None else 0)
        if hits >= cfg.bucket_size:
            return f"scaffold {scaffold or '(acyclic)'} already has {cfg.bucket_size} hit(s) (diversity filter)"
        pending[scaffold] = pending.get(scaffold, 0) + 1
        return None

    def summary(self) -> dict:
        full = sum(n >= self.config.bucket_size for n in self.counts.values())
        return {"scaffolds": len(self.counts), "full_buckets": full, **self.config.to_dict()}
