"""The documentation's code runs as written.

A page marks the code blocks a test takes up with an HTML comment on the line before the
fence (the site does not show it):

- ``<!-- test: run -->`` runs a ``bash`` or ``python`` block, in a temporary folder of the
  page's own, the page's blocks in order (a later block may read what an earlier one wrote);
- ``<!-- test: parse -->`` checks every ``deqbench ...`` line of a ``bash`` block against the
  CLI (the command and each option exist, every value parses) and every ``make TARGET``
  against the Makefile, without running them: for commands that need hours, a cluster or
  a git history.

A ``python`` block titled as a file (``title="goursat.py"``) is written to that file in the
page's folder before any block runs. Unmarked blocks are shown, not run. The runnable
blocks are at quick sizes: the whole module stays within about a minute on two cores.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
BLOCK = re.compile(
    r"(?:<!-- test: (?P<mark>run|parse) -->\n)?```(?P<lang>\w+)(?P<info>[^\n]*)\n(?P<code>.*?)^```",
    flags=re.S | re.M,
)
TITLE = re.compile(r'title="([^"]+)"')


def blocks(path: Path) -> list[dict[str, str]]:
    return [match.groupdict() for match in BLOCK.finditer(path.read_text())]


def pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def pages_with(mark: str) -> list[Path]:
    return [page for page in pages() if any(b["mark"] == mark for b in blocks(page))]


def command_lines(code: str) -> list[list[str]]:
    """The shell words of each command line (continuations joined, comments dropped)."""
    joined = code.replace("\\\n", " ")
    return [words for line in joined.splitlines() if (words := shlex.split(line, comments=True))]


def check_deqbench_command(words: list[str]) -> None:
    """Parse a ``deqbench ...`` command line as click would, down to the subcommand's
    options, without invoking anything."""
    from deqbench.harness.cli.main import main

    command, args, parent = main, words[1:], None
    name = "deqbench"
    while True:
        context = command.make_context(name, list(args), parent=parent)
        if not isinstance(command, click.Group):
            return
        rest = [*context._protected_args, *context.args]
        name, command, args = command.resolve_command(context, rest)
        parent = context


def makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([\w-]+):", text, flags=re.M))


def check_make_command(words: list[str]) -> None:
    targets = [word for word in words[1:] if "=" not in word and not word.startswith("-")]
    missing = set(targets) - makefile_targets()
    assert not missing, f"make {' '.join(sorted(missing))}: no such Makefile target"


def check_command_lines(code: str, where: str) -> None:
    for words in command_lines(code):
        try:
            if words[0] == "deqbench":
                check_deqbench_command(words)
            elif words[0] == "make":
                check_make_command(words)
        except click.ClickException as error:
            raise AssertionError(f"{where}: {shlex.join(words)}: {error.format_message()}") from None


@pytest.mark.parametrize("page", pages_with("parse"), ids=lambda p: str(p.relative_to(DOCS)))
def test_documented_commands_parse(page):
    for block in blocks(page):
        if block["mark"] == "parse":
            assert block["lang"] == "bash", f"{page}: only bash blocks can be parse-checked"
            check_command_lines(block["code"], str(page.relative_to(ROOT)))


@pytest.mark.parametrize("page", pages_with("run"), ids=lambda p: str(p.relative_to(DOCS)))
def test_tutorial_code_runs_as_written(page, tmp_path):
    page_blocks = blocks(page)
    for block in page_blocks:
        title = TITLE.search(block["info"])
        if title:
            (tmp_path / title.group(1)).write_text(block["code"])
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    for block in page_blocks:
        if block["mark"] != "run":
            continue
        if block["lang"] == "bash":
            check_command_lines(block["code"], str(page.relative_to(ROOT)))
            argv = ["bash", "-euo", "pipefail", "-c", block["code"]]
        elif block["lang"] == "python":
            argv = [sys.executable, "-c", block["code"]]
        else:
            raise AssertionError(f"{page}: cannot run a {block['lang']} block")
        done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (
            f"{page.relative_to(ROOT)}: this block exited {done.returncode}:\n{block['code']}\n"
            f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
        )


def test_the_registry_pages_list_every_problem_and_strategy():
    """The reference pages are generated by docs/hooks/registries.py: check its output
    names every registered class without building the whole site."""
    sys.path.insert(0, str(DOCS / "hooks"))
    try:
        import registries
    finally:
        sys.path.remove(str(DOCS / "hooks"))
    from deqbench.problems.base import PROBLEMS
    from deqbench.strategies.base import STRATEGIES

    problems, strategies = registries.problems_markdown(), registries.strategies_markdown()
    for name in PROBLEMS.names():
        assert f"## `{name}`" in problems
    for name in STRATEGIES.names():
        assert f"## `{name}`" in strategies
