"""The README's Python examples (```python blocks) run as written; ```py blocks show code
that needs what a test machine lacks (a SLURM cluster)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_python_example_runs_and_its_assertions_hold(capsys):
    blocks = python_blocks()
    assert blocks, "the README lost its Python example"
    for block in blocks:
        exec(compile(block, str(README), "exec"), {"__name__": "readme"})
    printed = capsys.readouterr().out
    assert "analytic" in printed and "implicit-vjp" in printed


def test_readme_problem_table_names_every_registered_problem():
    from deqbench.problems.base import PROBLEMS

    table = README.read_text().split("### Problems", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `([\w-]+)` \|", table, flags=re.M))
    assert listed == set(PROBLEMS.names())
