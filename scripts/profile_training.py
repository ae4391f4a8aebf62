"""Where a training step's time goes: steps/s per batch size and the top ops, CPU or GPU.

    python scripts/profile_training.py --device cuda --batch-sizes 128 512 2048
    python scripts/profile_training.py --device cuda --batch-sizes 512 --compile
    python scripts/profile_training.py --device cpu --batch-sizes 32 --steps 10 --threads 1

Each batch size is one real run of ``train_vae`` (the shipped default
architecture, the embedded 50k MOSES molecules, the trainer's own precision
and optimizer), stopped after ``--warmup + --steps`` optimizer steps. The
first ``--warmup`` steps are not timed (allocator, cuDNN autotuning and
compilation); the next ``--steps`` are, each ended by a device synchronisation,
and the last ``--profile-steps`` of them run under ``torch.profiler``. On CUDA
the device's synchronisations are counted too (``torch.cuda.set_sync_debug_mode``),
because each one stalls the host until the GPU has drained its queue.

Prints a Markdown table (steps/s, molecules/s, host CPU-ms per step) and the
top ops by self CPU time and self device time; ``--json PATH`` keeps it all,
``--trace DIR`` writes Chrome traces (open in chrome://tracing or Perfetto).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import torch
from train_default_model import (
    DEFAULT_ARCH,  # scripts/ is sys.path[0] when this file runs as a script
)

from molgen.datasets import default_training_smiles
from molgen.train import Trainer
from molgen.vae.training import VAETrainingConfig, train_vae


class _Enough(Exception):
    """Raised from inside the trainer once the measured steps are done."""


def profile_batch_size(batch_size: int, args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    total = args.warmup + args.steps
    smiles = default_training_smiles(limit=min(50_000, int(batch_size * (total + 2) / 0.99) + 1))
    config = VAETrainingConfig(
        representation="selfies",
        model=DEFAULT_ARCH,
        train=dict(epochs=1, batch_size=batch_size, lr=1e-3, seed=0, checkpoint_every=10**9, patience=0, compile=args.compile),
        val_fraction=0.01,
    )
    cuda = device.type == "cuda"
    activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if cuda else [])
    profiler = torch.profiler.profile(activities=activities)
    record: dict = {"batch_size": batch_size, "device": str(device), "compile": args.compile}
    walls: list[float] = []
    cpus: list[float] = []
    syncs = {"n": 0}
    original = Trainer._train_step
    profile_from = total - args.profile_steps

    def timed_step(trainer: Trainer, batch):
        i = trainer.global_step  # steps done before this one
        if i == profile_from:
            if cuda:
                torch.cuda.set_sync_debug_mode("warn")
            profiler.start()
        if cuda:
            torch.cuda.synchronize(device)
        wall, cpu = time.perf_counter(), time.thread_time()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            logs = original(trainer, batch)
            if cuda:
                torch.cuda.synchronize(device)
        if i >= profile_from:
            syncs["n"] += sum("synchroniz" in str(w.message) for w in caught)
        if i >= args.warmup:
            walls.append(time.perf_counter() - wall)
            cpus.append(time.thread_time() - cpu)
        if i + 1 >= total:
            profiler.stop()
            if cuda:
                torch.cuda.set_sync_debug_mode(0)
            raise _Enough
        return logs

    Trainer._train_step = timed_step  # type: ignore[method-assign]
    try:
        with tempfile.TemporaryDirectory(prefix="molgen-profile-") as out:
            try:
                train_vae(smiles, Path(out) / "run", config, device=str(device), show_progress=False)
            except _Enough:
                pass
    finally:
        Trainer._train_step = original  # type: ignore[method-assign]
    if len(walls) < args.steps:
        raise SystemExit(f"only {len(walls)} steps ran at batch {batch_size}; give more molecules or fewer --steps")
    mean_wall = sum(walls) / len(walls)
    record.update(
        steps_per_s=round(1 / mean_wall, 2),
        molecules_per_s=round(batch_size / mean_wall, 1),
        ms_per_step=round(1e3 * mean_wall, 2),
        host_cpu_ms_per_step=round(1e3 * sum(cpus) / len(cpus), 2),
    )
    if cuda:
        record["device_syncs_per_step"] = round(syncs["n"] / args.profile_steps, 1)
    averages = profiler.key_averages()
    record["top_cpu"] = _top(averages, "self_cpu_time_total", args.top)
    if cuda:
        record["top_device"] = _top(averages, "self_device_time_total", args.top)
    if args.trace:
        args.trace.mkdir(parents=True, exist_ok=True)
        profiler.export_chrome_trace(str(args.trace / f"train_b{batch_size}{'_compiled' if args.compile else ''}.json"))
    return record


def _top(averages, key: str, n: int) -> list[dict]:
    rows = sorted(averages, key=lambda e: getattr(e, key, 0.0), reverse=True)[:n]
    return [{"op": e.key, "calls": e.count, "self_ms": round(getattr(e, key, 0.0) / 1e3, 3)} for e in rows]


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    parser.add_argument("--steps", type=int, default=40, help="timed steps")
    parser.add_argument("--profile-steps", type=int, default=5, help="the last timed steps, under torch.profiler")
    parser.add_argument("--compile", action="store_true", help="torch.compile the forward pass (molgen train --compile)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--top", type=int, default=15, help="ops listed per table")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--trace", type=Path, default=None, help="folder for Chrome traces of the profiled steps")
    args = parser.parse_args()
    if not 1 <= args.profile_steps <= args.steps:
        parser.error("--profile-steps must be between 1 and --steps")
    if args.threads:
        torch.set_num_threads(args.threads)
    runs = [profile_batch_size(b, args) for b in args.batch_sizes]
    device_name = torch.cuda.get_device_name(torch.device(args.device)) if args.device.startswith("cuda") else _cpu_name()
    result = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{device_name}, torch {torch.__version__}, {torch.get_num_threads()} torch threads",
        "runs": runs,
    }
    print(f"{result['machine']}; {result['date']}\n")
    print("| batch | compile | steps/s | molecules/s | ms/step | host CPU-ms/step | device syncs/step |")
    print("|---|---|---|---|---|---|---|")
    for r in runs:
        print(
            f"| {r['batch_size']} | {r['compile']} | {r['steps_per_s']} | {r['molecules_per_s']:,} | {r['ms_per_step']} | "
            f"{r['host_cpu_ms_per_step']} | {r.get('device_syncs_per_step', '')} |"
        )
    for r in runs:
        for table in ("top_cpu", "top_device"):
            if table in r:
                print(f"\nbatch {r['batch_size']}, {table.replace('_', ' ')} (self ms over {args.profile_steps} steps):")
                for row in r[table]:
                    print(f"  {row['self_ms']:>10.3f}  {row['calls']:>6}  {row['op']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
