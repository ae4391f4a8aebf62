"""The full MOSES benchmark splits, cached locally.

MOSES (Polykovskiy et al., "Molecular Sets (MOSES): A Benchmarking Platform
for Molecular Generation Models", Front. Pharmacol. 2020; MIT licence) ships
its splits inside the ``molsets`` wheel on PyPI as
``moses/dataset/data/{train,test,test_scaffolds}.csv.gz`` together with the
precomputed reference statistics ``test_stats.npz`` and
``test_scaffolds_stats.npz``. :func:`materialize_moses` copies those five
files out of the wheel into a flat cache folder, checking each against the
sha256 the wheel's ``RECORD`` lists; :func:`moses_split` finds them later.

The cache folder is ``cache_dir`` when given, else ``$MOLGEN_CACHE/moses``,
else ``~/.cache/molgen/moses``.

A command whose default needs these sets (``molgen score``'s reference,
``molgen benchmark --reference moses-test``) never asks the user to fetch
them: :func:`moses_split` downloads the wheel itself the first time a file is
missing (``fetch=True``), saying so on stderr. Without network it fails with
one line that names the offline route, ``molgen data moses --wheel PATH``.
Set ``MOLGEN_OFFLINE=1`` to forbid the automatic download (the explicit
``molgen data moses`` still downloads).
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO

from molgen.errors import ConfigError, DataError

__all__ = ["MOSES_VERSION", "MOSES_FILES", "default_cache_dir", "materialize_moses", "moses_split"]

MOSES_VERSION = "0.3.1"

#: Cache key -> file name, for every file :func:`materialize_moses` provides.
MOSES_FILES: dict[str, str] = {
    "train": "train.csv.gz",
    "test": "test.csv.gz",
    "test_scaffolds": "test_scaffolds.csv.gz",
    "test_stats": "test_stats.npz",
    "test_scaffolds_stats": "test_scaffolds_stats.npz",
}

_DATA_DIR_IN_WHEEL = "moses/dataset/data"
_OFFLINE = "MOLGEN_OFFLINE"
_BLOCK = 1 << 20


def default_cache_dir() -> Path:
    """``$MOLGEN_CACHE/moses`` if the variable is set, else ``~/.cache/molgen/moses``."""
    root = os.environ.get("MOLGEN_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "molgen"
    return base / "moses"


def materialize_moses(
    cache_dir: str | os.PathLike[str] | None = None,
    wheel: str | os.PathLike[str] | None = None,
) -> dict[str, Path]:
    """Copy the MOSES files into the cache and return ``{key: path}``.

    Args:
        cache_dir: destination folder (see :func:`default_cache_dir`).
        wheel: a local ``molsets`` ``.whl`` file or an unpacked wheel folder;
            when ``None`` the wheel is downloaded from PyPI with
            ``pip download --no-deps molsets==0.3.1``.

    Raises:
        DataError: the download fails, the wheel lacks a file, or a file does
            not match the hash in the wheel's ``RECORD``.
    """
    target = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target.mkdir(parents=True, exist_ok=True)
    if wheel is not None:
        return _extract(Path(wheel).expanduser(), target)
    with tempfile.TemporaryDirectory(prefix="molgen-moses-") as tmp:
        return _extract(_download_wheel(Path(tmp)), target)


def moses_split(name: str, cache_dir: str | os.PathLike[str] | None = None, fetch: bool = True) -> Path:
    """Path of a cached MOSES file: ``"train"``, ``"test"``, ``"test_scaffolds"`` or a ``*_stats`` key.

    A missing file is fetched first (all five, once; see :func:`materialize_moses`)
    unless ``fetch`` is false or ``$MOLGEN_OFFLINE`` is set.

    Raises:
        DataError: the file is missing and cannot be fetched; the message names
            ``molgen data moses --wheel PATH``.
    """
    if name not in MOSES_FILES:
        raise ConfigError(f"unknown MOSES split {name!r}; choose one of {sorted(MOSES_FILES)}")
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    path = folder / MOSES_FILES[name]
    if path.is_file():
        return path
    offline = os.environ.get(_OFFLINE, "").strip().lower() not in ("", "0", "false", "no")
    if not fetch or offline:
        why = f" and {_OFFLINE} forbids downloading it" if fetch else ""
        raise DataError(
            f"MOSES {name} file not found in {folder}{why}; run `molgen data moses` "
            "(add --wheel PATH to use a local molsets wheel without network)"
        )
    _fetch(folder)
    return path


def _fetch(folder: Path) -> None:
    """Download and unpack the MOSES sets into ``folder``, with a line before and after on stderr."""
    print(
        f"MOSES data not in {folder} yet: downloading molsets {MOSES_VERSION} from PyPI (once) ...",
        file=sys.stderr,
        flush=True,
    )
    start = time.perf_counter()
    try:
        paths = materialize_moses(cache_dir=folder)
    except DataError as exc:
        raise DataError(
            f"the MOSES sets are not in {folder} and could not be downloaded ({exc}); without network, "
            f"run `molgen data moses --wheel PATH` with a local molsets-{MOSES_VERSION} wheel"
        ) from None
    size = sum(p.stat().st_size for p in paths.values()) / 1e6
    print(f"MOSES data ready in {folder} ({size:.0f} MB, {time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)


# -- internals -----------------------------------------------------------------

_Opener = Callable[[str], AbstractContextManager[BinaryIO]]


def _download_wheel(folder: Path) -> Path:
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        f"molsets=={MOSES_VERSION}", "-d", str(folder),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(folder.glob("molsets-*.whl"))
    if proc.returncode != 0 or not wheels:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        why = lines[-1] if lines else f"exit status {proc.returncode}"
        raise DataError(
            f"could not download molsets {MOSES_VERSION} from PyPI ({why}); "
            "check the network or pass a local wheel with --wheel PATH"
        )
    return wheels[0]


def _extract(wheel: Path, target: Path) -> dict[str, Path]:
    if not wheel.exists():
        raise DataError(f"molsets wheel {wheel} not found; check the path")
    if wheel.is_dir():
        return _copy_all(wheel, target, _folder_opener(wheel), _folder_record(wheel))
    try:
        archive = zipfile.ZipFile(wheel)
    except zipfile.BadZipFile:
        raise DataError(f"{wheel} is not a wheel (not a zip archive); pass the molsets-{MOSES_VERSION} .whl file") from None
    with archive:
        names = set(archive.namelist())
        record = next((n for n in names if n.endswith(".dist-info/RECORD")), None)
        record_text = archive.read(record).decode("utf-8") if record else ""
        return _copy_all(wheel, target, _zip_opener(archive, names, wheel), record_text)


def _zip_opener(archive: zipfile.ZipFile, names: set[str], wheel: Path) -> _Opener:
    def opener(member: str) -> AbstractContextManager[BinaryIO]:
        if member not in names:
            raise DataError(f"{wheel} has no {member}; pass the molsets-{MOSES_VERSION} wheel")
        return archive.open(member)

    return opener


def _folder_opener(folder: Path) -> _Opener:
    def opener(member: str) -> AbstractContextManager[BinaryIO]:
        path = folder / member
        if not path.is_file():
            raise DataError(f"{folder} has no {member}; pass an unpacked molsets-{MOSES_VERSION} wheel")
        return open(path, "rb")

    return opener


def _folder_record(folder: Path) -> str:
    records = sorted(folder.glob("molsets-*.dist-info/RECORD"))
    return records[0].read_text(encoding="utf-8") if records else ""


def _record_hashes(record_text: str) -> dict[str, str]:
    """``{member: urlsafe-base64 sha256}`` from a wheel RECORD (PEP 376/427)."""
    hashes = {}
    for line in record_text.splitlines():
        parts = line.rsplit(",", 2)
        if len(parts) == 3 and parts[1].startswith("sha256="):
            hashes[parts[0]] = parts[1].removeprefix("sha256=")
    return hashes


def _copy_all(wheel: Path, target: Path, opener: _Opener, record_text: str) -> dict[str, Path]:
    hashes = _record_hashes(record_text)
    out = {}
    for key, filename in MOSES_FILES.items():
        member = f"{_DATA_DIR_IN_WHEEL}/{filename}"
        with opener(member) as src:
            out[key] = _copy_verified(src, target / filename, hashes.get(member), f"{wheel}:{member}")
    return out


def _copy_verified(src: BinaryIO, dest: Path, expected: str | None, label: str) -> Path:
    """Copy to ``dest`` via a temporary file; refuse content whose sha256 differs from ``expected``."""
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            while block := src.read(_BLOCK):
                digest.update(block)
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
        actual = base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode("ascii")
        if expected is not None and actual != expected:
            raise DataError(f"{label} does not match the sha256 in the wheel's RECORD; the wheel is corrupted, download it again")
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest
