"""``molgen sample`` as one function: stream a request's molecules to a file and say what was done.

:func:`sample_to_file` runs the sampler (:func:`molgen.generate.sampler.stream`)
into the streaming writer (:mod:`molgen.generate.writer`: property columns,
``novel``, de-duplication, Ctrl-C keeps what was drawn), writes a shard's
record beside its part (:mod:`molgen.utils.shards`), and returns a
:class:`SampleReport` whose :meth:`~SampleReport.summary` is the command's
last line. A request with a :class:`~molgen.generate.request.Design` (a core
to keep, leads to sample near) goes to :mod:`molgen.generate.design` instead.

Example::

    >>> from molgen.vae import MoleculeVAE
    >>> from molgen.generate import SampleRequest, sample_to_file
    >>> report = sample_to_file(MoleculeVAE.load(), SampleRequest(n=1000, unique=True), "samples.csv")  # doctest: +SKIP
    >>> print(report.summary())                                                                      # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from molgen.errors import ConfigError
from molgen.generate.request import SampleRequest
from molgen.generate.sampler import stream
from molgen.generate.table import PROPERTY_COLUMNS, grid_legend
from molgen.generate.writer import SampleWriteResult, novelty_set, write_samples
from molgen.utils.progress import progress_bar
from molgen.utils.shards import file_digest, sidecar_path, write_sidecar

__all__ = ["SampleReport", "sample_to_file"]


@dataclass
class SampleReport:
    """What :func:`sample_to_file` drew and wrote (``written`` is None for a design request)."""

    output: Path
    request: SampleRequest  # the part this process drew (a shard's share and seed)
    seconds: float
    written: SampleWriteResult | None = None
    columns: tuple[str, ...] = ()
    shard: str | None = None
    design_summary: str = ""

    @property
    def interrupted(self) -> bool:
        return self.written is not None and self.written.interrupted

    def summary(self) -> str:
        """One line: how many were sampled, how fast, validity, uniqueness, and what was written where."""
        if self.written is None:
            return self.design_summary
        done, n, seconds = self.written, self.request.n, self.seconds
        return (
            (f"shard {self.shard} (seed {self.request.seed}): " if self.shard is not None else "")
            + f"{n:,} sampled in {seconds:.1f} s ({done.valid / max(seconds, 1e-9):,.0f} valid/s): "
            f"valid {done.valid / max(n, 1):.4f}, unique {done.distinct / max(1, done.valid):.4f}; wrote {done.written:,} molecules to {self.output}"
            + (f" with {', '.join(self.columns)}" if self.columns else "")
        )

    def interruption(self) -> str:
        """What an interrupted run kept, in one line."""
        done = self.written
        if done is None or not done.interrupted:
            return ""
        if not done.drawn:
            return " before the first chunk of samples was finished; nothing was written"
        return f"; kept the {done.written:,} molecules of the {done.drawn:,} samples drawn so far in {done.path} (written atomically); {self.output} was not written"


def sample_to_file(
    vae,
    request: SampleRequest,
    output: str | Path,
    grid: str | Path | None = None,
    show_progress: bool = True,
    on_note: Callable[[str], None] | None = None,
) -> SampleReport:
    """Sample ``request`` from ``vae`` into ``output`` (``.smi``/``.txt``: SMILES only; else CSV).

    CSV output gets the property columns with ``request.properties`` and
    ``novel`` when the model's training set is available here. ``grid``: also
    draw the first 30 molecules into this PNG. ``on_note`` receives side remarks
    (what was assumed). An interruption (Ctrl-C) returns a report with
    ``interrupted`` set; the molecules drawn so far are in ``report.written.path``.
    """
    output, say = Path(output), on_note or (lambda message: None)
    if request.n < 1:
        raise ConfigError(f"-n must be at least 1 molecule, not {request.n}")
    if request.design.active:
        return _design_to_file(vae, request, output, show_progress)
    spec, local = request.shard_spec, request.local()
    if spec is not None:
        sidecar_path(output).unlink(missing_ok=True)  # a part without its record is unfinished
    if vae.conditions is not None and request.condition is None:
        say(f"conditional model ({', '.join(vae.conditions.names)}) without --condition: conditions drawn from its training data")
    csv = output.suffix not in (".smi", ".txt")
    properties = request.properties and csv
    train = novelty_set(vae) if properties else None
    if properties and train is None:
        say("the model's training set is not available here: no novel column")
    start = time.perf_counter()
    with progress_bar(local.n, "sampling", show_progress, "mol") as bar:
        chunks = stream(vae, local, describe=properties)
        done = write_samples(chunks, output, unique=request.unique, properties=properties, train=train, progress=bar)
    columns = (*PROPERTY_COLUMNS, *(["novel"] if train is not None else [])) if properties else ()
    report = SampleReport(output, local, time.perf_counter() - start, done, columns, None if spec is None else str(spec))
    if report.interrupted:
        if not done.drawn:
            done.path.unlink(missing_ok=True)
        return report
    if spec is not None:
        job = _shard_job(vae, request, csv, properties)
        write_sidecar(output, spec, job, rows=done.written, header=csv, sampled=local.n, shard_seed=local.seed)
    if grid is not None and done.first:
        from molgen.viz import molecule_grid

        legends = [grid_legend(i, values) for i, (_, values) in enumerate(done.first)]
        molecule_grid([s for s, _ in done.first], grid, legends=legends, required=False)  # the molecules are written; a missing picture only warns
    return report


def _shard_job(vae, request: SampleRequest, csv: bool, properties: bool) -> dict:
    """The settings every part of a sharded job shares; ``molgen merge`` refuses parts whose settings differ."""
    steer = request.steering.predictor
    return dict(
        command="sample", n=request.n, seed=request.seed, model=file_digest(vae.meta["path"]) if "path" in vae.meta else None,
        temperature=vae.default_temperature if request.temperature is None else request.temperature,
        top_k=request.top_k, top_p=request.top_p, prior=request.prior, greedy=request.greedy, unique=request.unique,
        condition=request.condition, batch_size=request.batch_size, csv=csv, precision=request.precision,
        guidance=request.guidance, steer=file_digest(steer) if isinstance(steer, (str, Path)) else None,
        steer_strength=request.steering.strength, steer_candidates=request.steering.candidates, properties=properties,
    )  # fmt: skip


def _design_to_file(vae, request: SampleRequest, output: Path, show_progress: bool) -> SampleReport:
    """Core-keeping or near-lead sampling (``request.design``), written by :mod:`molgen.generate.design`."""
    from molgen.generate.design import write_design_samples

    d = request.design
    start = time.perf_counter()
    line = write_design_samples(
        vae, output, request.n, d.substructure, d.near, d.radius, d.similarity, d.seeds, request.temperature, request.greedy, request.seed, show_progress
    )  # fmt: skip
    return SampleReport(output, request, time.perf_counter() - start, design_summary=line)
