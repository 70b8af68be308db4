"""The house: imports run one way, every folder's README maps its modules, public names resolve.

The import graph is tools/import_graph.py's (function-level imports included): no circle
between modules or between harness sub-packages, and no module importing a package that
contains it.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HARNESS_PACKAGES = sorted(p.name for p in (ROOT / "harness").iterdir() if (p / "__init__.py").exists())
#: Packages with a public face (an __init__.pyi); cli/ is reached through its modules.
PUBLIC_PACKAGES = sorted(p.parent.name for p in (ROOT / "harness").glob("*/__init__.pyi"))
#: Folders whose README is the map of their modules: every .py file named in it.
MAPPED_FOLDERS = [
    "deqbench",
    "strategies",
    "problems",
    "benchmarks",
    "tools",
    "tests",
    "tests/fixtures",
    "examples",
    "harness",
    *(f"harness/{name}" for name in HARNESS_PACKAGES),
]


def load_import_graph():
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "tools" / "import_graph.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_module_circle_and_no_upward_import():
    tool = load_import_graph()
    graph = tool.import_graph()
    assert len(graph) > 50  # the walk found the package folders
    assert tool.circles(graph) == []
    assert tool.circles(tool.subpackage_graph(graph)) == []
    assert tool.upward_imports(graph) == []


def test_the_graph_sees_function_level_imports():
    """A circle made of imports inside functions is still a circle."""
    tool = load_import_graph()
    source = "def late():\n    from deqbench.harness.run import runner\n"
    names = tool.imported_names(
        __import__("ast").parse(source),
        "deqbench.harness.results.rows",
        False,
        {"deqbench.harness.run.runner"},
    )
    assert names == {"deqbench.harness.run.runner"}


@pytest.mark.parametrize("folder", MAPPED_FOLDERS)
def test_every_module_is_on_its_folders_map(folder):
    readme = (ROOT / folder / "README.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`([\w./-]+\.py)`", readme))
    modules = {p.name for p in (ROOT / folder).glob("*.py") if p.name != "__init__.py"}
    missing = sorted(m for m in modules if m not in named and f"{folder}/{m}" not in named)
    assert not missing, f"{folder}/README.md does not name {', '.join(missing)}"


@pytest.mark.parametrize("package", PUBLIC_PACKAGES)
def test_every_public_name_resolves(package):
    module = importlib.import_module(f"deqbench.harness.{package}")
    assert module.__all__, f"deqbench.harness.{package} names nothing"
    for name in module.__all__:
        assert getattr(module, name) is not None, f"deqbench.harness.{package}.{name}"


def test_importing_deqbench_keeps_plotting_jax_and_dask_out():
    script = (
        "import sys, deqbench, deqbench.harness.results, deqbench.harness.run\n"
        "heavy = [m for m in ('matplotlib', 'seaborn', 'jax', 'dask', 'distributed') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)


#: Harness modules any test may import by path: the CLI's entry point (cli/ has no public
#: face) and the root modules every sub-package shares.
SHARED_BY_PATH = {"cli.main:main", "options", "references"}
HARNESS_IMPORT = re.compile(
    r"^\s*from deqbench\.harness\.([a-z_]+)(?:\.([a-z_]+))? import \(?([A-Za-z_,\s]+?)\)?\s*(?:#.*)?$", re.M
)


def internal_imports(source: str) -> list[str]:
    """The harness names a test module imports that are not a package's public names."""
    public = {
        package: set(
            re.findall(r" as ([A-Za-z_]+)", (ROOT / "harness" / package / "__init__.pyi").read_text())
        )
        for package in PUBLIC_PACKAGES
    }
    found = []
    for package, module, names in HARNESS_IMPORT.findall(source):
        imported = [n.split(" as ")[0].strip() for n in names.split(",") if n.strip()]
        if package in SHARED_BY_PATH or f"{package}.{module}:{','.join(imported)}" in SHARED_BY_PATH:
            continue
        if module or any(name not in public.get(package, ()) for name in imported):
            found.append(f"{package}{'.' + module if module else ''}: {', '.join(imported)}")
    return found


@pytest.mark.parametrize(
    "path",
    sorted([*(ROOT / "tests").glob("*.py"), *(ROOT / "benchmarks").glob("*.py")]),
    ids=lambda p: p.name,
)
def test_tests_use_public_names_or_say_they_test_internals(path):
    source = path.read_text()
    internal = internal_imports(source)
    docstring = source.split('"""')[1] if source.startswith('"""') else ""
    assert not internal or "internals" in docstring, (
        f"{path.name} imports {internal}: use the public names, or say in its docstring that it "
        "tests internals"
    )


def test_the_public_names_check_sees_an_internal_import():
    assert internal_imports("from deqbench.harness.report.units import format_bytes\n")
    assert internal_imports("    from deqbench.harness.run import runner\n")
    assert not internal_imports("from deqbench.harness.results import RunFolder, rows\n")
    assert not internal_imports("from deqbench.harness.cli.main import main\n")
