"""Train the pretrained default model shipped as data/default_model.safetensors.

Reproduce (CPU, about the stated minutes; set --threads 1 on a busy machine):

    molgen data moses                      # caches the MOSES sets from the molsets wheel
    python scripts/train_default_model.py --minutes 80 --out runs/default

The shipped file began as six runs, each continuing the previous one, then
a fitted latent prior and a tuned sampling temperature (see below):

    python scripts/train_default_model.py --minutes 80 --out runs/default
    python scripts/train_default_model.py --init-from runs/default/model.safetensors --kl-warmup 0 \
        --minutes 24 --out runs/default_cont
    python scripts/train_default_model.py --init-from runs/default_cont/model.safetensors --kl-warmup 0 \
        --lr 5e-4 --seed 1 --cpu-minutes 35 --out runs/default_cont2
    python scripts/train_default_model.py --init-from runs/default_cont2/model.safetensors --kl-warmup 0 \
        --lr 5e-4 --lr-schedule cosine --seed 2 --cpu-minutes 30 --out runs/default_cont3
    python scripts/train_default_model.py --init-from runs/default_cont3/model.safetensors --kl-warmup 0 \
        --lr 5e-4 --lr-schedule cosine --seed 3 --cpu-minutes 55 --threads 1 --out runs/default_cont4
    python scripts/train_default_model.py --init-from runs/default_cont4/model.safetensors --kl-warmup 0 \
        --lr 3e-4 --lr-schedule cosine --seed 4 --cpu-minutes 28 --threads 1 --out runs/default_cont5
    molgen fit-prior --model runs/default_cont5 --components 16 -o runs/prior6/model.safetensors
    molgen tune-sampling --model runs/prior6/model.safetensors --temperatures 0.1,0.2,0.3,0.5,1.0 \
        -n 5000 -o runs/prior6/tuned.safetensors
    cp runs/prior6/tuned.safetensors data/default_model.safetensors

Runs 7, 8 (on a GPU: ``--batch-size 512 --device cuda``) and 10 continued it the
same way; their commands and scores are in docs/changelog.md ("The default model, run by run").
The latest, run 10:

    python scripts/train_default_model.py --init-from data/default_model.safetensors --kl-warmup 0 \
        --lr 4e-4 --lr-schedule cosine --seed 8 --minutes 100 --n-molecules 2000000 --threads 1 --out runs/cpu10
    molgen fit-prior --model runs/cpu10 --components 16 -o runs/prior10/model.safetensors
    molgen tune-sampling --model runs/prior10/model.safetensors --temperatures 0.2,0.3 -n 5000 \
        -o runs/prior10/tuned.safetensors

(``--install`` copies a run's bare network; the shipped file is the tuned one.)

The model is a SELFIES GRU VAE trained on a random subset of the MOSES
training set (seeded), for a wall-clock budget rather than a number of epochs,
because that is what bounds training on a CPU. ``--init-from`` continues from
an earlier default model (same architecture) so later sessions can keep
improving it.
"""

from __future__ import annotations

import argparse
import gzip
import random
import shutil
from pathlib import Path

import torch

from molgen.datasets import moses_split, read_molecules
from molgen.vae.training import VAETrainingConfig, train_vae

DEFAULT_ARCH = dict(embed_dim=64, encoder_hidden=128, decoder_hidden=256, decoder_layers=2, latent_dim=128)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/default"))
    parser.add_argument("--minutes", type=float, default=80.0, help="wall-clock budget")
    parser.add_argument("--cpu-minutes", type=float, default=0.0, help="CPU-time budget instead (fair on a shared machine)")
    parser.add_argument("--n-molecules", type=int, default=700_000, help="random MOSES-train subset size")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128, help="molecules per step (a GPU wants more)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--compile", action="store_true", help="torch.compile the training forward pass")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init-from", type=Path, default=None)
    parser.add_argument("--kl-warmup", type=int, default=2000, help="KL ramp steps (use 0 when continuing with --init-from)")
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate (lower it when continuing with --init-from)")
    parser.add_argument("--lr-schedule", default="constant", choices=["constant", "cosine"], help="cosine: anneal over the time budget")
    parser.add_argument("--install", action="store_true", help="copy the result to data/default_model.safetensors")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with gzip.open(moses_split("train"), "rt") as fh:
        lines = [line.strip() for line in fh][1:]  # header 'SMILES'
    random.Random(args.seed).shuffle(lines)
    subset = args.out.parent / f"{args.out.name}_train_subset.smi"
    subset.parent.mkdir(parents=True, exist_ok=True)
    subset.write_text("\n".join(lines[: args.n_molecules]) + "\n")
    smiles = read_molecules(subset).smiles

    config = VAETrainingConfig(
        representation="selfies",
        model=DEFAULT_ARCH,
        train=dict(epochs=50, batch_size=args.batch_size, lr=args.lr, lr_schedule=args.lr_schedule, seed=args.seed, max_minutes=0.0 if args.cpu_minutes else args.minutes, max_cpu_minutes=args.cpu_minutes, checkpoint_every=500, patience=0, compile=args.compile),
        kl=dict(kind="linear" if args.kl_warmup else "constant", beta=0.5, warmup_steps=max(1, args.kl_warmup)),
        word_dropout=0.1,
        val_fraction=0.01,
        max_length=100,
    )
    summary = {"data": f"MOSES train, random {len(smiles):,} (seed {args.seed})", "minutes_budget": args.minutes, "cpu_minutes_budget": args.cpu_minutes}
    vae, result = train_vae(
        smiles, args.out, config, device=args.device, train_set_name="moses-train", data_summary=summary, init_from=args.init_from
    )
    print(result)
    if args.install:
        target = Path(__file__).resolve().parent.parent / "data" / "default_model.safetensors"
        shutil.copyfile(args.out / "model.safetensors", target)
        print(f"installed {target}")


if __name__ == "__main__":
    main()
