"""Atomic output files, a lock for run folders, and safe reading of NumPy files.

Results are written under a temporary name in the destination folder and
renamed into place only when complete, so an interrupted command never leaves
a file that looks finished. A full disk surfaces as a one-line error.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from molgen.errors import DataError, MolgenError

__all__ = ["atomic_output", "atomic_write_text", "RunLock", "DiskFullError", "load_numpy", "load_npz_arrays"]

# "No space left on device" and "disk quota exceeded" mean the same to a user.
_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


class DiskFullError(MolgenError, OSError):
    """The disk (or the user's quota) filled up while writing an output; the output was not created."""


_NUMPY_MAGIC = (b"\x93NUMPY", b"PK\x03\x04", b"PK\x05\x06")  # .npy, .npz (an empty .npz too)


def load_numpy(path: str | os.PathLike, what: str, fix: str):
    """``np.load(path, allow_pickle=False)`` of a ``.npy`` or ``.npz`` file, else a one-line :class:`DataError`.

    The error says that ``path`` is not ``what`` and ends with ``fix``. A file
    that is neither format is refused before NumPy sees it (NumPy would call it
    pickled data and suggest unpickling it); pickles are never loaded.
    """
    import zipfile

    import numpy as np

    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(6)
    except OSError as exc:
        raise DataError(f"cannot read {what} from {path} ({exc.strerror or exc}); {fix}") from None
    if not head.startswith(_NUMPY_MAGIC):
        raise DataError(f"{path} is not {what}: it is not a NumPy .npy or .npz file; {fix}")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path} is not {what} ({_reason(exc)}); {fix}") from None


def load_npz_arrays(path: str | os.PathLike, names, what: str, fix: str) -> dict:
    """The arrays ``names`` of an ``.npz`` archive (:func:`load_numpy`), or a one-line :class:`DataError`."""
    import zipfile

    import numpy as np

    data = load_numpy(path, what, fix)
    if isinstance(data, np.ndarray):
        raise DataError(f"{path} is not {what} (a single array, not an .npz archive); {fix}")
    try:
        with data:
            return {name: data[name] for name in names}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path} is not {what} ({_reason(exc)}); {fix}") from None


def _reason(exc: BaseException) -> str:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return "it holds Python objects, which molgen never unpickles" if "allow_pickle" in reason else reason


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, mode: str = "wb") -> Iterator:
    """Open a temporary sibling of ``path`` for writing; rename it over ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched
    (an older file there stays as it was). A full disk raises
    :class:`DiskFullError`, one line that names ``path``.

    >>> with atomic_output("out.txt", "w") as fh:  # doctest: +SKIP
    ...     fh.write("done")
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        _raise_if_disk_full(exc, path)
        raise
    kwargs = {} if "b" in mode else {"encoding": "utf-8", "newline": ""}
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except OSError as exc:
        _discard(tmp)
        _raise_if_disk_full(exc, path)
        raise
    except BaseException:
        _discard(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_output(path, "w") as fh:
        fh.write(text)


def _raise_if_disk_full(exc: OSError, path: Path) -> None:
    if exc.errno in _DISK_FULL:
        raise DiskFullError(f"disk full while writing {path} (nothing was written there); free some space and run again") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _discard(tmp: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)


class RunLock:
    """An exclusive lock on a run folder, held for the life of a command.

    A second process that tries to write into the same folder gets a
    MolgenError naming the holder's PID instead of interleaving its output.
    Uses ``fcntl.flock`` so the lock disappears with the process, even after
    ``kill -9``.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.path = Path(folder) / ".lock"
        self._fh = None

    def __enter__(self) -> RunLock:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise MolgenError(
                f"{self.path.parent} is in use by another molgen process (pid {holder}); "
                "wait for it to finish or choose another --out folder"
            ) from None
        if not _same_file(self.path, fh):
            # The holder removed the file as we opened it: our lock is on an orphan, so the folder is not ours.
            fh.close()
            raise MolgenError(f"{self.path.parent} was in use by another molgen process a moment ago; run the command again")
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh
        return self

    def __exit__(self, *exc) -> None:
        if self._fh is not None:
            # Removed while still held, so no stale .lock stays in the output folder.
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            self._fh.close()
            self._fh = None


def _same_file(path: Path, fh) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fh.fileno()).st_ino
    except FileNotFoundError:
        return False
