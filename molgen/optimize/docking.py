"""Docking as an oracle: AutoDock Vina scores of molecules given as SMILES, in worker processes.

A scoring-file component of ``type = "docking"`` (:mod:`molgen.optimize.scoring`)::

    [[component]]
    name = "dock"
    type = "docking"
    receptor = "receptor.pdbqt"       # prepared once, e.g. with meeko's mk_prepare_receptor.py
    center = [18.87, -12.53, 39.64]   # box centre (angstrom), e.g. the centroid of a bound ligand
    size = [20.0, 20.0, 20.0]         # box edges (angstrom)
    transform = { kind = "reverse_sigmoid", low = -10.0, high = -5.0 }

The raw value is Vina's best score (kcal/mol; lower binds better). Per molecule:
the SMILES is neutralised (``protonate``: RDKit's uncharger, then explicit
hydrogens), embedded in 3D by RDKit (ETKDG, then MMFF), turned into a PDBQT
ligand by meeko, and docked by Vina. Molecules are docked in parallel by
``workers`` processes, each computing the receptor's grid maps once. A molecule
that takes longer than ``timeout`` seconds has its worker stopped and replaced.
Every result, failures too, is cached by canonical SMILES (in memory, and in
``cache`` if set, a JSONL file read back on the next run), so no molecule is
docked twice. Poses go to ``poses/`` beside the run's CSV with an
``index.csv``. A molecule that fails (embedding, preparation, docking,
timeout) is logged with the reason by the oracle, and the run goes on.

Needs the optional extra: ``pip install 'molgen[dock]'`` (vina, meeko, gemmi).
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing as mp
import time
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import wait
from pathlib import Path
from typing import Literal

import numpy as np

from molgen import chem
from molgen.errors import ConfigError

__all__ = ["DockingConfig", "DockingOracle", "prepare_ligand", "docking_available"]


@dataclass
class DockingConfig:
    """The keys of a docking component (besides name, type, weight, transform)."""

    receptor: str
    center: list[float]
    size: list[float] = field(default_factory=lambda: [20.0, 20.0, 20.0])
    exhaustiveness: int = 8
    n_poses: int = 1
    scoring: Literal["vina", "vinardo"] = "vina"
    workers: int = 2
    cpu_per_worker: int = 1
    timeout: float = 300.0  # seconds per molecule
    seed: int = 0
    protonate: bool = True
    cache: str | None = None
    write_poses: bool = True

    def __post_init__(self) -> None:
        if len(self.center) != 3 or len(self.size) != 3:
            raise ConfigError("center and size must be 3 numbers each: [x, y, z] in angstrom")
        if not all(math.isfinite(v) for v in self.center) or not all(0 < v <= 126 for v in self.size):
            raise ConfigError("center must be finite and every size in (0, 126] angstrom")
        if self.exhaustiveness < 1 or self.n_poses < 1 or self.workers < 1 or self.cpu_per_worker < 1:
            raise ConfigError("exhaustiveness, n_poses, workers and cpu_per_worker must be >= 1")
        if not self.timeout > 0:
            raise ConfigError("timeout must be a positive number of seconds")


def docking_available() -> bool:
    """True when vina and meeko import (the ``dock`` extra is installed)."""
    try:
        import meeko  # noqa: F401
        import vina  # noqa: F401
    except Exception:  # an ImportError, or meeko failing on a missing dependency of its own
        return False
    return True


def prepare_ligand(smiles: str, protonate: bool = True, seed: int = 0) -> str:
    """A PDBQT ligand string for ``smiles``: neutral form, explicit hydrogens, ETKDG 3D coordinates, meeko typing."""
    from meeko import MoleculePreparation, PDBQTWriterLegacy
    from rdkit import Chem
    from rdkit.Chem import AllChem
    from rdkit.Chem.MolStandardize import rdMolStandardize

    mol = chem.parse_smiles(smiles)
    if protonate:
        mol = rdMolStandardize.Uncharger().uncharge(mol)
    mol = Chem.AddHs(mol)
    params = AllChem.ETKDGv3()
    params.randomSeed = seed
    if AllChem.EmbedMolecule(mol, params) != 0:
        raise RuntimeError("3D embedding failed")
    if AllChem.MMFFHasAllMoleculeParams(mol):
        AllChem.MMFFOptimizeMolecule(mol, maxIters=500)
    setups = MoleculePreparation().prepare(mol)
    text, ok, error = PDBQTWriterLegacy.write_string(setups[0])
    if not ok:
        raise RuntimeError(f"meeko could not write the ligand ({error.strip()})")
    return text


# -- worker processes -------------------------------------------------------------


def _worker(conn, config: dict) -> None:
    """Compute the grid maps once, then dock each SMILES received until None arrives."""
    from vina import Vina

    cfg = DockingConfig(**config)
    v = Vina(sf_name=cfg.scoring, cpu=cfg.cpu_per_worker, seed=cfg.seed, verbosity=0)
    v.set_receptor(cfg.receptor)
    v.compute_vina_maps(center=cfg.center, box_size=cfg.size)
    conn.send(("ready", None, None))
    while True:
        smiles = conn.recv()
        if smiles is None:
            return
        try:
            v.set_ligand_from_string(prepare_ligand(smiles, cfg.protonate, cfg.seed))
            v.dock(exhaustiveness=cfg.exhaustiveness, n_poses=cfg.n_poses)
            conn.send(("ok", float(v.energies(n_poses=1)[0][0]), v.poses(n_poses=cfg.n_poses)))
        except Exception as exc:  # reported per molecule; the worker goes on
            conn.send(("failed", f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}", None))


class _Pool:
    """Worker processes with one pipe each, so that a worker stuck on one molecule can be stopped alone."""

    def __init__(self, config: DockingConfig) -> None:
        self.config = config
        self.ctx = mp.get_context("spawn")  # no fork of a parent that holds torch threads
        self.workers: list = []

    def _start(self):
        parent, child = self.ctx.Pipe()
        proc = self.ctx.Process(target=_worker, args=(child, asdict(self.config)), daemon=True)
        proc.start()
        child.close()
        return [proc, parent, False]  # process, pipe, ready

    def run(self, smiles: list[str]) -> dict[str, tuple[float, str | None, str | None]]:
        """SMILES -> (score, error, poses) for every input."""
        while len(self.workers) < min(self.config.workers, len(smiles)):
            self.workers.append(self._start())
        todo, results, busy = list(smiles), {}, {}  # busy: worker index -> (smiles, start time)
        startup = 60.0 + self.config.timeout  # grid maps take a while on a busy machine
        born = {i: time.monotonic() for i in range(len(self.workers))}
        while todo or busy:
            for i, (proc, conn, ready) in enumerate(self.workers):
                if ready and i not in busy and todo:
                    s = todo.pop(0)
                    conn.send(s)
                    busy[i] = (s, time.monotonic())
            conns = {w[1]: i for i, w in enumerate(self.workers)}
            for conn in wait(list(conns), timeout=1.0):
                i = conns[conn]
                try:
                    kind, value, poses = conn.recv()
                except (EOFError, OSError):
                    self._replace(i, busy, results, "the docking worker died", born)
                    continue
                if kind == "ready":
                    self.workers[i][2] = True
                    continue
                s, _ = busy.pop(i)
                results[s] = (value, None, poses) if kind == "ok" else (math.nan, value, None)
            now = time.monotonic()
            for i, (s, t0) in list(busy.items()):
                if now - t0 > self.config.timeout:
                    self._replace(i, busy, results, f"timeout: docking took longer than {self.config.timeout:g} s", born)
            for i, w in enumerate(self.workers):
                if not w[2] and now - born.get(i, now) > startup:
                    raise ConfigError(f"the docking worker could not compute grid maps for {self.config.receptor} in {startup:g} s; check the receptor and box")
        return results

    def _replace(self, i: int, busy: dict, results: dict, reason: str, born: dict) -> None:
        proc, conn, _ = self.workers[i]
        proc.terminate()
        proc.join(5)
        conn.close()
        if i in busy:
            s, _ = busy.pop(i)
            results[s] = (math.nan, reason, None)
        self.workers[i] = self._start()
        born[i] = time.monotonic()

    def close(self) -> None:
        for proc, conn, _ in self.workers:
            try:
                conn.send(None)
            except (OSError, BrokenPipeError):
                pass
            proc.join(2)
            if proc.is_alive():
                proc.terminate()
        self.workers = []


class DockingOracle:
    """A scoring component: ``(smiles, properties, timeout) -> (scores, errors)`` with Vina scores."""

    def __init__(self, config: DockingConfig, base: Path | str = ".") -> None:
        if not docking_available():
            raise ConfigError("docking needs AutoDock Vina and meeko: pip install 'molgen[dock]' (or pip install vina meeko gemmi)")
        receptor = Path(base) / config.receptor
        if not receptor.is_file():
            raise ConfigError(f"receptor file {receptor} does not exist")
        self.config = DockingConfig(**{**asdict(config), "receptor": str(receptor.resolve())})
        self.cache_path = Path(base) / config.cache if config.cache else None
        self.cache: dict[str, tuple[float, str | None]] = _read_cache(self.cache_path) if self.cache_path else {}
        self.out: Path | None = None
        self.docked = 0
        self.seconds = 0.0
        self._pool: _Pool | None = None

    def set_output_dir(self, out: Path | None) -> None:
        self.out = Path(out) if out is not None else None

    def __call__(self, smiles: list[str], properties=None, timeout=None) -> tuple[np.ndarray, list[str | None]]:
        canon = [chem.canonical_smiles(s) or s for s in smiles]
        new = [s for s in dict.fromkeys(canon) if s not in self.cache]
        if new:
            t0 = time.perf_counter()
            self._pool = self._pool or _Pool(self.config)
            results = self._pool.run(new)
            self.seconds += time.perf_counter() - t0
            self.docked += len(new)
            for s in new:
                score, error, poses = results[s]
                self.cache[s] = (score, error)
                self._remember(s, score, error, poses)
        values = np.array([self.cache[s][0] for s in canon], dtype=float)
        return values, [self.cache[s][1] for s in canon]

    def _remember(self, smiles: str, score: float, error: str | None, poses: str | None) -> None:
        if self.cache_path is not None:
            with self.cache_path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps({"smiles": smiles, "score": None if math.isnan(score) else score, "error": error}) + "\n")
        if poses and self.out is not None and self.config.write_poses:
            folder = self.out / "poses"
            folder.mkdir(parents=True, exist_ok=True)
            name = hashlib.sha1(smiles.encode()).hexdigest()[:16] + ".pdbqt"
            (folder / name).write_text(f"REMARK SMILES {smiles}\nREMARK VINA SCORE {score:.3f}\n" + poses)
            index = folder / "index.csv"
            new_file = not index.exists()
            with index.open("a", encoding="utf-8") as fh:
                fh.write(("smiles,score,file\n" if new_file else "") + f"{smiles},{score:.3f},{name}\n")

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: the daemon workers end with it
            pass


def _read_cache(path: Path) -> dict[str, tuple[float, str | None]]:
    cache: dict[str, tuple[float, str | None]] = {}
    if not path.exists():
        return cache
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
            cache[row["smiles"]] = (math.nan if row["score"] is None else float(row["score"]), row.get("error"))
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by an interrupted run: that molecule is docked again
    return cache
