"""The ``molgen`` Typer application and its global options (the standardisation policy)."""

from __future__ import annotations

import typer

__all__ = ["app", "data_app"]

# Help text is printed as written: rich markup would eat "[gradient]" and SMILES such as c1cc[nH]c1.
app = typer.Typer(add_completion=False, no_args_is_help=True, help="Molecular design with deep generative models.", rich_markup_mode=None)
data_app = typer.Typer(no_args_is_help=True, help="Data sets: materialise the MOSES sets into the local cache.", rich_markup_mode=None)
app.add_typer(data_app, name="data")

# The input standardisation policy of this invocation (molgen.chem.standardization), set by the global options.
_POLICY: dict[str, object] = {}


@app.callback()
def _standardisation_options(
    keep_salts: bool = typer.Option(False, "--keep-salts", help="keep every fragment (default: strip salts and solvents, keeping the largest organic fragment)"),
    neutralize: bool = typer.Option(False, "--neutralize", help="neutralise charges where a neutral form exists (default: keep charges)"),
    drop_stereo: bool = typer.Option(False, "--drop-stereo", help="remove stereochemistry from input molecules (default: keep it)"),
    drop_isotopes: bool = typer.Option(False, "--drop-isotopes", help="remove isotope labels from input molecules (default: keep them)"),
) -> None:
    """Molecular design with deep generative models.

    Every molecule read from a file goes through one standardisation policy (salts stripped; charges, stereo
    and isotopes kept) and each change is counted on stderr; the options before the command change it.
    """
    _POLICY.clear()
    _POLICY.update(
        strip_salts=not keep_salts, charges="neutralize" if neutralize else "keep",
        stereo="drop" if drop_stereo else "keep", isotopes="drop" if drop_isotopes else "keep",
    )  # fmt: skip
