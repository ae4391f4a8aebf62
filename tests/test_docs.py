"""The user docs stay true: the CLI reference matches the commands, links resolve, the README stays a front door."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def _generator():
    spec = importlib.util.spec_from_file_location("gen_cli_reference", ROOT / "scripts" / "gen_cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_is_regenerated_exactly():
    """docs/cli.md is what the commands' --help says now; if this fails, run python scripts/gen_cli_reference.py."""
    assert _generator().render() == (DOCS / "cli.md").read_text(), "docs/cli.md is stale: run python scripts/gen_cli_reference.py"


@pytest.mark.parametrize("columns", ["40", "250"])
def test_cli_reference_does_not_depend_on_the_terminal_width(monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", columns)
    assert _generator().render() == (DOCS / "cli.md").read_text()


def test_cli_reference_covers_every_command_and_subcommand():
    import typer

    from molgen.cli import app

    root = typer.main.get_command(app)
    text = (DOCS / "cli.md").read_text()
    ctx = root.context_class(root, info_name="molgen")
    paths = []
    for name in root.list_commands(ctx):
        command = root.get_command(ctx, name)
        paths.append(f"molgen {name}")
        if hasattr(command, "list_commands"):
            sub_ctx = command.context_class(command, info_name=name, parent=ctx)
            paths += [f"molgen {name} {sub}" for sub in command.list_commands(sub_ctx)]
    assert any(len(p.split()) == 3 for p in paths), "the app has groups (data, image, predictor)"
    for path in paths:
        assert f"## `{path}`\n" in text, f"{path} is missing from docs/cli.md"
        assert f"Usage: {path} " in text


def test_generator_check_mode_reports_a_stale_page(tmp_path):
    stale = tmp_path / "cli.md"
    stale.write_text("# old\n")
    generator = _generator()
    assert generator.main(["--check", "--out", str(stale)]) == 1
    assert generator.main(["--out", str(stale)]) == 0 and generator.main(["--check", "--out", str(stale)]) == 0


def test_readme_is_a_front_door_whose_first_commands_are_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 200
    first_block = readme.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    assert first_block == ['pip install -e ".[dev]" && molgen sample -n 1000 -o samples.csv', "python -m pytest -q"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install --quiet -e ".[dev]"' in ci and "\npython -m pytest -q\n" in ci
    for page in ("docs/results.md", "docs/cli.md", "docs/changelog.md", "docs/index.md"):
        assert f"]({page})" in readme, f"README links {page}"


def _without_code(text: str) -> str:
    """Markdown outside fenced code blocks (links there are not links)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: link text only, no backticks, lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors = set()
    for line in _without_code(page.read_text()).splitlines():
        if line.startswith("#"):
            slug = _slug(line.lstrip("#"))
            anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
            seen[slug] = seen.get(slug, 0) + 1
    return anchors


def test_slug_matches_githubs_rule():
    assert _slug(" `molgen image train`") == "molgen-image-train"
    assert _slug(" 2026-11-23: the first GPU") == "2026-11-23-the-first-gpu"
    assert _slug(" Design workflows: keep a core, stay near a lead") == "design-workflows-keep-a-core-stay-near-a-lead"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_and_anchor_resolves(page):
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", _without_code(page.read_text())):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(f"{target}: no heading with that anchor")
    assert not broken, f"{page.name}: " + "; ".join(broken)


@pytest.mark.parametrize("page", [ROOT / "README.md", DOCS / "results.md", DOCS / "index.md"], ids=lambda p: p.name)
def test_named_docs_files_exist(page):
    """Every `docs/...` file a front page names as a source of its numbers is there."""
    named = set(re.findall(r"`(docs/[\w./-]+\.(?:json|png|csv|md))`", page.read_text()))
    missing = sorted(n for n in named if not (ROOT / n).exists())
    assert not missing, missing


def test_generator_walks_any_typer_app_in_plain_text_even_with_rich_help():
    """The restructured CLI may turn typer's rich help on; the reference must still be plain, complete text."""
    import typer

    toy = typer.Typer(rich_markup_mode="rich", help="Toy app.")
    group = typer.Typer(help="A group.")
    toy.add_typer(group, name="grp")

    @toy.command("run")
    def run(n: int = typer.Option(3, "-n", help="how many")):
        """Run it."""

    @group.command("inner")
    def inner():
        """Inner command."""

    @group.command("secret", hidden=True)
    def secret():
        """Not listed."""

    entries = list(_generator()._walk(typer.main.get_command(toy), ["toy"]))
    assert [p for p, _, _ in entries] == [["toy"], ["toy", "run"], ["toy", "grp"], ["toy", "grp", "inner"]]
    run_help = entries[1][1]
    assert run_help.startswith("Usage: toy run [OPTIONS]") and "how many" in run_help and "[default: 3]" in run_help
    assert "╭" not in "".join(text for _, text, _ in entries)  # no rich boxes
