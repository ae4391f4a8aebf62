"""Speed and scale: molgen beside the MOSES VAE baseline on the same machine.

The MOSES code comes from the unpacked ``molsets`` 0.3.1 wheel (never
installed; only its VAE model, trainer and vocabulary classes are used) plus
``tqdm`` and ``fcd_torch`` in a ``pip install --target`` folder:

    pip download --no-deps molsets==0.3.1 -d /tmp/wheels && unzip -q /tmp/wheels/molsets-0.3.1-py3-none-any.whl -d /tmp/wheels/molsets
    pip install --target /tmp/moses-extra --no-deps tqdm fcd_torch==1.0.7

MOSES 0.3.1 predates current RDKit, NumPy, pandas and torch; the patches it
needs are applied at import time here (``scripts/moses_reference.py``), and
``VAE.sample`` gets a bool instead of a uint8 end-of-sequence mask (indexing
with uint8 masks is an error in current torch). The wheel's files are untouched.

Subcommands (each appends its results to ``docs/bench_speed.json``; ``first-run``
also rewrites its table between the ``first-run`` markers of ``docs/benchmarks.md``,
the page of measurement details; the headline figures are copied by hand into
``docs/results.md``):

    python scripts/bench_speed.py moses-train --minutes 45 --out runs/moses45
    python scripts/bench_speed.py quality --molgen runs/speed45 --moses runs/moses45 -n 30000
    python scripts/bench_speed.py throughput --precisions fp32 bf16
    python scripts/bench_speed.py stages --precision bf16
    python scripts/bench_speed.py scaling --sizes 1000 10000 100000
    python scripts/bench_speed.py sharded -n 1000000 --sample-shards 2 --benchmark-shards 4 --parallel 2 --out runs/m1
    python scripts/bench_speed.py first-run   # cold start: sample, benchmark on an empty cache vs MOSES (scripts/bench_first_run.py)

Every torch computation runs with one thread (``--threads``) unless told
otherwise: on a shared 2-core machine more threads are slower.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import resource
import signal
import sys
import time
import types
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from moses_reference import (  # noqa: E402
    DEFAULT_EXTRA,
    DEFAULT_MOSES_ROOT,
    _cpu_seconds,
    patch_for_moses,
)

RESULTS = ROOT / "docs" / "bench_speed.json"


# --------------------------------------------------------------------------- MOSES VAE


def import_moses_vae(moses_root: Path, extra: Path) -> types.SimpleNamespace:
    """The MOSES VAE classes, imported from the unpacked wheel with the compatibility patches."""
    patch_for_moses(moses_root, extra)
    import torch
    import torch.nn.functional as F
    from moses.utils import OneHotVocab
    from moses.vae.config import get_parser
    from moses.vae.misc import KLAnnealer
    from moses.vae.model import VAE
    from moses.vae.trainer import VAETrainer

    def sample(self, n_batch, max_len=100, z=None, temp=1.0):
        # MOSES 0.3.1's VAE.sample, with the end-of-sequence mask as bool
        # (current torch refuses to index with uint8 masks). Same operations.
        with torch.no_grad():
            if z is None:
                z = self.sample_z_prior(n_batch)
            z = z.to(self.device)
            z_0 = z.unsqueeze(1)
            h = self.decoder_lat(z)
            h = h.unsqueeze(0).repeat(self.decoder_rnn.num_layers, 1, 1)
            w = torch.tensor(self.bos, device=self.device).repeat(n_batch)
            x = torch.tensor([self.pad], device=self.device).repeat(n_batch, max_len)
            x[:, 0] = self.bos
            end_pads = torch.tensor([max_len], device=self.device).repeat(n_batch)
            eos_mask = torch.zeros(n_batch, dtype=torch.bool, device=self.device)
            for i in range(1, max_len):
                x_emb = self.x_emb(w).unsqueeze(1)
                x_input = torch.cat([x_emb, z_0], dim=-1)
                o, h = self.decoder_rnn(x_input, h)
                y = self.decoder_fc(o.squeeze(1))
                y = F.softmax(y / temp, dim=-1)
                w = torch.multinomial(y, 1)[:, 0]
                x[~eos_mask, i] = w[~eos_mask]
                i_eos_mask = ~eos_mask & (w == self.eos)
                end_pads[i_eos_mask] = i + 1
                eos_mask = eos_mask | i_eos_mask
            return [self.tensor2string(x[i, : end_pads[i]]) for i in range(x.size(0))]

    VAE.sample = sample
    return types.SimpleNamespace(
        VAE=VAE,
        VAETrainer=VAETrainer,
        OneHotVocab=OneHotVocab,
        KLAnnealer=KLAnnealer,
        config=get_parser().parse_args([]),
    )


class _Deadline:
    """Iterates a DataLoader until a wall-clock deadline; quacks like the tqdm
    bar MOSES's ``_train_epoch`` expects."""

    def __init__(self, loader, deadline: float, max_steps: int | None = None, clock=time.perf_counter):
        self.loader, self.deadline, self.max_steps, self.clock = loader, deadline, max_steps, clock
        self.steps = 0
        self.molecules = 0
        self.postfix = ""

    def __iter__(self):
        for batch in self.loader:
            if self.clock() >= self.deadline or (
                self.max_steps is not None and self.steps >= self.max_steps
            ):
                return
            self.steps += 1
            self.molecules += len(batch)
            yield batch

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text


def moses_train(args: argparse.Namespace) -> None:
    """Train the MOSES VAE at its default configuration for a wall-clock budget.

    Uses MOSES's own vocabulary, collate function, DataLoader and
    ``VAETrainer._train_epoch`` (forward, KL weight of its first epoch, Adam at
    its starting learning rate, gradient clipping), stopped at the deadline.
    """
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    moses = import_moses_vae(args.moses_root, args.extra)
    config = moses.config
    train = _moses_train_smiles()
    vocab = moses.OneHotVocab.from_data(train)
    model = moses.VAE(vocab, config)
    trainer = moses.VAETrainer(config)
    loader = trainer.get_dataloader(model, train, shuffle=True)
    n_epoch = trainer._n_epoch()
    kl_weight = moses.KLAnnealer(n_epoch, config)(0)
    optimizer = torch.optim.Adam(trainer.get_optim_params(model), lr=config.lr_start)
    cpu0, start = _cpu_seconds(), time.perf_counter()
    if args.cpu_minutes:
        bar = _Deadline(loader, time.process_time() + args.cpu_minutes * 60, args.max_steps, time.process_time)
    else:
        bar = _Deadline(loader, start + args.minutes * 60, args.max_steps)
    epochs = 0
    # SIGTERM ends training early but still saves the model and the result.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        while bar.clock() < bar.deadline and (args.max_steps is None or bar.steps < args.max_steps):
            trainer._train_epoch(model, epochs, bar, kl_weight, optimizer)
            epochs += 1
    except KeyboardInterrupt:
        print("interrupted: saving the model trained so far", file=sys.stderr)
    seconds = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.state_dict(), "chars": sorted(vocab.c2i)}, args.out / "moses_vae.pt")
    result = {
        "tool": "moses-vae",
        "minutes_budget": None if args.cpu_minutes else args.minutes,
        "cpu_minutes_budget": args.cpu_minutes or None,
        "seconds": round(seconds, 1),
        "cpu_seconds": round(_cpu_seconds() - cpu0, 1),
        "steps": bar.steps,
        "batch_size": config.n_batch,
        "molecules_seen": bar.molecules,
        "molecules_per_second": round(bar.molecules / seconds, 1),
        "last_losses": bar.postfix,
        "kl_weight": kl_weight,
        "threads": args.threads,
    }
    (args.out / "train_result.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


def load_moses_vae(run: Path, moses: types.SimpleNamespace):
    """A MOSES VAE saved by :func:`moses_train` (our own benchmark file)."""
    import torch

    saved = torch.load(run / "moses_vae.pt", weights_only=True)
    chars = [c for c in saved["chars"] if c not in ("<bos>", "<eos>", "<pad>", "<unk>")]
    vocab = moses.OneHotVocab(chars)
    model = moses.VAE(vocab, moses.config)
    model.load_state_dict(saved["state_dict"])
    return model.eval()


def _moses_train_smiles() -> list[str]:
    from molgen.datasets import moses_split

    with gzip.open(moses_split("train"), "rt") as handle:
        lines = handle.read().splitlines()
    return [line.split(",")[0] for line in lines[1:] if line.strip()]


# --------------------------------------------------------------------------- measurements


def _moses_sample(model, n: int, batch: int) -> tuple[list[str], float, float]:
    """MOSES-style sampling: ``VAE.sample`` in batches, then RDKit canonicalisation (serial, as its
    scripts do); returns (valid canonical SMILES, wall s, CPU s)."""
    from molgen import chem

    cpu0, start = _cpu_seconds(), time.perf_counter()
    strings: list[str] = []
    while len(strings) < n:
        strings.extend(model.sample(min(batch, n - len(strings))))
    valid = [c for c in (chem.canonical_smiles(s) for s in strings) if c]
    return valid, time.perf_counter() - start, _cpu_seconds() - cpu0


def _molgen_sample(vae, n: int, batch: int, n_jobs: int, precision: str = "fp32") -> tuple[list[str], float, float, float]:
    """Returns (valid SMILES, wall s, CPU s of all processes, CPU s of the decoding process alone)."""
    cpu0, main0, start = _cpu_seconds(), time.process_time(), time.perf_counter()
    from molgen.generate import SampleRequest, stream

    chunks = stream(vae, SampleRequest(n=n, seed=0, batch_size=batch, n_jobs=n_jobs, precision=precision))
    valid = [s for chunk in chunks for s in chunk if s]
    return valid, time.perf_counter() - start, _cpu_seconds() - cpu0, time.process_time() - main0


def _rate(valid: list[str], n: int, wall: float, cpu: float) -> dict:
    unique = len(set(valid))
    return {
        "n": n,
        "valid": len(valid),
        "unique": unique,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "valid_unique_per_s": round(unique / wall, 1),
        "valid_unique_per_cpu_s": round(unique / max(cpu, 1e-9), 1),
    }


def throughput(args: argparse.Namespace) -> None:
    """Sampling (both tools), the RDKit floor and training steps, one after another in this process."""
    import torch

    from molgen import chem
    from molgen.vae import MoleculeVAE

    torch.set_num_threads(args.threads)
    moses = import_moses_vae(args.moses_root, args.extra)
    moses_model = load_moses_vae(args.moses_run, moses)
    vae = MoleculeVAE.load(args.model, device="cpu")
    vae.sample(256, seed=123)  # warm-up
    results: dict = {"machine": _machine(), "threads": args.threads, "n_jobs": args.n_jobs}
    for precision in args.precisions:
        valid, wall, cpu, main_cpu = _molgen_sample(vae, args.n, 1024, args.n_jobs, precision)
        results["molgen_sample" + _suffix(precision)] = dict(_rate(valid, args.n, wall, cpu), decoder_process_cpu_s=round(main_cpu, 2))
    test = _moses_test_smiles()[: args.n]
    cpu0, start = _cpu_seconds(), time.perf_counter()
    chem.canonicalize_many(test, n_jobs=args.n_jobs)
    wall_floor, cpu_floor = time.perf_counter() - start, _cpu_seconds() - cpu0
    results["rdkit_floor"] = {
        "n": len(test),
        "wall_s": round(wall_floor, 2),
        "cpu_s": round(cpu_floor, 2),
        "per_s": round(len(test) / wall_floor, 1),
        "per_cpu_s": round(len(test) / max(cpu_floor, 1e-9), 1),
    }
    n_moses = args.n_moses or args.n
    for batch in args.moses_batch:  # 32 is the default of MOSES's sample script (--n_batch)
        valid, wall, cpu = _moses_sample(moses_model, n_moses, batch)
        key = "moses_sample" if batch == 512 else f"moses_sample_b{batch}"
        results[key] = dict(_rate(valid, n_moses, wall, cpu), batch=batch)
    # Training steps at each tool's default configuration, on the same molecules.
    for precision in args.precisions:
        results["molgen_train" + _suffix(precision)] = _molgen_train_rate(args.train_seconds, precision)
    results["moses_train"] = _moses_train_rate(moses, args.train_seconds)
    _append(results, "throughput")
    print(json.dumps(results, indent=2))


def _suffix(precision: str) -> str:
    """Result keys: fp32 keeps the historical names, other precisions get a suffix."""
    return "" if precision == "fp32" else f"_{precision}"


def _molgen_train_rate(seconds: float, precision: str = "fp32") -> dict:
    import numpy as np
    import torch
    from train_default_model import (
        DEFAULT_ARCH,  # scripts/ is on sys.path (top of file)
    )

    from molgen.models.seq_vae import SeqVAE, SeqVAEConfig
    from molgen.vae.training import tokenize_smiles

    smiles = _moses_train_smiles()[:20_000]
    data, vocab = tokenize_smiles(smiles, "selfies", 100, n_jobs=1)
    torch.manual_seed(0)
    model = SeqVAE(SeqVAEConfig(vocab_size=len(vocab), max_length=101, **DEFAULT_ARCH))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    order = np.argsort(data.lengths, kind="stable")
    batches = [order[i : i + 128] for i in range(0, len(order) - 127, 128)]
    np.random.default_rng(0).shuffle(batches)
    return _timed_steps(batches, seconds, lambda idx: _molgen_step(model, opt, data, idx, precision == "bf16"))


def _molgen_step(model, opt, data, idx, bf16: bool = False) -> None:
    """One step as molgen's Trainer takes it (``--precision bf16``: the forward pass under CPU autocast)."""
    import torch

    lengths = data.lengths[idx]
    ids = torch.from_numpy(data.ids[idx, : lengths.max()])
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = model(ids, torch.from_numpy(lengths), beta=0.5, word_dropout=0.1)
    opt.zero_grad()
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    opt.step()


def _moses_train_rate(moses: types.SimpleNamespace, seconds: float) -> dict:
    import torch

    smiles = _moses_train_smiles()[:20_000]
    torch.manual_seed(0)
    model = moses.VAE(moses.OneHotVocab.from_data(smiles), moses.config)
    trainer = moses.VAETrainer(moses.config)
    optimizer = torch.optim.Adam(trainer.get_optim_params(model), lr=moses.config.lr_start)
    batches = list(trainer.get_dataloader(model, smiles, shuffle=True))

    def step(batch) -> None:
        kl_loss, recon_loss = model(batch)
        loss = 0.0 * kl_loss + recon_loss  # its first epoch's KL weight
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainer.get_optim_params(model), moses.config.clip_grad)
        optimizer.step()

    return _timed_steps(batches, seconds, step)


def _timed_steps(batches: list, seconds: float, step) -> dict:
    step(batches[0])  # warm-up
    molecules, n_steps = 0, 0
    cpu0, start = _cpu_seconds(), time.perf_counter()
    for batch in batches[1:]:
        step(batch)
        molecules += len(batch)
        n_steps += 1
        if _cpu_seconds() - cpu0 > seconds:
            break
    wall, cpu = time.perf_counter() - start, _cpu_seconds() - cpu0
    return {
        "steps": n_steps,
        "molecules": molecules,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "molecules_per_s": round(molecules / wall, 1),
        "molecules_per_cpu_s": round(molecules / cpu, 1),
    }


def scaling(args: argparse.Namespace) -> None:
    """``molgen sample -n N`` and ``molgen benchmark`` on those samples, as separate processes, for each N."""
    import subprocess
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            smi = Path(tmp) / f"sample_{n}.smi"
            sample = _timed_process(
                ["molgen", "sample", "-n", str(n), "-o", str(smi), "--seed", "0", "--threads", str(args.threads), "--device", "cpu"]
            )
            row = {"n": n, "sample": sample}
            if n <= args.max_benchmark:
                row["benchmark"] = _timed_process(
                    ["molgen", "benchmark", "--generated", str(smi), "--reference", "moses-test", "-o", str(Path(tmp) / f"report_{n}"),
                     "--threads", str(args.threads), "--device", "cpu"]
                )  # fmt: skip
            rows.append(dict(row, machine=_machine()))
            print(json.dumps(row), flush=True)
            subprocess.run(["rm", "-rf", str(Path(tmp) / f"report_{n}")], check=False)
    # Rows of earlier runs stay unless this run measured the same N again.
    earlier = json.loads(RESULTS.read_text()).get("scaling", {}).get("rows", []) if RESULTS.exists() else []
    merged = {r["n"]: r for r in earlier} | {r["n"]: r for r in rows}
    _append({"threads": args.threads, "rows": [merged[n] for n in sorted(merged)]}, "scaling")


def sharded(args: argparse.Namespace) -> None:
    """A job too big for one process, as a scheduler would run it: sharded sampling, merge,
    sharded scoring, merge; ``--parallel`` shards at a time, each step timed on its own."""
    from concurrent.futures import ThreadPoolExecutor

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    sample_shards = [
        (f"sample-{i}", ["molgen", "sample", "-n", str(args.n), "--seed", "0", "--shard", f"{i}/{args.sample_shards}",
                         "--threads", "1", "-o", str(out / f"sample-{i}.smi")])
        for i in range(args.sample_shards)
    ]  # fmt: skip
    bench_shards = [
        (f"bench-{j}", ["molgen", "benchmark", "--generated", str(out / "sample.smi"), "--shard", f"{j}/{args.benchmark_shards}",
                        "--reference", "moses-test", "-o", str(out / "parts"), "--threads", "1", "--n-jobs", "1"])
        for j in range(args.benchmark_shards)
    ]  # fmt: skip
    steps = [
        sample_shards,
        [("merge-sample", ["molgen", "merge", *(str(out / f"sample-{i}.smi") for i in range(args.sample_shards)), "-o", str(out / "sample.smi")])],
        bench_shards,
        [("merge-bench", ["molgen", "merge", str(out / "parts"), "-o", str(out / "report"), "--threads", str(args.parallel)])],
    ]  # fmt: skip
    if not args.record_only:
        for group in steps:
            with ThreadPoolExecutor(args.parallel) as pool:
                list(pool.map(lambda step: _time_into(step[1], out / f"{step[0]}.log"), group))
    timings = {name: _read_time(out / f"{name}.log") for group in steps for name, _ in group}
    metrics = json.loads((out / "report" / "metrics.json").read_text())["metrics"]
    sample_cpu = sum(timings[n]["cpu_s"] for n, _ in sample_shards)
    bench_cpu = sum(timings[n]["cpu_s"] for n, _ in bench_shards)
    entry = {
        "command": f"python scripts/bench_speed.py sharded -n {args.n} --sample-shards {args.sample_shards} "
        f"--benchmark-shards {args.benchmark_shards} --parallel {args.parallel} --out {args.out}",
        "machine": _machine(),
        "n": args.n,
        "steps": timings,
        "sample_cpu_ms_per_molecule": round(1e3 * sample_cpu / args.n, 3),
        "benchmark_shards_cpu_ms_per_molecule": round(1e3 * bench_cpu / args.n, 3),
        "merge_cpu_s": timings["merge-bench"]["cpu_s"],
        "peak_rss_mb": max(t["peak_rss_mb"] for t in timings.values()),
        "metrics": {k: metrics[k] for k in metrics if not k.startswith("fcd_") or k == "fcd_sample_size"},
    }
    print(json.dumps(entry, indent=1))
    _append(entry, "sharded_benchmark")


def _time_into(command: list[str], log: Path) -> None:
    """Run one command under ``/usr/bin/time``; its output and the timing lines go to ``log``."""
    import subprocess

    with log.open("w") as handle:
        done = subprocess.run(["/usr/bin/time", "-f", "maxrss_kb=%M\ncpu=%U+%S\nwall=%e", *command], stdout=handle, stderr=handle)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed; see {log}")


def _read_time(log: Path) -> dict:
    """Wall seconds, CPU seconds (user + system, the process and its workers) and peak RSS from a ``_time_into`` log."""
    fields = dict(line.split("=", 1) for line in log.read_text().splitlines() if line.split("=", 1)[0] in ("maxrss_kb", "cpu", "wall"))
    return {
        "wall_s": round(float(fields["wall"]), 2),
        "cpu_s": round(sum(float(x) for x in fields["cpu"].split("+")), 2),
        "peak_rss_mb": round(int(fields["maxrss_kb"]) / 1024, 1),
    }


def _timed_process(command: list[str]) -> dict:
    """Wall time, CPU time (the process and its workers) and peak RSS of one molgen command."""
    import subprocess

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-f", "maxrss_kb=%M", *command], capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    rss = [line for line in done.stderr.splitlines() if line.startswith("maxrss_kb=")]
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 2),
        "peak_rss_mb": round(int(rss[-1].split("=")[1]) / 1024, 1) if rss else None,
    }


def stages(args: argparse.Namespace) -> None:
    """CPU time per molecule of each sampling stage in one process: GRU decoding, SELFIES, RDKit."""
    import numpy as np
    import selfies as sf
    import torch

    from molgen import chem
    from molgen.generate.decoding import DecodeOptions, decode_tokens
    from molgen.vae import MoleculeVAE

    torch.set_num_threads(args.threads)
    vae = MoleculeVAE.load(args.model, device="cpu")
    z_gen, token_gen = torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)
    options = DecodeOptions(precision=args.precision)
    texts: list[str] = []
    cpu0 = time.process_time()
    for _ in range(0, args.n, 1024):
        z = torch.randn(1024, vae.config.latent_dim, generator=z_gen)
        texts += vae.ids_to_strings(decode_tokens(vae.model, vae.model.context(z, None), options, token_gen))
    decode = time.process_time() - cpu0
    cpu0 = time.process_time()
    smiles = [sf.decoder(t) for t in texts]
    selfies_s = time.process_time() - cpu0
    cpu0 = time.process_time()
    [chem.canonical_smiles(s) for s in smiles]
    rdkit_s = time.process_time() - cpu0
    n = len(texts)
    result = {
        "precision": args.precision,
        "n": n,
        "mean_tokens": round(float(np.mean([t.count("[") for t in texts])), 1),
        "ms_per_molecule": {"decode": round(1e3 * decode / n, 3), "selfies": round(1e3 * selfies_s / n, 3), "rdkit": round(1e3 * rdkit_s / n, 3)},
    }
    print(json.dumps(result))


def quality(args: argparse.Namespace) -> None:
    """Validity and FCD/Test of both models after their (equal) training budgets."""
    import torch

    from molgen.metrics import compute_metrics
    from molgen.vae import MoleculeVAE

    torch.set_num_threads(args.threads)
    moses = import_moses_vae(args.moses_root, args.extra)
    out: dict = {"machine": _machine(), "n": args.n}
    torch.manual_seed(args.seed)
    moses_model = load_moses_vae(args.moses_run, moses)
    strings = []
    while len(strings) < args.n:
        strings.extend(moses_model.sample(min(512, args.n - len(strings))))
    vae = MoleculeVAE.load(args.molgen_run, device="cpu")
    samples = [s or "" for s in vae.sample(args.n, seed=args.seed)]
    for name, generated, run in (
        ("molgen", samples, args.molgen_run),
        ("moses-vae", strings, args.moses_run),
    ):
        try:
            metrics = compute_metrics(generated, reference="moses-test", n_jobs=args.n_jobs)
        except Exception as exc:  # e.g. no valid molecule at all
            metrics = {"valid": 0.0, "error": str(exc)}
        train_json = Path(run) / ("train_result.json" if name == "moses-vae" else "config.json")
        out[name] = {
            "metrics": {k: metrics.get(k) for k in ("valid", "unique@1000", "FCD/Test", "SNN/Test", "fcd_sample_size", "error") if k in metrics},
            "run": str(run),
            "training": json.loads(train_json.read_text()) if name == "moses-vae" else _molgen_train_summary(Path(run)),
        }
    _append(out, f"quality_{Path(args.molgen_run).name}")  # one entry per pair of runs
    print(json.dumps(out, indent=2))


def _molgen_train_summary(run: Path) -> dict:
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    info = json.loads((run / "config.json").read_text())
    return {"steps": history[-1]["step"], "seconds": history[-1]["seconds"], "data": info["data"]}


def _moses_test_smiles() -> list[str]:
    from molgen.datasets import moses_split

    with gzip.open(moses_split("test"), "rt") as handle:
        lines = handle.read().splitlines()
    return [line.split(",")[0] for line in lines[1:] if line.strip()]


def _append(entry: dict, kind: str) -> None:
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data[kind] = {"command": " ".join(["python", *sys.argv]), **entry}
    RESULTS.write_text(json.dumps(data, indent=2) + "\n")


# --------------------------------------------------------------------------- helpers


def first_run(args: argparse.Namespace) -> None:
    """Cold-start bars of issue 28 (see ``scripts/bench_first_run.py``); the table goes into ``docs/benchmarks.md``."""
    import bench_first_run

    entry = bench_first_run.first_run(args)
    entry["command"] = " ".join(["python", *sys.argv])
    # MOSES returns NumPy scalars; JSON gets plain numbers.
    entry = json.loads(json.dumps(entry, default=lambda o: o.item() if hasattr(o, "item") else str(o)))
    print(json.dumps(entry, indent=2), flush=True)
    _append(entry, "first_run")
    page = ROOT / "docs" / "benchmarks.md"
    start, end = "<!-- first-run:start -->", "<!-- first-run:end -->"
    text = page.read_text()
    block = f"{start}\n{bench_first_run.markdown(entry)}{end}"
    if start in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    else:
        anchor = "## Speed and scale: molgen beside the MOSES VAE"
        head, tail = text.split(anchor, 1)
        first_line, rest = tail.split("\n", 1)
        text = f"{head}{anchor}{first_line}\n\n{block}\n{rest}"
    page.write_text(text)
    print(bench_first_run.markdown(entry))


def _machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "date": date.today().isoformat(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--moses-root", type=Path, default=DEFAULT_MOSES_ROOT)
    parser.add_argument("--extra", type=Path, default=DEFAULT_EXTRA)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("moses-train", help="train the MOSES VAE for a wall-clock budget")
    p.add_argument("--minutes", type=float, default=45.0)
    p.add_argument("--cpu-minutes", type=float, default=0.0, help="CPU-time budget instead of --minutes")
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--out", type=Path, default=Path("runs/moses45"))
    p = sub.add_parser("throughput", help="sampling, RDKit floor and training speed of both tools")
    p.add_argument("--model", default=None, help="molgen checkpoint (default: the shipped model)")
    p.add_argument("--moses-run", type=Path, default=Path("runs/moses_cpu12"))
    p.add_argument("-n", "--n", type=int, default=10_000)
    p.add_argument("--n-moses", type=int, default=0, help="MOSES samples (default: -n)")
    p.add_argument("--moses-batch", type=int, nargs="+", default=[512], help="MOSES sampling batch sizes (its sample script's default is 32)")
    p.add_argument("--n-jobs", type=int, default=2)
    p.add_argument("--train-seconds", type=float, default=60.0, help="CPU seconds of training steps per tool")
    p.add_argument("--precisions", nargs="+", default=["fp32"], choices=["fp32", "bf16"], help="molgen precisions to time")
    p = sub.add_parser("scaling", help="cost of molgen sample and molgen benchmark as N grows")
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    p.add_argument("--max-benchmark", type=int, default=100_000, help="score only samples up to this size")
    p = sub.add_parser("sharded", help="sample and score -n molecules in shards, as a job array would, and merge")
    p.add_argument("-n", "--n", type=int, default=1_000_000)
    p.add_argument("--sample-shards", type=int, default=2)
    p.add_argument("--benchmark-shards", type=int, default=4)
    p.add_argument("--parallel", type=int, default=2, help="shards run at the same time")
    p.add_argument("--out", type=Path, default=Path("runs/sharded"))
    p.add_argument("--record-only", action="store_true", help="read the timings of an earlier run in --out; run nothing")
    p = sub.add_parser("stages", help="per-molecule CPU time of each molgen sampling stage")
    p.add_argument("--model", default=None, help="molgen checkpoint (default: the shipped model)")
    p.add_argument("-n", "--n", type=int, default=4096)
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    p = sub.add_parser("quality", help="validity and FCD/Test of both trained runs")
    p.add_argument("--molgen-run", type=Path, default=Path("runs/molgen_cpu12"))
    p.add_argument("--moses-run", type=Path, default=Path("runs/moses_cpu12"))
    p.add_argument("-n", "--n", type=int, default=10_000)
    p.add_argument("--n-jobs", type=int, default=2)
    p = sub.add_parser("first-run", help="cold start: whole-process sampling and the benchmark on an empty cache, beside MOSES")
    p.add_argument("--n-sample", type=int, default=10_000, help="molecules for molgen sample")
    p.add_argument("--n-moses", type=int, default=1000, help="strings for the MOSES VAE")
    p.add_argument("--n-benchmark", type=int, default=1000, help="molecules scored (the first of the sample)")
    p.add_argument("--n-jobs", type=int, default=2)
    p.add_argument("--chemnet-molecules", type=int, default=128, help="test molecules whose ChemNet activations are compared with fcd_torch's")
    p.add_argument("--gradient-predictor", default=None, help="a QED predictor (molgen predictor train --properties qed): also time "
                   "gradient optimization, --gradient-starts x 10 steps (the 60 s bar is 10,000)")
    p.add_argument("--gradient-starts", type=int, default=10_000)
    args = parser.parse_args()
    commands = {"moses-train": moses_train, "throughput": throughput, "scaling": scaling, "sharded": sharded, "stages": stages, "quality": quality, "first-run": first_run}
    commands[args.command](args)


if __name__ == "__main__":
    random.seed(0)
    main()
