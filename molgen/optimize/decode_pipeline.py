"""Decode latent batches and score them, the chemistry of one batch overlapping the model's decoding of the next.

Gradient optimization decodes every start at every decode step, and most of
the cost of a decode is not the model: turning the model's string into a
molecule (SELFIES -> SMILES, RDKit canonical SMILES) and the oracle's
properties of each new molecule (QED alone is about three times the
model's decode). :class:`DecodeScorer` splits the work:

* the model's tokens are decoded here (torch), exactly as
  :meth:`~molgen.vae.MoleculeVAE.decode` decodes them;
* a token string already decoded in this run is looked up (greedy ascents
  decode the same string at many steps: half of the decodes of 10,000 starts
  x 10 steps), and only new strings go on;
* those go to the RDKit worker pool (:func:`molgen.chem.process_pool`, the
  pool :meth:`~molgen.vae.MoleculeVAE.sample_chunks` overlaps sampling with),
  which returns each string's decoded SMILES, the oracle's canonical form of
  it and the properties the oracle needs (:attr:`Oracle.property_names`),
  while this process ascends and decodes the next batch;
* the oracle scores the batch when the next one has been submitted, in
  submission order, with that work handed in.

The oracle therefore sees the same molecules in the same order as when each
batch is decoded and scored at once, and the optimizer stops where it did: a
batch submitted after the one that spent the budget is dropped unscored
(:attr:`DecodeScorer.stopped`). A model without token strings (any object with
``decode``) is decoded by its ``decode`` and scored the same way, one batch
later.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch

from molgen import chem
from molgen.generate.decoding import DecodeOptions, decode_tokens
from molgen.optimize.oracle import Oracle
from molgen.utils.threads import threads_beside
from molgen.vae import strings_to_smiles

__all__ = ["DecodeScorer", "describe_texts"]

#: What the workers return per token string: its decoded SMILES (what ``MoleculeVAE.decode`` returns),
#: the oracle's canonical form of that, and the oracle's properties of the canonical form.
Described = tuple[str | None, str | None, list[float] | None]

_INVALID: Described = (None, None, None)


def describe_texts(texts: list[str], representation: str, names: Sequence[str]) -> list[Described]:
    """Worker side: model strings -> (decoded SMILES, its canonical SMILES, its properties ``names``)."""
    decoded = strings_to_smiles(texts, representation, n_jobs=1)  # serial: this already runs in a worker
    out: list[Described] = []
    for smiles in decoded:
        canonical, values = chem.canonical_with_properties(smiles, names) if smiles else (None, None)
        out.append((smiles, canonical, values))
    return out


def _invalid(text: str, reason: str) -> Described:
    """A string whose worker died or timed out decodes to nothing, as in ``MoleculeVAE.decode``."""
    return _INVALID


@dataclass
class _Job:
    """One submitted batch: its rows' token strings (or decoded SMILES), the new strings' pending results."""

    step: int
    origins: list
    done: Callable[[list[str | None]], None]
    check: bool  # stop after this batch if it spends the budget
    texts: list[str] | None = None
    smiles: list[str | None] | None = None
    parts: list[tuple[list[str], Any]] | None = None  # (new strings, future or results) per chunk


class DecodeScorer:
    """Decode-and-score with the chemistry of batch k in worker processes while batch k+1 decodes.

    Args:
        vae: a :class:`~molgen.vae.MoleculeVAE`, or any object with ``decode(z, options, seed=)``.
        oracle: scores the decoded molecules.
        workers: RDKit worker processes (0 or 1: the chemistry runs in this process, still deduplicated).
    """

    def __init__(self, vae, oracle: Oracle, workers: int = 0) -> None:
        self.vae, self.oracle = vae, oracle
        self._tokens = hasattr(vae, "ids_to_strings") and hasattr(vae, "model") and hasattr(vae, "representation")
        self._names = tuple(oracle.property_names)
        self._memo: dict[str, Described | None] = {}  # token string -> its description (None: in flight)
        self._pending: _Job | None = None
        self.stopped = False
        self._workers = workers if self._tokens and workers > 1 else 0
        self._pool = chem.process_pool(self._workers) if self._workers else None
        self._threads = contextlib.ExitStack()
        self._threads.enter_context(threads_beside(self._workers))

    def __enter__(self) -> DecodeScorer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers (a pending batch is dropped: :meth:`flush` first to score it)."""
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
        self._threads.close()

    def submit(
        self, z: np.ndarray, options: DecodeOptions, seed: int, step: int, origins: list, done: Callable[[list[str | None]], None],
        check: bool = True,
    ) -> None:  # fmt: skip
        """Decode ``z`` now; score the previous batch; this one is scored at the next submit or :meth:`flush`.

        ``done(smiles)`` runs after the oracle has scored the batch (its decoded SMILES, row by row).
        ``check``: if the oracle's budget is spent after this batch, the next batch is dropped and
        :attr:`stopped` set (the first decode of an ascent is not checked, as before).
        """
        if self.stopped:
            return
        job = _Job(step, list(origins), done, check)
        if self._tokens:
            job.texts = self._model_texts(z, options, seed)
            job.parts = self._describe_new(job.texts)
        else:
            job.smiles = self.vae.decode(z, options, seed=seed)
        previous, self._pending = self._pending, job
        if previous is not None:
            self._finish(previous)
            if previous.check and self.oracle.exhausted:
                self._drop(job)

    def flush(self) -> None:
        """Score the pending batch."""
        job, self._pending = self._pending, None
        if job is not None:
            self._finish(job)

    # -- the model's part (this process) ---------------------------------------
    def _model_texts(self, z: np.ndarray, options: DecodeOptions, seed: int, batch_size: int = 1024) -> list[str]:
        """The raw strings ``MoleculeVAE.decode(z, options, seed=seed)`` would turn into SMILES (same batches, same generator)."""
        vae = self.vae
        with torch.inference_mode():
            h = vae.model.context(torch.as_tensor(np.asarray(z, dtype=np.float32)), vae.condition_tensor(None, len(z), seed))
        gen = torch.Generator().manual_seed(seed)
        texts: list[str] = []
        for start in range(0, len(z), batch_size):
            ids = decode_tokens(vae.model, h[start : start + batch_size].to(vae.device), options, gen)
            texts.extend(vae.ids_to_strings(ids))
        return texts

    # -- the chemistry (workers) -------------------------------------------------
    def _describe_new(self, texts: list[str]) -> list[tuple[list[str], Any]]:
        """Send the strings not seen in this run to the workers (or describe them here)."""
        new = list(dict.fromkeys(t for t in texts if t not in self._memo))
        for t in new:
            self._memo[t] = None
        if not new:
            return []
        func = partial(describe_texts, representation=self.vae.representation, names=self._names)
        if self._pool is None:
            return [(new, func(new))]
        chunks = chem.split(new, 4 * self._workers)
        try:
            return [(chunk, self._pool.submit(func, chunk)) for chunk in chunks]
        except BrokenProcessPool:  # a worker died in an earlier batch: the chunks are redone at collection
            return [(chunk, None) for chunk in chunks]

    def _collect(self, job: _Job) -> None:
        func = partial(describe_texts, representation=self.vae.representation, names=self._names)
        for chunk, result in job.parts or []:
            if result is not None and not isinstance(result, list):
                try:
                    result = result.result()
                except BrokenProcessPool:
                    result = None
            if result is None:  # the pool broke (a molecule crashed RDKit): redo the chunk isolated, molecule by molecule
                self._restart_pool()
                result = chem.pmap_lists(func, chunk, n_jobs=max(self._workers, 1), threshold=0, on_failure=_invalid)
            self._memo.update(zip(chunk, result))

    def _restart_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = chem.process_pool(self._workers)

    def _finish(self, job: _Job) -> None:
        if job.texts is None:
            self.oracle(job.smiles, step=job.step, origins=job.origins)
            job.done(job.smiles)
            return
        self._collect(job)
        described = [self._memo[t] or _INVALID for t in job.texts]
        smiles = [d[0] for d in described]
        canonical = {d[0]: d[1] for d in described if d[0] is not None}
        # Properties only when the oracle still wants what the workers computed.
        same = tuple(self.oracle.property_names) == self._names
        properties = {d[1]: d[2] for d in described if d[1] is not None} if same else None
        self.oracle(smiles, step=job.step, origins=job.origins, canonical=canonical, properties=properties)
        job.done(smiles)

    def _drop(self, job: _Job) -> None:
        """Forget a batch that will never be scored (the budget was spent before it)."""
        self._pending = None
        self.stopped = True
        for _, result in job.parts or []:
            if result is not None and not isinstance(result, list):
                result.cancel()
