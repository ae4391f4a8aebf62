"""What the property columns cost `molgen sample`: the same draw with and without them, back to back.

    python scripts/bench_sample_columns.py -n 10000 --repeats 2 [--before-root /path/to/older/checkout]

Each variant runs ``molgen sample -n N -o x.csv --seed 0`` in a fresh process;
wall time and the CPU time of the process and its RDKit workers are measured.
``--before-root`` adds the same command run on another checkout (the code
before the columns existed). Writes ``docs/sample_columns.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _measure(root: Path, n: int, extra: list[str]) -> dict:
    env = dict(os.environ, PYTHONPATH=str(root))
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "x.csv"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "molgen", "sample", "-n", str(n), "-o", str(out), "--seed", "0", *extra], check=True, env=env, capture_output=True, cwd=folder)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        header = out.read_text().splitlines()[0]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "columns": header}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--before-root", type=Path, default=None)
    parser.add_argument("--json", default=str(ROOT / "docs" / "sample_columns.json"))
    parser.add_argument("--md", default=str(ROOT / "docs" / "sample_columns.md"))
    args = parser.parse_args()
    variants = [("properties (default)", ROOT, []), ("--no-properties", ROOT, ["--no-properties"])]
    if args.before_root is not None:
        variants.insert(0, ("before (no columns)", args.before_root, []))
    rows = []
    for repeat in range(args.repeats):
        for name, root, extra in variants:  # interleaved, so load on the machine hits every variant alike
            rows.append({"variant": name, "repeat": repeat, **_measure(root, args.n, extra)})
            print(json.dumps(rows[-1]), flush=True)
    command = f"python scripts/bench_sample_columns.py -n {args.n} --repeats {args.repeats}" + (" --before-root OLD_CHECKOUT" if args.before_root else "")
    Path(args.json).write_text(json.dumps({"command": command, "n": args.n, "cpus": os.cpu_count(), "runs": rows}, indent=2))
    lines = [
        "# Sample property columns: cost",
        "",
        f"Command: `{command}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs (shared with other work); {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.",
        "CPU: the process and its RDKit workers (user + system). The median of the repeats is in the table.",
        "",
        "| variant | wall s | CPU s |",
        "|---|---|---|",
    ]
    for name, _, _ in variants:
        mine = sorted(rows, key=lambda r: r["cpu_s"])
        walls = sorted(r["wall_s"] for r in rows if r["variant"] == name)
        cpus = sorted(r["cpu_s"] for r in mine if r["variant"] == name)
        lines.append(f"| {name} | {walls[len(walls) // 2]:.1f} | {cpus[len(cpus) // 2]:.1f} |")
    Path(args.md).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
