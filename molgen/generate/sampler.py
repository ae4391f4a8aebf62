"""The sampler: draw latent codes, decode them through the chosen decoder, check the molecules with RDKit.

:func:`stream` is the one sampling loop of molgen; it yields the molecules of
a :class:`~molgen.generate.request.SampleRequest` in chunks, in bounded memory
for any ``n``, while RDKit checks one chunk in worker processes as the model
decodes the next. :func:`sample` collects them in a list and
:func:`molgen.generate.run.sample_to_file` writes them to disk.

Which decoder runs is chosen from the request (:func:`sampling_decoder`): the
model itself, its classifier-free-guided view (:mod:`molgen.generate.guidance`)
or either one steered by a prefix property predictor
(:mod:`molgen.generate.steering`). Wrappers share the model's decoding
protocol, so the loop does not know which one it drives.

Example::

    >>> from molgen.vae import MoleculeVAE
    >>> from molgen.generate import SampleRequest, sample
    >>> smiles = sample(MoleculeVAE.load(), SampleRequest(n=100, seed=0))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

from molgen import chem
from molgen.generate.decoding import DecodeOptions, decode_tokens
from molgen.generate.guidance import guided_decoder
from molgen.generate.prior import latent_sampler
from molgen.generate.request import SampleRequest, Steering
from molgen.generate.steering import PropertySteering, check_vocabulary, load_prefix_predictor
from molgen.generate.strings import decode_texts
from molgen.utils.threads import threads_beside

__all__ = ["stream", "sample", "sampling_decoder", "SamplingDecoder"]


@dataclass
class SamplingDecoder:
    """The decoder a request runs, with what it reads beside the latent codes.

    ``cond``: normalised conditions ``[n, k]`` for a conditional model (None:
    unconditional); ``targets``: normalised steering targets ``[n, k']``, appended
    to every context; ``candidates``: decodes per sample, of which the steering
    predictor keeps one.
    """

    decoder: object
    cond: torch.Tensor | None = None
    targets: torch.Tensor | None = None
    candidates: int = 1

    def contexts(self, vae, z: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Decoder inputs for latent codes ``z`` that belong to sample rows ``rows``."""
        h = vae.model.context(z, None if self.cond is None else self.cond[rows])
        return h if self.targets is None else torch.cat([h, self.targets[rows]], dim=1)

    def decode(self, vae, h: torch.Tensor, rows: torch.Tensor, options: DecodeOptions, generator) -> torch.Tensor:
        """Token ids of one sample per row group (the best of ``candidates`` when steering chooses)."""
        ids = decode_tokens(self.decoder, h.to(vae.device), options, generator)
        if self.candidates > 1:
            ids = ids[self.decoder.pick(ids, self.targets[rows], self.candidates)]
        return ids


def sampling_decoder(vae, request: SampleRequest) -> SamplingDecoder:
    """The decoder for ``request`` on ``vae``: plain or guided, steered when the request names a predictor."""
    decoder = guided_decoder(vae.model, request.guidance)
    targets = None
    if request.steering.active:
        decoder, targets = _steered(vae, decoder, request.steering, request.condition, request.n)
    # A steered unconditional model reads the request through the predictor only.
    cond = None if targets is not None and vae.conditions is None else vae.condition_tensor(request.condition, request.n, request.seed + 2)
    return SamplingDecoder(decoder, cond, targets, request.steering.candidates)


def _steered(vae, decoder, steering: Steering, condition, n: int):
    """``decoder`` wrapped in property steering, and the normalised targets ``[n, k]`` of ``condition``."""
    predictor = steering.predictor
    predictor = load_prefix_predictor(predictor) if isinstance(predictor, (str, Path)) else predictor
    check_vocabulary(predictor, vae)
    return PropertySteering(decoder, predictor.to(vae.device), steering.strength), predictor.targets(condition, n)


def sample(vae, request: SampleRequest) -> list[str | None]:
    """The request's molecules as canonical SMILES (``None`` where RDKit rejects a decode).

    With ``request.unique`` only the first occurrence of each valid molecule is kept.
    The same seed and batch size give the same molecules on the same device and precision.
    """
    out: list[str | None] = []
    for chunk in stream(vae, request):
        out.extend(chunk)
    if request.unique:
        out = list(dict.fromkeys(s for s in out if s is not None))
    return out


def _chunk_size(n: int, batch_size: int, chunk_size: int) -> int:
    # About eight chunks per run (at most chunk_size, whole batches, so the molecules do
    # not depend on it): the workers idle while the first chunk decodes and the decoder
    # idles while they check the last one, so one big chunk would leave no overlap.
    size = min(chunk_size, -(-n // 8))
    return max(batch_size, size - size % batch_size)


def stream(vae, request: SampleRequest, describe: bool = False) -> Iterator[list]:
    """Yield the request's samples in chunks (a shard's share when ``request.shard`` is set).

    Items are canonical SMILES or ``None``; with ``describe`` they are
    ``(smiles, values)`` with the columns of
    :data:`molgen.generate.table.PROPERTY_COLUMNS`, computed in the RDKit workers.
    Settings are checked against the model here, before the first chunk is drawn.
    """
    request = request.local()
    texts = _texts(vae, request)
    workers = chem.resolve_n_jobs(request.n_jobs) if request.n >= 2 * chem.DEFAULT_THRESHOLD else 1
    if describe:
        from molgen.generate.table import describe_texts

        check = partial(describe_texts, representation=vae.representation)
    else:
        check = partial(decode_texts, representation=vae.representation)
    return _pooled(texts, check, workers) if workers > 1 else _alone(texts, check)


def _alone(texts: Iterator[list[str]], check) -> Iterator[list]:
    with threads_beside(0):
        for chunk in texts:
            yield check(chunk)


def _pooled(texts: Iterator[list[str]], check, workers: int) -> Iterator[list]:
    """RDKit checks of each chunk in a process pool, overlapping with the decoding of the next."""
    pool = chem.process_pool(workers)
    with threads_beside(workers), contextlib.ExitStack() as stop:
        stop.callback(pool.shutdown, cancel_futures=True)
        pending = None
        for chunk in texts:
            job = pool.map(check, chem.split(chunk, 4 * workers))
            if pending is not None:
                yield [smi for part in pending for smi in part]
            pending = job
        if pending is not None:
            yield [smi for part in pending for smi in part]


def _texts(vae, request: SampleRequest) -> Iterator[list[str]]:
    """Raw model strings, one list per chunk; the decoder and prior are set up (and checked) now."""
    options = request.decode_options(vae.default_temperature)
    draw = latent_sampler(vae, request.prior)
    decoder = sampling_decoder(vae, request)
    return _decode_chunks(vae, request, options, draw, decoder)


def _decode_chunks(vae, request: SampleRequest, options: DecodeOptions, draw, decoder: SamplingDecoder) -> Iterator[list[str]]:
    # The generators are seeded once per run, so how the run is cut in chunks never changes a draw.
    n, k = request.n, request.steering.candidates
    chunk_size = _chunk_size(n, request.batch_size, request.chunk_size)
    z_gen = torch.Generator().manual_seed(request.seed)
    token_gen = torch.Generator().manual_seed(request.seed + 1)
    # K candidates per sample: a decoding batch holds batch_size rows whatever K (memory stays bounded).
    step = max(1, request.batch_size // k)
    for start in range(0, n, chunk_size):
        texts: list[str] = []
        end = min(n, start + chunk_size)
        for b in range(start, end, step):
            m = min(step, end - b)
            z = draw(m * k, z_gen)
            rows = torch.arange(b, b + m).repeat_interleave(k)  # k candidates per sample, side by side
            ids = decoder.decode(vae, decoder.contexts(vae, z, rows), rows, options, token_gen)
            texts.extend(vae.ids_to_strings(ids))
        yield texts
