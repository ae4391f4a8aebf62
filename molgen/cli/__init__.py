"""The ``molgen`` command line: argument parsing and wiring only.

Every command is a thin call into the library, one module per area. Domain errors
(:class:`~molgen.errors.MolgenError`) are printed as one line without a
traceback and exit with status 2.
"""

from __future__ import annotations

import sys

from molgen.cli import evaluate, image, info, model, optimize, sample, train  # noqa: F401, I001  (registers the commands, in help order)
from molgen.cli._app import app
from molgen.cli._common import _quiet_rdkit, _warnings_to_console
from molgen.console import error
from molgen.errors import MolgenError
from molgen.utils.threads import openmp_wait_policy_for

__all__ = ["app", "main"]

def _os_error(exc: OSError) -> str:
    where = f" ({exc.filename})" if exc.filename else ""
    return f"{exc.strerror or exc}{where}; check the path, its permissions and the free disk space"


def main(argv: list[str] | None = None) -> int:
    """Console entry point: run the app; print domain errors as one line (exit status 2)."""
    openmp_wait_policy_for(sys.argv[1:] if argv is None else argv)
    _quiet_rdkit()
    try:
        with _warnings_to_console(every=False):
            app(args=argv, prog_name="molgen")
    except MolgenError as exc:
        error(exc)
        return 2
    except KeyboardInterrupt:
        error("; partial outputs were not written (use --resume to continue training)", prefix="interrupted")
        return 130
    except OSError as exc:
        # The file system said no (full disk, permissions, a vanished folder): one line, not a traceback.
        error(_os_error(exc))
        return 2
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0
