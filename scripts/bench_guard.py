"""Cost of the molecule guard (molgen.chem.guard) on the default sampling path.

Runs ``molgen sample -n N --seed 0`` three ways in one session, back to back
and in alternating order over ``--repeats`` rounds:

* ``before``: the code at ``--before`` (default: the commit before the guard
  was added), extracted with ``git archive`` into a temporary folder;
* ``guard off``: this checkout with ``MOLGEN_LIMITS=off``;
* ``guard on``: this checkout with the default limits.

It checks that all three write the same molecules (same seed, same output),
reports wall and CPU seconds (children's ``getrusage``, so load from other
processes shows in wall time only), and times the guard alone on the sampled
molecules (``try_parse`` with and without limits, in one process). Results go
to ``docs/bench_guard.json`` and ``docs/bench_guard.md``.

    python scripts/bench_guard.py -n 100000 --repeats 1
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import datetime, timezone
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
GUARD_COMMIT_PARENT = "5974569"  # the last commit before molgen/chem/guard.py


def _checkout(ref: str, folder: Path) -> Path:
    data = subprocess.run(["git", "archive", ref], cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def _run_sample(code_root: Path, n: int, out: Path, limits: str | None) -> dict:
    env = dict(os.environ, PYTHONPATH=str(code_root))
    env.pop("MOLGEN_LIMITS", None)
    if limits is not None:
        env["MOLGEN_LIMITS"] = limits
    cmd = [sys.executable, "-m", "molgen", "sample", "-n", str(n), "-o", str(out), "--seed", "0", "--device", "cpu"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=code_root, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "sha256": hashlib.sha256(out.read_bytes()).hexdigest()}


def _guard_alone(smiles: list[str], repeats: int) -> dict:
    """Seconds for try_parse over the molecules with and without limits (best of ``repeats``)."""
    sys.path.insert(0, str(ROOT))
    from molgen import chem
    from molgen.chem import guard

    best = {"off": float("inf"), "on": float("inf")}
    for _ in range(repeats):
        for name, limits in (("off", guard.NO_LIMITS), ("on", guard.DEFAULT_LIMITS)):
            with guard.limits_applied(limits):
                start = time.process_time()
                for s in smiles:
                    chem.try_parse(s)
                best[name] = min(best[name], time.process_time() - start)
    return {"molecules": len(smiles), "cpu_s_off": round(best["off"], 3), "cpu_s_on": round(best["on"], 3), "ratio_on_off": round(best["on"] / best["off"], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--before", default=GUARD_COMMIT_PARENT, help="git ref of the code without the guard")
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {"before": [], "guard off": [], "guard on": []}
    with tempfile.TemporaryDirectory(prefix="bench-guard-") as tmp:
        old = _checkout(args.before, Path(tmp) / "before")
        variants = {"before": (old, None), "guard off": (ROOT, "off"), "guard on": (ROOT, None)}
        order = list(variants)
        for r in range(args.repeats):
            for name in order if r % 2 == 0 else order[::-1]:
                code_root, limits = variants[name]
                out = Path(tmp) / f"{name.replace(' ', '_')}-{r}.smi"
                runs[name].append(_run_sample(code_root, args.n, out, limits))
                print(name, runs[name][-1], flush=True)
        sampled = [line.split()[0] for line in out.read_text().splitlines() if line.strip()]
    digests = {run["sha256"] for rows in runs.values() for run in rows}
    summary = {name: {k: min(run[k] for run in rows) for k in ("wall_s", "cpu_s")} for name, rows in runs.items()}
    result = {
        "command": f"python scripts/bench_guard.py -n {args.n} --repeats {args.repeats}",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (shared), Python {platform.python_version()}",
        "n": args.n,
        "before": args.before,
        "same_molecules": len(digests) == 1,
        "runs": runs,
        "best": summary,
        "cpu_ratio_on_before": round(summary["guard on"]["cpu_s"] / summary["before"]["cpu_s"], 4),
        "cpu_ratio_on_off": round(summary["guard on"]["cpu_s"] / summary["guard off"]["cpu_s"], 4),
        "guard_alone": _guard_alone(sampled, 3),
    }
    (DOCS / "bench_guard.json").write_text(json.dumps(result, indent=2) + "\n")
    (DOCS / "bench_guard.md").write_text(_markdown(result))
    print(json.dumps({k: result[k] for k in ("same_molecules", "best", "cpu_ratio_on_before", "cpu_ratio_on_off", "guard_alone")}, indent=2))


def _markdown(r: dict) -> str:
    lines = [
        "# Cost of the molecule guard on `molgen sample`",
        "",
        f"Command: `{r['command']}` ({r['date']}; {r['machine']}). Each row is `molgen sample -n {r['n']:,} --seed 0 --device cpu`",
        "in a fresh process; `before` is the code at commit " + f"`{r['before']}` (no guard). CPU seconds are the process's own",
        "(user + system, worker processes included); wall time also reflects other load on the shared machine.",
        "",
        "| variant | wall s | CPU s | CPU ratio to before |",
        "|---|---:|---:|---:|",
    ]
    base = r["best"]["before"]["cpu_s"]
    for name, best in r["best"].items():
        lines.append(f"| {name} | {best['wall_s']:.1f} | {best['cpu_s']:.1f} | {best['cpu_s'] / base:.3f} |")
    g = r["guard_alone"]
    lines += [
        "",
        f"Same molecules in all runs: **{'yes' if r['same_molecules'] else 'NO'}**.",
        "",
        f"The guard alone: `try_parse` over the {g['molecules']:,} sampled molecules takes {g['cpu_s_on']:.2f} CPU s with the",
        f"default limits and {g['cpu_s_off']:.2f} s with `MOLGEN_LIMITS=off` (ratio {g['ratio_on_off']:.3f}, best of 3).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
