"""Write docs/cli.md, the command-line reference, from the commands' own ``--help``.

It walks the ``molgen`` application (``molgen.cli.app``) recursively: every
command and every group (``data``, ``image``, ``predictor``, and whatever is
added later), in the order ``molgen --help`` lists them, hidden commands left
out. Each gets a heading and its help text exactly as the terminal shows it,
formatted at a fixed width so the file does not depend on the terminal it was
made in. ``tests/test_docs.py`` regenerates it and compares, so a changed
option that is not re-documented fails the tests.

    python scripts/gen_cli_reference.py            # writes docs/cli.md
    python scripts/gen_cli_reference.py --check    # exit 1 if docs/cli.md is stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "cli.md"

#: Help is wrapped at this many columns whatever the terminal (click's own default cap is 80).
WIDTH = 88

HEADER = """\
# Command-line reference

Generated from the commands' own `--help` by `python scripts/gen_cli_reference.py`; do not edit by
hand (`tests/test_docs.py` fails when this page and the commands disagree). Options given before
the command name (`molgen --drop-stereo train ...`) belong to `molgen` itself and are listed first.
Worked examples: the guides linked from [the docs index](index.md).
"""


def _root_command():
    """The click command behind ``molgen`` (typer builds it; no direct click import, as new typers vendor click)."""
    import typer

    from molgen.cli import app

    return typer.main.get_command(app)


def _walk(command, path: list[str], parent=None):
    """Yield (path, help text, subcommand names) for ``command`` and everything below it, depth first."""
    if getattr(command, "rich_markup_mode", None) is not None:
        command.rich_markup_mode = None  # typer's rich help prints to the console; the plain click help is the text
    ctx = command.context_class(command, info_name=path[-1], parent=parent, terminal_width=WIDTH, max_content_width=WIDTH)
    text = command.get_help(ctx).rstrip() + "\n"
    names = []
    if hasattr(command, "list_commands"):  # a group
        names = [n for n in command.list_commands(ctx) if not command.get_command(ctx, n).hidden]
    yield path, text, names
    for name in names:
        yield from _walk(command.get_command(ctx, name), [*path, name], ctx)


def _anchor(path: list[str]) -> str:
    """GitHub's heading anchor for ``## `molgen a b` ``: lower case, spaces to dashes, no backticks."""
    return "-".join(path).lower()


def render() -> str:
    """The whole of docs/cli.md as a string."""
    entries = list(_walk(_root_command(), ["molgen"]))
    lines = [HEADER, "## Commands", ""]
    for path, _, _ in entries[1:]:
        indent = "  " * (len(path) - 2)
        lines.append(f"{indent}- [`{' '.join(path)}`](#{_anchor(path)})")
    lines.append("")
    for path, text, _ in entries:
        lines += [f"## `{' '.join(path)}`", "", "```text", text.rstrip("\n"), "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--check", action="store_true", help="compare with --out instead of writing it")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.out.read_text() if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is stale: run python scripts/gen_cli_reference.py", file=sys.stderr)
            return 1
        return 0
    args.out.write_text(text)
    print(f"wrote {args.out} ({text.count(chr(10))} lines)")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))  # the checkout's molgen, not an installed one
    raise SystemExit(main())
