"""Benchmark molgen.metrics against the original MOSES code: speed and agreement.

Scores 30,000 molecules (by default sampled, seed 0, from the MOSES training
set, none of them in the test set; or any file given with --generated) against
the MOSES test and scaffold-test sets, with the MOSES training set for novelty:

* molgen, cold cache (reference statistics computed and saved), then warm
  (loaded), each in a fresh process;
* MOSES 0.3.1 ``get_all_metrics`` via ``scripts/moses_reference.py`` (its
  shipped precomputed test statistics, i.e. its warm path; it always computes
  the test and scaffold-test metrics together).

Writes docs/bench_metrics.json and prints a Markdown table.

    nice python scripts/bench_metrics.py            # ~15-30 min on 2 cores
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MOSES_DATA = Path("/tmp/wheels/molsets/moses/dataset/data")
SPLITS = {"Test": "test.csv.gz", "TestSF": "test_scaffolds.csv.gz"}
SHARED_KEYS = ("FCD", "SNN", "Frag", "Scaf")
GLOBAL_KEYS = (
    "valid",
    "unique@1000",
    "unique@10000",
    "IntDiv",
    "IntDiv2",
    "Filters",
    "Novelty",
    "logP",
    "SA",
    "QED",
    "weight",
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--generated", type=Path, help="SMILES file to score (default: a MOSES train sample)"
    )
    parser.add_argument(
        "--n", type=int, default=30_000, help="sample size when --generated is not given"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--moses-data", type=Path, default=DEFAULT_MOSES_DATA)
    parser.add_argument("--work", type=Path, default=Path("/tmp/molgen-bench-metrics"))
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "bench_metrics.json")
    parser.add_argument("--skip-moses", action="store_true", help="time molgen only")
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), choices=list(SPLITS))
    parser.add_argument(
        "--moses-json", type=Path, help="use this moses_reference.py result instead of running MOSES"
    )
    parser.add_argument(
        "--keep-cache", action="store_true", help="reuse cached reference statistics"
    )
    parser.add_argument(
        "--together",
        action="store_true",
        help="molgen scores all --splits in one call (evaluate_many), as MOSES's get_all_metrics does",
    )
    parser.add_argument(
        "--worker", nargs=3, metavar=("GENERATED", "SPLIT", "CACHE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.worker:
        _worker(args, *args.worker)
        return
    args.work.mkdir(parents=True, exist_ok=True)
    generated = args.generated or _sample_train(args)
    cache = args.work / "cache"
    if not args.keep_cache:
        shutil.rmtree(cache, ignore_errors=True)
    runs = {}
    for split in ["+".join(args.splits)] if args.together else args.splits:
        for label in ("warm",) if args.keep_cache else ("cold", "warm"):
            print(f"molgen {split} {label} cache ...", file=sys.stderr, flush=True)
            runs[f"molgen/{split}/{label}"] = _run_json(
                [sys.executable, __file__, "--moses-data", str(args.moses_data),
                 "--n-jobs", str(args.n_jobs), "--work", str(args.work),
                 "--worker", str(generated), split, str(cache)]
            )  # fmt: skip
    moses = json.loads(args.moses_json.read_text()) if args.moses_json else None
    if moses is None and not args.skip_moses:
        print("MOSES get_all_metrics ...", file=sys.stderr, flush=True)
        moses = _run_json(
            [sys.executable, str(ROOT / "scripts" / "moses_reference.py"), "score",
             "--generated", str(generated), "--reference", "moses-test", "--train", "moses-train",
             "--n-jobs", str(args.n_jobs), "--out", str(args.work / "moses.json")]
        )  # fmt: skip
    result = _summarize(args, generated, runs, moses)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(_markdown(result))


def _sample_train(args: argparse.Namespace) -> Path:
    test = set(_read_column(args.moses_data / "test.csv.gz"))
    train = [s for s in _read_column(args.moses_data / "train.csv.gz") if s not in test]
    sample = random.Random(args.seed).sample(train, args.n)
    path = args.work / f"moses_train_sample_{args.n}_seed{args.seed}.smi"
    path.write_text("\n".join(sample) + "\n")
    return path


def _read_column(path: Path) -> list[str]:
    with gzip.open(path, "rt") as handle:
        lines = handle.read().splitlines()
    return [line.split(",")[0] for line in lines[1:]]


def _worker(args: argparse.Namespace, generated: str, split: str, cache: str) -> None:
    """Score in this (fresh) process; print ``{"metrics", "seconds", "cpu_seconds", "cache"}``
    as JSON and keep a copy in ``<work>/runs/`` (``cache`` tells whether the
    reference statistics were already cached)."""
    sys.path.insert(0, str(ROOT))
    import warnings

    from molgen.metrics.compute import REFERENCE_DEPENDENT, evaluate_many

    warnings.simplefilter("ignore")
    train = _read_column(args.moses_data / "train.csv.gz")
    cached_before = set(Path(cache, "metrics").glob("*.npz"))
    cpu_before = _cpu_seconds()
    start = time.perf_counter()
    splits = split.split("+")
    evaluations = evaluate_many(
        generated,
        [args.moses_data / SPLITS[name] for name in splits],
        train=train,
        n_jobs=args.n_jobs,
        cache_dir=cache,
    )
    seconds = time.perf_counter() - start
    cpu = _cpu_seconds() - cpu_before
    state = "warm" if set(Path(cache, "metrics").glob("*.npz")) == cached_before else "cold"
    # Each split's comparisons under its own name; the reference-dependent
    # metrics without a suffix (property distances, KL) come from the first split.
    renamed = {}
    for i, (name, evaluation) in enumerate(zip(splits, evaluations, strict=True)):
        for key, value in evaluation.metrics.items():
            if key.endswith("/Test"):
                renamed[key.replace("/Test", f"/{name}")] = value
            elif i == 0:
                renamed[key] = value
            elif key in REFERENCE_DEPENDENT:
                renamed[f"{key}/{name}"] = value
    result = {
        "metrics": renamed,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),
        "cache": state,
    }
    runs = args.work / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    (runs / f"molgen-{split}-{state}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (pool workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _run_json(command: list[str]) -> dict:
    """Run a scoring process; add its wall time and CPU time (its pool workers included)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"{command[1]} failed:\n{done.stderr[-3000:]}")
    start_of_json = done.stdout.index("{")
    result = json.loads(done.stdout[start_of_json:])
    result["process_seconds"] = round(wall, 2)
    result["process_cpu_seconds"] = round(cpu, 2)
    return result


def _summarize(args: argparse.Namespace, generated: Path, runs: dict, moses: dict | None) -> dict:
    import torch

    n = sum(1 for _ in generated.open())
    warm = {name: run for name, run in runs.items() if name.endswith("/warm")}
    result = {
        "command": " ".join(["python", *sys.argv]),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "torch_threads": torch.get_num_threads(),
            "load_average_at_end": os.getloadavg(),
        },
        "generated": {"path": str(generated), "n": n},
        "n_jobs": args.n_jobs,
        "timing": {name: _timing(run) for name, run in runs.items()},
        "molgen": {k: v for run in warm.values() for k, v in run["metrics"].items()},
    }
    if moses is not None:
        result["timing"]["moses"] = _timing(moses)
        result["moses"] = moses["metrics"]
        ours_wall = sum(run["seconds"] for run in warm.values())
        ours_cpu = sum(run["cpu_seconds"] for run in warm.values())
        result["speedup_warm"] = {
            "splits_molgen": [name.split("/")[1] for name in warm],
            "splits_moses": ["Test", "TestSF"],
            "wall": round(moses["seconds"] / ours_wall, 2),
            "cpu": round(moses["cpu_seconds"] / ours_cpu, 2),
        }
    return result


def _timing(run: dict) -> dict:
    """Wall and CPU seconds of the scoring call (pool workers included), and of its process."""
    return {
        "call_s": run["seconds"],
        "call_cpu_s": run["cpu_seconds"],
        "process_s": run.get("process_seconds"),
    }


def _markdown(result: dict) -> str:
    lines = [
        f"Scoring {result['generated']['n']:,} molecules ({result['generated']['path']}), n_jobs={result['n_jobs']}:",
        "",
    ]
    lines += ["| run | scoring call, wall (s) | scoring call, CPU (s) |", "|---|---|---|"]
    for name, t in result["timing"].items():
        lines.append(f"| {name} | {t['call_s']:.1f} | {t['call_cpu_s']:.1f} |")
    if "moses" in result:
        lines += ["", "| metric | molgen | MOSES | abs. diff |", "|---|---|---|---|"]
        keys = [
            *GLOBAL_KEYS[:3],
            *(f"{k}/{s}" for s in SPLITS for k in SHARED_KEYS),
            *GLOBAL_KEYS[3:],
        ]
        for key in keys:
            ours, ref = result["molgen"].get(key), result["moses"].get(key)
            if ours is None or ref is None:
                continue
            lines.append(f"| {key} | {ours:.6f} | {ref:.6f} | {abs(ours - ref):.2e} |")
        lines += ["", f"KL (molgen only, GuacaMol definition): {result['molgen']['KL']:.4f}"]
        lines += ["", f"Speed-up (warm, MOSES time / molgen time): {result['speedup_warm']}"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
