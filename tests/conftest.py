"""Shared fixtures: a tiny molecular VAE trained once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from molgen.datasets import default_training_smiles

TINY_ARCH = dict(embed_dim=16, encoder_hidden=32, decoder_hidden=64, decoder_layers=1, latent_dim=8)


@pytest.fixture(scope="session", autouse=True)
def _single_thread():
    # Tiny recurrent models gain nothing from threads; on a busy CI machine
    # OpenMP spinning makes them many times slower.
    torch.set_num_threads(1)
    # The same for NumPy/SciPy's BLAS (FCD's 512x512 eigendecompositions): two
    # OpenBLAS threads fighting for a busy core made them 50x slower.
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.fixture(autouse=True)
def _no_automatic_downloads(monkeypatch):
    # Tests never reach the network: a missing MOSES file fails (or a test fakes the download).
    monkeypatch.setenv("MOLGEN_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_smiles() -> list[str]:
    return default_training_smiles(limit=400)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_smiles):
    """A run folder with a tiny SELFIES VAE trained for two epochs on 400 MOSES molecules."""
    from molgen.vae.training import VAETrainingConfig, train_vae

    out = tmp_path_factory.mktemp("tiny_run")
    config = VAETrainingConfig(
        representation="selfies",
        model=TINY_ARCH,
        train=dict(epochs=2, batch_size=32, lr=3e-3, seed=0, checkpoint_every=5),
        kl=dict(kind="linear", beta=0.5, warmup_steps=10),
        val_fraction=0.1,
    )
    train_vae(tiny_smiles, out, config, device="cpu", show_progress=False)
    return out


def build_untrained_tiny_vae(folder):
    """An untrained tiny SELFIES VAE (decodes are valid and varied), its encoder scaled to spread molecules out."""
    from molgen.models.seq_vae import SeqVAE, SeqVAEConfig
    from molgen.tokenizers import Vocabulary, get_tokenizer
    from molgen.vae import MoleculeVAE

    tokenizer = get_tokenizer("selfies")
    vocab = Vocabulary.build([tokenizer.tokenize(s) for s in default_training_smiles(limit=300)])
    torch.manual_seed(0)
    cfg = SeqVAEConfig(vocab_size=len(vocab), representation="selfies", embed_dim=16, encoder_hidden=16, decoder_hidden=32,
                       decoder_layers=1, latent_dim=8, max_length=40)  # fmt: skip
    vae = MoleculeVAE(SeqVAE(cfg), vocab, device="cpu")
    with torch.no_grad():
        vae.model.to_mu.weight.mul_(30.0)
    path = vae.save(Path(folder) / "tiny.safetensors")
    return MoleculeVAE.load(path, device="cpu")


@pytest.fixture(scope="session")
def untrained_tiny_vae(tmp_path_factory):
    return build_untrained_tiny_vae(tmp_path_factory.mktemp("untrained"))
