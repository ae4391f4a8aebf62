"""The consoles every ``molgen`` command prints through, with console markup switched off.

Rich reads ``[...]`` in printed text as markup and silently drops what it
takes for a tag, which turns the SMILES ``c1ccc2[nH]ccc2c1`` into
``c1ccc2ccc2c1``: a different molecule. These consoles never interpret
markup (nor colour numbers or paths by guesswork), so user data -- SMILES,
file names, error messages -- prints verbatim; colour comes only from the
``style`` the helpers below give a whole line or its prefix.

Example::

    >>> from molgen.console import warn
    >>> warn("CC[N+](C)(C)C is charged")   # doctest: +SKIP
"""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

__all__ = ["err", "out", "note", "warn", "error", "styled"]

err = Console(stderr=True, soft_wrap=True, markup=False, highlight=False)
out = Console(soft_wrap=True, markup=False, highlight=False)


def styled(message: str, style: str, console: Console = err) -> None:
    """Print ``message`` verbatim in one style."""
    console.print(Text(str(message), style=style))


def note(message: str) -> None:
    """A dim side remark on stderr (what was assumed or chosen)."""
    styled(message, "dim")


def warn(message: str, prefix: str = "warning: ") -> None:
    """A yellow ``warning:`` line on stderr; the message itself printed verbatim."""
    err.print(Text.assemble((prefix, "yellow"), str(message)))


def error(message: str, prefix: str = "error: ") -> None:
    """A red ``error:`` line on stderr; the message itself printed verbatim."""
    err.print(Text.assemble((prefix, "red"), str(message)))
