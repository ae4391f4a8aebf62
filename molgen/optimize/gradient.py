"""Gradient ascent in a VAE's latent space against a property predictor.

The recipe of Gomez-Bombarelli et al. 2018 and LIMO (Eckmann et al. 2022):
start from many latent points (prior samples, or the encodings of seed
molecules), follow the gradient of a differentiable surrogate of the
objective -- the objective computed from a
:class:`~molgen.models.predictor.LatentPredictor`'s outputs -- with Adam, and
decode along the way. Only decoded molecules are scored, by the true objective
through the :class:`~molgen.optimize.oracle.Oracle`, so the predictor can steer
but never inflate the results.

Two things keep ``z`` where the decoder is reliable: a Gaussian prior penalty
``prior_weight * ||z||^2 / 2`` (the negative log-density of N(0, I) up to a
constant), and an optional trust region ``||z - z_start|| <= trust_radius``
(projected after every step). ``uncertainty_weight`` adds that multiple of the
ensemble's spread to the surrogate: negative values make the ascent
pessimistic (it avoids regions the ensemble disagrees on).
``decode_temperature > 0`` samples each decode instead of taking the argmax,
so one latent point yields several nearby molecules; near a start molecule
(constrained optimization) that finds similar molecules a greedy path steps
over.

With ``rounds > 1`` the later rounds restart from the best molecules found so
far (plus prior samples): from the latent point each was decoded from
(``elite_latent="decoded"``, so a restart is a true neighbour of the elite even
where encoding and decoding do not round-trip) or from its encoding. With
``refit`` the predictor is refitted between rounds on everything decoded and
scored (active learning).

Two options keep a long elite-restart search from collapsing onto one basin.
``elite_max_similarity < 1`` picks the elites greedily, best first, skipping a
molecule whose Tanimoto similarity (Morgan radius 2, 2,048 bits) exceeds that
value to ``elite_per_cluster`` elites already picked, so the restarts cover
several chemical families instead of the near-copies of one. ``restart_min_yield
> 0`` watches each round's yield (new oracle calls per decode): after a round
below it, the restart noise of the next round is multiplied by
``restart_noise_growth`` (compounding while the yield stays low, up to
``restart_max_noise``), and it falls back to ``start_noise`` after a round at or
above it, so a converged search spreads its restarts out again instead of
decoding known molecules. ``GradientRun.round_log`` keeps each round's
noise, number of elites, decodes, new calls, yield and best score. Both are on
by default (similarity 0.5, 8 per family, yield 0.3, growth 1.5 up to 0.6).
On the ZINC-250k pLogP benchmark the diverse elites turned a search that
stalled in one family on one seed of three into one above LIMO's top-3 on all
three; the noise schedule left that result as it was and cut the repeated
decodes; the QED benchmark's molecules were unchanged by either
(docs/optimize_benchmarks.md).

Hard constraints on built-in properties (``heavy_atoms<=38``) are known to the
oracle, which never charges an infeasible molecule, but an ascent that does
not know them walks out of the feasible region and wastes its later decodes.
``constraint_weight`` subtracts that multiple of the predicted violation
(property units beyond the limit) from the surrogate, for every constrained
property the predictor predicts; with ``refit`` the refits learn the
constrained properties from the decoded molecules, so a predictor that was not
trained on them gets them from the first refit on.

With start molecules (lead optimization) the rounds above are replaced by the
lead search of :mod:`molgen.optimize.explore` (``explore="auto"``; ``"off"``
keeps the fixed rounds), which keeps exploring near the starts until the
budget is spent or a stopping rule fires; :attr:`GradientRun.stop` names the
rule either way.

Objectives that are not functions of built-in properties (user functions,
similarity) get a predictor fitted online on oracle scores of an initial
design of ``n_init`` molecules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import numpy as np
import torch

from molgen import chem
from molgen.config import ConfigMixin
from molgen.errors import ConfigError
from molgen.generate.decoding import DecodeOptions
from molgen.optimize.decode_pipeline import DecodeScorer
from molgen.optimize.explore import STOP_BUDGET, STOP_STALLED, ascent_step, lead_search
from molgen.optimize.oracle import Oracle
from molgen.optimize.predictor import (
    PredictorTrainingConfig,
    TrainedPredictor,
    fit_predictor,
)
from molgen.optimize.restarts import Restarts, design_rounds, encode_design, initial_design, origins_for, round_starts
from molgen.utils.progress import progress_bar

__all__ = ["GradientConfig", "GradientRun", "optimize_gradient", "STOP_ROUNDS_FINISHED"]

STOP_ROUNDS_FINISHED = "rounds finished"


@dataclass
class GradientConfig(ConfigMixin):
    """Settings of :func:`optimize_gradient`; unknown keys are rejected by :meth:`from_dict`."""

    _config_label = "gradient options"

    n_starts: int = 1000
    steps: int = 50
    lr: float = 0.05
    decode_every: int = 5
    decode_temperature: float = 0.0  # 0: greedy decodes; > 0: sampled decodes (more neighbours of each z)
    prior_weight: float = 0.01
    trust_radius: float = 0.0  # 0: no trust region
    uncertainty_weight: float = 0.0
    rounds: int = 1
    refit: bool = False
    elite_fraction: float = 0.5  # share of starts in rounds > 1 taken from the best molecules so far
    elite_copies: int = 4  # starts per elite molecule (distinct elites = elite starts / elite_copies)
    elite_latent: Literal["decoded", "encoded"] = "decoded"  # restart from the z an elite was decoded from, or its encoding
    constraint_weight: float = 1.0  # surrogate penalty per unit of predicted constraint violation (0: constraints ignored)
    start_noise: float = 0.1  # std of the noise added to copies of a start (seed molecule or elite)
    # Defaults measured on pLogP (ZINC model, 3 seeds) and QED (unchanged): docs/optimize_benchmarks.md, setting C.
    elite_max_similarity: float = 0.5  # skip an elite more Tanimoto-similar than this to elite_per_cluster picked ones (1: off)
    elite_per_cluster: int = 8  # elites allowed above elite_max_similarity of a candidate before it is skipped
    restart_min_yield: float = 0.3  # a round with fewer new oracle calls per decode raises the next round's noise (0: off)
    restart_noise_growth: float = 1.5  # factor on the restart noise per consecutive low-yield round
    restart_max_noise: float = 0.6  # cap on the raised restart noise
    # Lead optimization (molgen.optimize.explore): with start molecules, rounds run until the budget is spent.
    explore: Literal["auto", "on", "off"] = "auto"  # auto: on when start molecules are given; off: the fixed `rounds`
    explore_temperature: float = 1.0  # sampled decodes while exploring
    explore_noise: float = 0.3  # first round's start noise (the trust radius starts at twice its norm, 2 * 0.3 * sqrt(latent_dim))
    explore_max_noise: float = 0.6  # cap on the start noise the schedule raises after rounds of repeats
    explore_growth: float = 1.5  # factor by which noise and trust radius grow or shrink per round
    explore_min_novelty: float = 0.1  # a round with fewer new molecules per decode raises the noise
    explore_patience: int = 5  # stop after this many rounds in a row with no new feasible molecule
    explore_max_rounds: int = 200
    explore_prefix: float = 0.0  # share of decodes that complete a prefix of the lead or of a molecule found near it (0: off)
    explore_mutate: float = 0.5  # most decodes replaced by SELFIES point mutants of the lead or a molecule found near it, used as decodes fall short (0: off)
    n_init: int = 500  # initial design for objectives that need an online predictor
    batch_size: int = 2048
    n_jobs: int = 0  # RDKit worker processes decoding and scoring beside the ascent (0: all CPUs for large runs; 1: none)
    predictor: dict[str, Any] = field(default_factory=lambda: {"epochs": 40})  # PredictorTrainingConfig overrides

    def __post_init__(self) -> None:
        if isinstance(self.n_jobs, bool) or not isinstance(self.n_jobs, int) or self.n_jobs < 0:
            raise ConfigError(f"gradient n_jobs must be 0 (automatic) or a number of worker processes, got {self.n_jobs!r}")
        for name in ("n_starts", "steps", "decode_every", "rounds", "batch_size", "elite_copies", "elite_per_cluster",
                     "explore_patience", "explore_max_rounds"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"gradient {name} must be >= 1")
        if self.lr <= 0:
            raise ConfigError("gradient lr must be > 0")
        if min(self.prior_weight, self.trust_radius, self.start_noise, self.decode_temperature, self.constraint_weight) < 0:
            raise ConfigError("prior_weight, trust_radius, start_noise, decode_temperature and constraint_weight must be >= 0")
        if self.elite_latent not in ("decoded", "encoded"):
            raise ConfigError(f"elite_latent must be 'decoded' or 'encoded', got {self.elite_latent!r}")
        if not 0 <= self.elite_fraction <= 1:
            raise ConfigError("elite_fraction must be in [0, 1]")
        if not 0 <= self.elite_max_similarity <= 1 or not 0 <= self.restart_min_yield <= 1:
            raise ConfigError("elite_max_similarity and restart_min_yield must be in [0, 1]")
        if self.explore not in ("auto", "on", "off"):
            raise ConfigError(f"explore must be 'auto', 'on' or 'off', got {self.explore!r}")
        if min(self.explore_temperature, self.explore_noise, self.explore_max_noise) <= 0 or self.explore_growth < 1:
            raise ConfigError("explore_temperature, explore_noise and explore_max_noise must be > 0 and explore_growth >= 1")
        if not 0 <= self.explore_min_novelty <= 1:
            raise ConfigError("explore_min_novelty must be in [0, 1]")
        if not 0 <= self.explore_prefix <= 1:
            raise ConfigError("explore_prefix must be in [0, 1]")
        if not 0 <= self.explore_mutate <= 1:
            raise ConfigError("explore_mutate must be in [0, 1]")
        if self.restart_noise_growth < 1 or self.restart_max_noise < 0:
            raise ConfigError("restart_noise_growth must be >= 1 and restart_max_noise >= 0")
        PredictorTrainingConfig.from_dict(self.predictor)


@dataclass
class GradientRun:
    """What the optimizer did besides scoring: the decoded path, predictor reports, counts."""

    trajectory: list[tuple[int | None, int, str]]  # (start index, step, SMILES) of every valid decode
    reports: list[dict[str, Any]]
    decoded: int = 0
    rounds: int = 0
    predictor: TrainedPredictor | None = None
    latents: dict[str, np.ndarray] = field(default_factory=dict)  # SMILES -> the first z it was decoded from (elite restarts)
    mutants: dict[str, int] = field(default_factory=lambda: {"proposed": 0, "charged": 0, "infeasible": 0})  # explore_mutate's
    selfies: dict[str, list[str]] = field(default_factory=dict)  # parents of mutants -> their SELFIES tokens (a cache)
    round_log: list[dict[str, Any]] = field(default_factory=list)  # per round: starts, elites, noise, decodes, new calls, best
    stop: str = ""  # the stopping rule that ended the run (molgen.optimize.explore.STOP_*, or "rounds finished")
    stop_detail: str = ""


def penalised_constraints(oracle: Oracle, constraint_weight: float) -> list:
    """The oracle's constraints on built-in properties, which the surrogate penalises (none at weight 0)."""
    return [c for c in oracle.constraints if c.prop in chem.PROPERTIES] if constraint_weight > 0 else []


class _Surrogate:
    """The differentiable stand-in for the objective, plus the data to refit it on."""

    def __init__(
        self, oracle: Oracle, predictor: TrainedPredictor, online: bool, data: tuple[np.ndarray, np.ndarray] | None, constraint_weight: float = 0.0
    ) -> None:
        self.oracle, self.predictor, self.online = oracle, predictor, online
        self.z = [data[0]] if data is not None else []
        self.y = [data[1]] if data is not None else []
        self.constraint_weight = constraint_weight
        self.constraints = penalised_constraints(oracle, constraint_weight)
        # Refit targets: the predictor's, plus the constrained properties (labelled from the oracle's records);
        # not when the refit data already has fixed columns (the initial training molecules).
        extra = [c.prop for c in self.constraints if c.prop not in predictor.model.names] if data is None and not online else []
        self.names = predictor.model.names + list(dict.fromkeys(extra))

    @property
    def model(self):
        return self.predictor.model

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        """Surrogate value per member, ``[members, B]``."""
        outputs = self.model.as_dict(z)
        value = outputs["objective"] if self.online else self.oracle.objective.surrogate(outputs)
        for c in self.constraints:
            if c.prop in outputs:
                excess = outputs[c.prop] - c.value if c.op in ("<=", "<") else c.value - outputs[c.prop]
                value = value - self.constraint_weight * torch.relu(excess)
        return value

    def add(self, z: np.ndarray, smiles: list[str | None]) -> None:
        """Remember (z, label) of decodes the oracle knows about, for active-learning refits."""
        zs, ys = _labelled(self.oracle, z, smiles, self.names, self.online)
        if len(zs):
            self.z.append(zs)
            self.y.append(ys)

    def refit(self, config: PredictorTrainingConfig) -> dict[str, Any]:
        z, y = np.concatenate(self.z), np.concatenate(self.y)
        device = next(self.model.parameters()).device
        self.predictor = fit_predictor(z, y, self.names, config, device=device)
        return {"n": len(z), **_report_dict(self.predictor)}


def _labelled(oracle: Oracle, z: np.ndarray, smiles: list[str | None], names: list[str], online: bool) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``z`` whose decode has a finite label: its oracle score (online) or its properties."""
    rows, labels = [], []
    for i, s in enumerate(smiles):
        rec = oracle.records.get(s) if s else None
        if rec is None or (online and rec.status != "ok"):
            continue
        value = [rec.score] if online else [rec.properties.get(n, np.nan) for n in names]
        if np.isfinite(value).all():
            rows.append(i)
            labels.append(value)
    return z[rows], np.asarray(labels, dtype=np.float32).reshape(len(rows), len(names))


def _report_dict(trained: TrainedPredictor) -> dict[str, Any]:
    return {"r2": trained.report.r2, "spearman": trained.report.spearman, "n_train": trained.report.n_train}


def optimize_gradient(
    vae,
    oracle: Oracle,
    predictor: TrainedPredictor | None = None,
    config: GradientConfig | None = None,
    start_smiles: list[str] | None = None,
    predictor_data: tuple[np.ndarray, np.ndarray] | None = None,
    seed: int = 0,
    show_progress: bool = False,
    design_smiles: list[str] | None = None,
) -> GradientRun:
    """Run gradient-based latent optimization until the rounds end or the oracle's budget is spent.

    Args:
        vae: a :class:`~molgen.vae.MoleculeVAE`.
        oracle: scores decoded molecules (holds objective, constraints, budget, log).
        predictor: a predictor whose outputs cover the objective's properties; None
            for objectives that need an online predictor (fitted here on oracle scores).
        start_smiles: seed molecules (each reached molecule remembers its start,
            for similarity constraints); None starts from prior samples.
        predictor_data: the ``(z, y)`` the predictor was fitted on, kept for refits.
        design_smiles: molecules to start from in place of prior samples, without being leads (e.g. training
            molecules with a required core): rounds of restarts then run until the budget is spent, each
            round's starts half noisy copies of the best molecules found, half noisy copies of these.
    """
    cfg = config or GradientConfig()
    gen = torch.Generator().manual_seed(seed)
    run = GradientRun(trajectory=[], reports=[])
    start_z = _encode_starts(vae, start_smiles) if start_smiles else None
    design_z = encode_design(vae, design_smiles) if design_smiles and start_z is None else None
    if design_z is not None:
        cfg = design_rounds(cfg, oracle.budget)
    surrogate = _make_surrogate(vae, oracle, predictor, cfg, start_z if design_z is None else design_z, gen, run, predictor_data)
    run.predictor = surrogate.predictor
    if cfg.refit and not surrogate.online:
        oracle.track_properties(surrogate.names)  # the refits' labels, read from the oracle's records
    if start_z is not None and cfg.explore != "off" or cfg.explore == "on":
        if start_z is None:
            raise ConfigError("explore='on' needs start molecules (--start); without them use the rounds of restarts")
        with progress_bar(oracle.budget, "lead search", enabled=show_progress, unit="calls") as bar:
            lead_search(vae, oracle, surrogate, cfg, start_z, gen, run, bar)
        run.predictor = surrogate.predictor
        return run
    # Rounds from design molecules run until the budget is spent: their bar counts z-steps of a budget's worth.
    total = cfg.rounds * cfg.n_starts * cfg.steps if design_z is None else None
    restarts, stalled = Restarts(cfg), 0
    with progress_bar(total, "gradient", enabled=show_progress, unit="z-steps") as bar, _scorer(vae, oracle, cfg) as scorer:
        for r in range(cfg.rounds):
            if oracle.exhausted:
                break
            calls0, decoded0 = oracle.calls, run.decoded
            z0, origins = round_starts(vae, oracle, cfg, start_z, r, gen, run.latents, restarts, design_z)
            for b in range(0, len(z0), cfg.batch_size):
                if oracle.exhausted or scorer.stopped:
                    break
                _ascend(vae, scorer, surrogate, cfg, z0[b : b + cfg.batch_size], origins[b : b + cfg.batch_size], r * cfg.steps, run, bar, gen)
            scorer.flush()  # the round's last batch is scored before the round is judged
            run.rounds = r + 1
            run.round_log.append(restarts.end_round(r, oracle.calls - calls0, run.decoded - decoded0, oracle))
            stalled = stalled + 1 if oracle.calls == calls0 else 0
            if design_z is not None and stalled >= cfg.explore_patience:
                run.stop, run.stop_detail = STOP_STALLED, f"{stalled} rounds in a row found no new feasible molecule"
                return run
            if cfg.refit and r + 1 < cfg.rounds and not oracle.exhausted:
                run.reports.append({"round": r + 1, **surrogate.refit(PredictorTrainingConfig.from_dict({**cfg.predictor, "seed": seed + r + 1}))})
                run.predictor = surrogate.predictor
    run.stop = STOP_BUDGET if oracle.exhausted else STOP_ROUNDS_FINISHED
    if run.stop == STOP_ROUNDS_FINISHED:
        run.stop_detail = f"all {cfg.rounds} round(s) of {cfg.n_starts} starts x {cfg.steps} steps ran"
    return run


def _scorer(vae, oracle: Oracle, cfg: GradientConfig) -> DecodeScorer:
    """Decoding and scoring for the rounds: the chemistry in the RDKit worker pool when the run decodes
    enough molecules to pay for starting it (the threshold of ``MoleculeVAE.sample_chunks``)."""
    if cfg.n_jobs:
        return DecodeScorer(vae, oracle, cfg.n_jobs)
    decodes = cfg.rounds * cfg.n_starts * (cfg.steps // cfg.decode_every + 2)
    return DecodeScorer(vae, oracle, chem.resolve_n_jobs(None) if decodes >= 2 * chem.DEFAULT_THRESHOLD else 0)






def _encode_starts(vae, smiles: list[str]) -> torch.Tensor:
    z, kept = vae.encode(smiles)
    if len(kept) != len(smiles):
        missing = [smiles[i] for i in range(len(smiles)) if i not in set(kept)]
        raise ConfigError(f"start molecule {missing[0]!r} cannot be written with this model's vocabulary or length limit; pick another")
    return torch.from_numpy(z)


def _make_surrogate(vae, oracle, predictor, cfg, start_z, gen, run, data) -> _Surrogate:
    objective = oracle.objective
    if objective.differentiable:
        if predictor is None:
            raise ConfigError(f"objective {objective.spec!r} needs a property predictor for {objective.property_names}")
        missing = [p for p in objective.property_names if p not in predictor.model.names]
        if missing:
            raise ConfigError(
                f"the predictor predicts {predictor.model.names} but the objective needs {missing}; "
                f"train one with molgen predictor train --properties {','.join(objective.property_names)}"
            )
        return _Surrogate(oracle, predictor, online=False, data=data, constraint_weight=cfg.constraint_weight)
    # Objective not made of built-in properties: score an initial design, fit on the scores.
    z = initial_design(vae, cfg.n_init, start_z, cfg.start_noise, gen)
    smiles = vae.decode(z)
    oracle(smiles, step=0, origins=origins_for(len(z), start_z))
    run.decoded += len(z)
    zs, ys = _labelled(oracle, z.numpy(), smiles, ["objective"], online=True)
    if len(zs) < 10:
        raise ConfigError(
            f"only {len(zs)} of {cfg.n_init} initial molecules got a score; raise n_init or check the objective (see the oracle log)"
        )
    fitted = fit_predictor(zs, ys, ["objective"], PredictorTrainingConfig.from_dict(cfg.predictor), device=vae.device)
    run.reports.append({"round": 0, "n": len(zs), **_report_dict(fitted)})
    return _Surrogate(oracle, fitted, online=True, data=(zs, ys))








def _ascend(
    vae, scorer: DecodeScorer, surrogate: _Surrogate, cfg: GradientConfig, z0: torch.Tensor, origins, step0: int, run: GradientRun, bar, gen
) -> None:
    device = vae.device
    oracle = scorer.oracle
    surrogate.model.to(device).eval()
    z_start = z0.to(device)
    z = z_start.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=cfg.lr)

    def decode(step: int, check: bool = True) -> None:
        _decode_and_score(scorer, surrogate, z, origins, step, run, cfg, gen, check)

    decode(step0, check=False)  # as before: the budget is checked after the ascent's later decodes only
    if scorer.stopped:
        return
    for t in range(1, cfg.steps + 1):
        ascent_step(surrogate, z, opt, cfg)
        if cfg.trust_radius > 0:
            with torch.no_grad():
                delta = z - z_start
                norm = delta.norm(dim=1, keepdim=True).clamp(min=1e-12)
                z.copy_(z_start + delta * (cfg.trust_radius / norm).clamp(max=1.0))
        bar.advance(len(z))
        if t % cfg.decode_every == 0 or t == cfg.steps:
            decode(step0 + t)
            if oracle.exhausted or scorer.stopped:
                bar.advance(len(z) * (cfg.steps - t))
                return


def _decode_and_score(
    scorer: DecodeScorer, surrogate: _Surrogate, z: torch.Tensor, origins, step: int, run: GradientRun, cfg: GradientConfig, gen, check: bool
) -> None:
    """Decode ``z`` now; the oracle scores it (and :func:`_record` books it) when the scorer's next batch is in."""
    z_np = z.detach().cpu().numpy().copy()  # a copy: Adam updates z in place before the batch is booked
    if cfg.decode_temperature > 0:
        # A fresh seed per decode call, drawn from the run's generator: same seed, same molecules.
        seed = int(torch.randint(2**31 - 1, (1,), generator=gen))
        options = DecodeOptions(strategy="sample", temperature=cfg.decode_temperature)
    else:
        seed, options = 0, DecodeOptions(strategy="greedy")
    scorer.submit(z_np, options, seed, step, origins, partial(_record, surrogate, z_np, origins, step, run, cfg), check)


def _record(surrogate: _Surrogate, z_np: np.ndarray, origins, step: int, run: GradientRun, cfg: GradientConfig, smiles: list[str | None]) -> None:
    """Book a scored batch: trajectory, the latents of new molecules (elite restarts), refit data."""
    run.decoded += len(smiles)
    run.trajectory.extend((o, step, s) for o, s in zip(origins, smiles) if s)
    if cfg.rounds > 1 and cfg.elite_fraction > 0:
        for i, s in enumerate(smiles):
            if s and s not in run.latents:
                run.latents[s] = z_np[i].copy()
    if cfg.refit:
        surrogate.add(z_np, smiles)
