"""Sampling molecules from a trained model: decoding, priors, guidance, steering, core and near-lead sampling.

:mod:`molgen.generate.decoding` decodes latent vectors token by token in
batches with early exit; the other modules build on it (fitted latent priors,
classifier-free guidance, FUDGE steering, keeping a core, sampling near a lead,
the streaming writer of ``molgen sample``).
"""
