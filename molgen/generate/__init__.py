"""Sampling molecules from a trained model: one request, one sampler, decoder wrappers, priors, design.

Three lines of Python do what ``molgen sample`` does::

    >>> from molgen.generate import SampleRequest, sample_to_file
    >>> from molgen.vae import MoleculeVAE
    >>> sample_to_file(MoleculeVAE.load(), SampleRequest(n=1000, seed=0), "samples.csv").summary()  # doctest: +SKIP

:mod:`~molgen.generate.request` (what to sample), :mod:`~molgen.generate.sampler`
(the one sampling loop: prior draws, the chosen decoder, RDKit checks in worker
processes), :mod:`~molgen.generate.run` (to a file, with shards),
:mod:`~molgen.generate.decoding` (token-by-token batched decoding with early
exit), decoder wrappers (:mod:`~molgen.generate.guidance`,
:mod:`~molgen.generate.steering`), :mod:`~molgen.generate.prior` (fitted latent
priors), :mod:`~molgen.generate.tuning` (the model's sampling temperature),
and design (:mod:`~molgen.generate.substructure`, :mod:`~molgen.generate.near`).
"""

from molgen.generate.request import Design, SampleRequest, Steering
from molgen.generate.run import SampleReport, sample_to_file
from molgen.generate.sampler import sample, stream

__all__ = ["SampleRequest", "Steering", "Design", "sample", "stream", "sample_to_file", "SampleReport"]
