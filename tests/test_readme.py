"""README.md's shell commands run as a new user runs them: from another folder, on an installed package.

The fast tests check that every README command is either run (made small by
``tests/readme_commands.py``) or skipped for a stated reason, and run the
fine-tune and sampling commands from a folder outside the checkout. The slow
test builds the wheel, installs it into a fresh virtual environment (no
editable install, no checkout on the path) and runs every command.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from readme_commands import readme_commands, skip_reason, small  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

DOCKING = '''\
from rdkit import Chem


def score(smiles: str) -> float:
    """A stand-in for a slow per-molecule oracle."""
    return Chem.MolFromSmiles(smiles).GetNumHeavyAtoms() / 30
'''


def _inputs(folder: Path) -> None:
    """The user files the README's commands name, from the shipped MOSES samples."""
    from molgen.datasets import default_test_smiles, default_training_smiles

    train, test = default_training_smiles(limit=300), default_test_smiles(limit=300)
    files = {"my.smi": train, "held_out.smi": test[:30], "mols.smi": test[30:60], "my_samples.smi": test[60:160], "my_test.smi": test[100:300]}
    for name, smiles in files.items():
        (folder / name).write_text("\n".join(smiles) + "\n")
    (folder / "my_docking.py").write_text(DOCKING)
    # A stand-in assay for `predictor train --labels assay.csv --target activity`: any number per molecule will do.
    rows = [f"{s},{len(s) / 10:.2f}" for s in train[:200]]
    (folder / "assay.csv").write_text("smiles,activity\n" + "\n".join(rows) + "\n")
    # The guides point at the example scoring files in configs/, which a user copies next to their work.
    (folder / "configs").mkdir(exist_ok=True)
    for example in (ROOT / "configs").glob("*.toml"):
        (folder / "configs" / example.name).write_text(example.read_text())


def _run(python: str, args: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    # moses-test (176k molecules, and a download) stands in as a 200-molecule file of MOSES test molecules.
    args = ["my_test.smi" if a == "moses-test" else a for a in args]
    return subprocess.run([python, "-m", "molgen", *args[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS="1", MOLGEN_NO_BF16="1", **extra)
    return env


def test_every_readme_command_is_run_or_skipped_for_a_reason():
    commands = readme_commands()
    assert len(commands) > 30
    run = [c for c in commands if skip_reason(c) is None]
    assert all(small(c)[0] == "molgen" for c in run)
    assert any("--init-from default" in c for c in run), "the fine-tune example is run"
    assert not any("data/" in c for c in run), "README commands must not need the checkout's data/ folder"


def test_readme_command_extraction_joins_lines_and_drops_comments():
    text = "```bash\nmolgen a --x 1 \\\n    --y 'p # q'   # note\n# only a comment\n```\n```python\nmolgen no\n```\n"
    assert readme_commands(text) == ["molgen a --x 1 --y 'p # q'"]


def test_readme_fine_tune_and_sample_run_outside_the_checkout(tmp_path):
    """The README's conditional fine-tune from `--init-from default`, run where no data/ folder exists."""
    env = _env(PYTHONPATH=str(ROOT))
    fine_tune = next(c for c in readme_commands() if c.startswith("molgen train --out runs/f"))
    done = _run(sys.executable, small(fine_tune), tmp_path, env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "architecture from default" in done.stderr and (tmp_path / "runs/f/model.safetensors").is_file()
    sample = small("molgen sample --model runs/f --condition logp=2.5 -o c.csv")
    done = _run(sys.executable, sample, tmp_path, env)
    assert done.returncode == 0, done.stderr[-2000:]
    header = (tmp_path / "c.csv").read_text().splitlines()[0]
    assert header.startswith("smiles,mw,logp,qed,sa,")


def run_readme(python: str, folder: Path, env: dict) -> None:
    _inputs(folder)
    for command in readme_commands():
        if skip_reason(command) is not None:
            continue
        args = small(command)
        done = _run(python, args, folder, env)
        assert done.returncode == 0, f"README command failed: {' '.join(args)}\n{done.stderr[-3000:]}"


def _installed_venv(tmp_path: Path) -> str:
    """A virtual environment holding the molgen wheel (dependencies from this interpreter's site-packages)."""
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(ROOT)],
        check=True, capture_output=True,
    )  # fmt: skip
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True, check=True)
    # The dependencies come from here by path; this interpreter's .pth files (an editable molgen) are not read there.
    Path(site.stdout.strip(), "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    wheel = next(wheels.glob("molgen-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", site.stdout.strip(), str(wheel)], check=True, capture_output=True)
    return python


@pytest.mark.slow
def test_every_readme_command_runs_on_an_installed_wheel(tmp_path):
    python = _installed_venv(tmp_path)
    folder = tmp_path / "work"
    folder.mkdir()
    where = subprocess.run(
        [python, "-c", "import molgen, molgen.pretrained as p; print(molgen.__file__); print(p.data_dir())"],
        cwd=folder, capture_output=True, text=True, check=True, env=_env(),
    ).stdout.split()  # fmt: skip
    assert where[0].startswith(str(tmp_path / "venv")), where
    assert where[1].endswith(os.path.join("molgen", "_data")), where
    run_readme(python, folder, _env())
