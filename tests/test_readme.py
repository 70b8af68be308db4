"""What the README promises: its two commands exist, every command it shows parses, every
link into the repository resolves, and it stays a front door (under about 200 lines)."""

import re
import shlex
from pathlib import Path

from test_docs import check_command_lines, makefile_targets

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)


def test_the_quick_start_commands_are_makefile_targets():
    quick_start = bash_blocks()[0]
    commands = [shlex.split(line, comments=True) for line in quick_start.splitlines()]
    assert [words[:2] for words in commands if words] == [["make", "run"], ["make", "test"]]
    assert {"run", "test", "setup", "docs"} <= makefile_targets()
    # make run is what the README says it is: deqbench run, every strategy, quick sizes
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^run: setup\n\t(.*)$", makefile, flags=re.M).group(1)
    assert "/deqbench run " in recipe and "--strategy all" in recipe and "--quick" in recipe


def test_every_command_in_the_readme_parses():
    for block in bash_blocks():
        check_command_lines(block, "README.md")


def test_every_relative_link_resolves():
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README.read_text())
    local = [link for link in links if not re.match(r"\w+://", link)]
    assert local, "the README lost its links into the docs"
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing, f"README links to missing files: {missing}"


def test_the_readme_is_a_front_door():
    assert len(README.read_text().splitlines()) < 200
