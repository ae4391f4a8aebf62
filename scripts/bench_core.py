"""Throughput of the core path on this machine: training, sampling, and the RDKit floor.

    python scripts/bench_core.py --model data/default_model.safetensors --threads 2

Writes docs/bench_core.json and prints a Markdown table. Measures
* training: molecules/second of optimizer steps at the default architecture,
  on real MOSES molecules (tokenised beforehand; the timing excludes reading);
* sampling: valid molecules/second of ``MoleculeVAE.sample`` end to end
  (prior draw, batched decoding, SELFIES decoding, RDKit validation and
  canonicalisation in worker processes);
* the floor: RDKit parse + canonicalise of the same number of SMILES on the
  same cores, which sampling cannot beat.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from molgen import chem
from molgen.datasets import default_training_smiles
from molgen.models.seq_vae import SeqVAE, SeqVAEConfig
from molgen.vae import MoleculeVAE
from molgen.vae.training import tokenize_smiles


def bench_training(arch: dict, n_steps: int, batch_size: int) -> dict:
    smiles = default_training_smiles(limit=batch_size * (n_steps + 2))
    data, vocab = tokenize_smiles(smiles, "selfies", 100)
    torch.manual_seed(0)
    model = SeqVAE(SeqVAEConfig(vocab_size=len(vocab), max_length=101, **arch))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    order = np.argsort(data.lengths)  # bucketed, as in training
    batches = [order[i : i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]
    rng = np.random.default_rng(0)
    rng.shuffle(batches)
    times = []
    for idx in batches[: n_steps + 1]:
        lengths = data.lengths[idx]
        ids = torch.from_numpy(data.ids[idx, : lengths.max()])
        start = time.perf_counter()
        out = model(ids, torch.from_numpy(lengths), beta=0.5, word_dropout=0.1)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
    seconds = sum(times[1:])  # first step warms up allocators
    return {"molecules_per_s": round(batch_size * (len(times) - 1) / seconds, 1), "steps": len(times) - 1, "batch_size": batch_size, "parameters": model.num_parameters()}


def bench_sampling(model_path: str | None, n: int, batch_size: int) -> dict:
    vae = MoleculeVAE.load(model_path, device="cpu")
    vae.sample(256, seed=123)  # warm-up: pool, allocators
    start = time.perf_counter()
    smiles = vae.sample(n, seed=0, batch_size=batch_size)
    seconds = time.perf_counter() - start
    valid = [s for s in smiles if s]
    return {
        "n": n,
        "seconds": round(seconds, 2),
        "valid_per_s": round(len(valid) / seconds, 1),
        "validity": len(valid) / n,
        "uniqueness": len(set(valid)) / max(1, len(valid)),
        "batch_size": batch_size,
    }, valid


def bench_floor(smiles: list[str]) -> dict:
    start = time.perf_counter()
    chem.canonicalize_many(smiles)
    seconds = time.perf_counter() - start
    return {"n": len(smiles), "seconds": round(seconds, 2), "per_s": round(len(smiles) / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", type=Path, default=Path("docs/bench_core.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    vae = MoleculeVAE.load(args.model, device="cpu")
    arch = {k: vae.config.to_dict()[k] for k in ("embed_dim", "encoder_hidden", "decoder_hidden", "decoder_layers", "latent_dim")}
    sampling, valid = bench_sampling(args.model, args.n, args.batch_size)
    floor = bench_floor(valid)
    training = bench_training(arch, args.train_steps, 128)
    result = {
        "command": "python scripts/bench_core.py " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None and k != "out"),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, {len(__import__('os').sched_getaffinity(0))} cores",
        "torch": torch.__version__,
        "architecture": arch,
        "training": training,
        "sampling": sampling,
        "rdkit_floor": floor,
        "sampling_vs_floor": round(floor["per_s"] / sampling["valid_per_s"], 2),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("| measure | value |\n|---|---|")
    print(f"| training (molecules/s, batch 128, {arch}) | {training['molecules_per_s']:,} |")
    print(f"| sampling {args.n:,} (valid molecules/s incl. RDKit) | {sampling['valid_per_s']:,} |")
    print(f"| RDKit parse+canonicalise floor (molecules/s) | {floor['per_s']:,} |")
    print(f"| sampling cost / floor | {result['sampling_vs_floor']}x |")


if __name__ == "__main__":
    main()
