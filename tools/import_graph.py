"""The import graph of deqbench's own modules, function-level imports included.

``python tools/import_graph.py`` prints, per folder, the number of modules and the longest
module and function, then the import circles (between modules and between sub-packages of
harness/) and the upward imports (a module importing a package that contains it, e.g.
``deqbench.harness.results.rows`` importing ``deqbench``): each one a line. Exit code 1
when there is a circle or an upward import. tests/test_architecture.py runs the same checks.

Modules are named as installed (``deqbench.harness.run.runner`` for harness/run/runner.py,
pyproject.toml's package-dir mapping), so the folders read as the packages they are.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Source folder -> the package it is installed as (pyproject.toml's [tool.setuptools.package-dir]).
FOLDERS = {
    "deqbench": "deqbench",
    "strategies": "deqbench.strategies",
    "problems": "deqbench.problems",
    "harness": "deqbench.harness",
}


def modules() -> dict[str, Path]:
    """Installed module name -> source file, for every .py file of the package folders."""
    found = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


def runtime_nodes(tree: ast.AST):
    """Every node of the tree except those under ``if TYPE_CHECKING:`` (never run)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                stack.extend(child.orelse)
                continue
            stack.append(child)


def imported_names(tree: ast.AST, module: str, is_package: bool, known: set[str]) -> set[str]:
    """Every module name an import statement anywhere in the file (functions included) names."""
    names = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in runtime_nodes(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                # `from package import submodule` imports the submodule; any other name
                # comes from the package's __init__, which is then imported for it.
                full = f"{base}.{alias.name}"
                names.add(full if full in known else base)
    return names


def import_graph() -> dict[str, set[str]]:
    """Module -> the deqbench modules it imports (a from-import of a module counts as one)."""
    known = modules()
    graph = {}
    for name, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        targets = imported_names(tree, name, path.name == "__init__.py", set(known))
        graph[name] = {t for t in targets if t in known and t != name}
    return graph


def upward_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(module, package) where the module imports a package that contains it."""
    return sorted((m, t) for m, targets in graph.items() for t in targets if m.startswith(t + "."))


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan's algorithm)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def subpackage_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """harness sub-package -> the harness sub-packages its modules import."""

    def room(module):
        parts = module.split(".")
        return ".".join(parts[:3]) if module.startswith("deqbench.harness.") and len(parts) > 3 else None

    rooms = defaultdict(set)
    for module, targets in graph.items():
        source = room(module)
        if source is None:
            continue
        rooms[source].update(r for r in map(room, targets) if r is not None and r != source)
    return dict(rooms)


def longest(paths) -> tuple[str, int, str, int]:
    """The longest module (lines) and the longest function (lines) among ``paths``."""
    module, module_lines, function, function_lines = "", 0, "", 0
    for path in paths:
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        if lines > module_lines:
            module, module_lines = str(path.relative_to(ROOT)), lines
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > function_lines:
                    function, function_lines = f"{path.relative_to(ROOT)}:{node.name}", length
    return module, module_lines, function, function_lines


def main() -> int:
    graph = import_graph()
    by_folder = defaultdict(list)
    for path in modules().values():
        by_folder[path.parent.relative_to(ROOT)].append(path)
    for folder, paths in sorted(by_folder.items()):
        module, module_lines, function, function_lines = longest(paths)
        print(
            f"{folder}/: {len(paths)} modules; longest {module} ({module_lines} lines), "
            f"{function} ({function_lines} lines)"
        )
    print(f"modules: {len(graph)}, import arrows: {sum(map(len, graph.values()))}")
    problems = 0
    for circle in circles(graph):
        print("module circle:", " <-> ".join(circle))
        problems += 1
    for circle in circles(subpackage_graph(graph)):
        print("sub-package circle:", " <-> ".join(circle))
        problems += 1
    for module, package in upward_imports(graph):
        print(f"upward import: {module} -> {package}")
        problems += 1
    print(f"{problems} circles or upward imports")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
