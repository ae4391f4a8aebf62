"""Every shell command of README.md and the guides under docs/, made small, for tests/test_readme.py.

:func:`readme_commands` pulls the command lines out of the shell blocks of
README.md and then of each page in :data:`GUIDES`, in that order (later
pages use what earlier commands made, e.g. the README's ``runs/a``); :func:`small` rewrites one with the substitutions below (sample
sizes, epochs, budgets) so that the whole README runs in minutes; commands
that cannot run on a test machine are listed in :data:`SKIPPED` with the
reason. A README command that is neither run nor skipped fails the test.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: The guides whose commands run after the README's, in this order.
GUIDES = [ROOT / "docs" / f"guide_{name}.md" for name in ("training", "chemistry", "sampling", "optimization", "benchmark", "scale", "images")]

#: Command prefixes not run, and why.
SKIPPED = {
    "pip install": "installs the package (the slow test installs a wheel instead)",
    "python -m pytest": "the test suite itself",
    "torchrun": "several processes or machines (DDP is tested in tests/test_distributed.py)",
    "N=": "a shell variable of the Slurm script",
    "molgen data moses": "downloads the molsets wheel (network)",
}

#: (pattern, replacement) applied in order: small sizes for the same command.
SUBSTITUTIONS: list[tuple[str, str]] = [
    (r"^sbatch --array=\S+ --wrap '(.*)'$", r"\1"),
    (r"\$SLURM_ARRAY_TASK_ID/\$N\b", "0/1"),
    (r"\$SLURM_ARRAY_TASK_ID/100\b", "0/1"),
    (r"\$SLURM_ARRAY_TASK_ID", "0"),
    (r"-n (10000000|30000|10000|1000)\b", "-n 40"),
    (r"--model-samples \d+", "--model-samples 20"),
    (r"--steered-samples \d+", "--steered-samples 10"),
    (r"--limit \d+", "--limit 100"),
    (r"--epochs \d+", "--epochs 1"),
    (r"--budget \d+", "--budget 24"),
    (r"--batch-size 50\b", "--batch-size 8"),
    (r"--steer-candidates 8", "--steer-candidates 2"),
]

#: Options appended per subcommand when the README line does not set them.
EXTRA = {
    "train": "--epochs 1 --limit 120 --batch-size 32 --quiet --embed-dim 16 --latent-dim 8",
    "sample": "-n 20",
    "fit-prior": "--limit 100 --components 2",
    "tune-sampling": "-n 1000 --limit 1000 --temperatures 1.0 --min-novelty 0",
    "fit-steering": "--limit 100 --epochs 1 --hidden 16",
    "score": "--samples 2 --reference-size 20",
    "optimize": "--option n_init=8 --option n_candidates=64 --option finetune_every=0 --quiet",
    "optimize gradient": "--option n_starts=8 --option steps=4 --option rounds=2 --quiet",
    "benchmark": "--n-jobs 1",
    "predictor train": "--epochs 2 --members 2 --hidden 16 --limit 200",
    "image train": "--limit 200 --quiet --threads 1",
    "image evaluate": "--n-samples 100 --iw-samples 2 --reference-steps 20 --baseline-steps 20 --threads 1",
}


def readme_commands(text: str | None = None) -> list[str]:
    """The command lines of the shell code blocks (``bash`` or unlabelled) of README.md and the guides, comments removed."""
    if text is None:
        return [c for page in (README, *GUIDES) for c in readme_commands(page.read_text())]
    commands, block, lang = [], False, ""
    pending = ""
    for line in text.splitlines():
        if line.startswith("```"):
            block, lang = not block, line[3:].strip()
            continue
        if not block or lang not in ("bash", "", "sh"):
            continue
        line = pending + line.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1].rstrip() + " "
            continue
        line = _strip_comment(line)
        if line and not line.startswith("#"):
            commands.extend(part.strip() for part in line.split(" && "))
    return commands


def skip_reason(command: str) -> str | None:
    return next((why for prefix, why in SKIPPED.items() if command.startswith(prefix)), None)


def small(command: str) -> list[str]:
    """The command with small sizes, as an argument list starting with ``molgen``."""
    for pattern, replacement in SUBSTITUTIONS:
        command = re.sub(pattern, replacement, command)
    args = shlex.split(command)
    if args[0] != "molgen":
        raise ValueError(f"not a molgen command: {command}")
    sub = " ".join(args[1:3]) if " ".join(args[1:3]) in EXTRA else args[1]  # "image train" before "image"
    if sub == "optimize" and not _has(args, "--method", "bo"):  # the gradient method (the default) has other options
        sub = "optimize gradient"
    extra = shlex.split(EXTRA.get(sub, ""))
    given = set(args)
    i, kept = 0, []
    while i < len(extra):  # an option the README line sets itself keeps the README's value
        option = extra[i]
        takes_value = i + 1 < len(extra) and not extra[i + 1].startswith("--")
        if option not in given and not (option == "-n" and "-n" in given):
            kept += extra[i : i + 1 + takes_value]
        i += 1 + takes_value
    if sub == "train" and "--init-from" in args:  # fine-tuning keeps the checkpoint's sizes
        kept = _without(kept, ("--embed-dim", "--latent-dim"))
    if sub == "train" and "--arch" in args:
        kept += ["--n-heads", "2"]
    return args + kept


def _has(args: list[str], option: str, value: str) -> bool:
    return any(a == option and b == value for a, b in zip(args, args[1:]))


def _without(args: list[str], options: tuple[str, ...]) -> list[str]:
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a in options:
            skip = True
        else:
            out.append(a)
    return out


def _strip_comment(line: str) -> str:
    """Drop a trailing ``# comment`` outside quotes."""
    quote = None
    for i, ch in enumerate(line):
        if ch in "'\"":
            quote = None if quote == ch else (quote or ch)
        elif ch == "#" and quote is None and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.strip()
