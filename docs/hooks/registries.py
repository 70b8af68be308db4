"""mkdocs hook: reference pages generated from the registries, and the API's source layout.

A page that holds the line ``<!-- registry: problems -->``, ``<!-- registry: strategies -->``
or ``<!-- registry: queries -->`` gets, in its place, what the registry holds, built from the
classes themselves (name, description, module docstring, presets, queries): a new problem or
strategy file appears in the documentation without an edit.
"""

from __future__ import annotations

import inspect
import re
import shutil
import sys
from pathlib import Path

MARKER = "<!-- registry: {} -->"
ROOT = Path(__file__).resolve().parents[2]
#: Where the API reference reads the source from (mkdocs.yml: mkdocstrings' ``paths``).
API_SOURCE = ROOT / "build" / "docs-api"
#: pyproject.toml's package-dir: the folders installed under the ``deqbench`` namespace.
MAPPED = {"strategies": "strategies", "problems": "problems", "harness": "harness"}


def lay_out_api_source() -> None:
    """Lay the package out as it is installed, for the API reference.

    ``strategies/``, ``problems/`` and ``harness/`` are installed as ``deqbench.strategies``
    and so on (setuptools ``package-dir``), which a source reader does not follow: it gets a
    tree of links, ``build/docs-api/deqbench/``, with the core's files and the three folders.
    """
    package = API_SOURCE / "deqbench"
    if package.exists():
        shutil.rmtree(package)
    package.mkdir(parents=True)
    for entry in (ROOT / "deqbench").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for name, folder in MAPPED.items():
        (package / name).symlink_to(ROOT / folder)


def on_startup(command, dirty):
    """Before the build: mkdocstrings reads its source paths in its own ``on_config``, which
    comes before a hook's."""
    lay_out_api_source()


def on_page_markdown(markdown: str, page, config, files) -> str:
    for kind, render in (
        ("problems", problems_markdown),
        ("strategies", strategies_markdown),
        ("queries", queries_markdown),
    ):
        marker = MARKER.format(kind)
        if marker in markdown:
            markdown = markdown.replace(marker, render())
    return markdown


def source_path(cls: type) -> str:
    """The class's file relative to the repository (``problems/tanh.py``)."""
    path = Path(inspect.getsourcefile(cls)).resolve()
    try:
        return str(path.relative_to(ROOT))
    except ValueError:  # installed elsewhere (not an editable install)
        return path.name


def module_doc(cls: type) -> str:
    """The module docstring, less its first line (which repeats the description)."""
    doc = inspect.getdoc(sys.modules[cls.__module__]) or ""
    lines = doc.splitlines()[1:]
    return "\n".join(lines).strip()


def as_list(names) -> str:
    return ", ".join(f"`{name}`" for name in names) if names else "none"


def queries_in_order(names) -> list[str]:
    from deqbench.queries import QUERIES

    return [query for query in QUERIES if query in names]


CODE_SPAN = re.compile(r"(``?[^`]+``?)")


def plain(line: str) -> str:
    """A docstring's prose line for Markdown: ``z*`` and ``a * b`` stay asterisks, not
    emphasis (code spans and indented formula lines are left as they are)."""
    if line.startswith("    "):
        return line
    parts = CODE_SPAN.split(line)
    return "".join(part if CODE_SPAN.fullmatch(part) else part.replace("*", "\\*") for part in parts)


def quoted(doc: str) -> str:
    """A docstring as a block quote, its indented (formula) lines as they are."""
    if not doc:
        return ""
    return "\n".join(f"> {plain(line)}" if line else ">" for line in doc.splitlines()) + "\n"


def queries_markdown() -> str:
    from deqbench.queries import QUERIES

    rows = ["| query | derivative order | what it answers |", "|---|---|---|"]
    rows += [f"| `{q.name}` | {q.order} | {q.description} |" for q in QUERIES.values()]
    return "\n".join(rows) + "\n"


def problems_markdown() -> str:
    from deqbench.problems.base import PROBLEMS, Problem

    out = []
    for cls in PROBLEMS:
        knobs = list(next(iter(cls.presets.values())))
        rows = [
            "| preset | " + " | ".join(knobs) + " |",
            "|---|" + "---|" * len(knobs),
            *(
                f"| `{name}` | " + " | ".join(str(values[k]) for k in knobs) + " |"
                for name, values in cls.presets.items()
            ),
        ]
        partials = {
            "pinn_grad": dict(cls.physics_partials),
            "pinn2_grad": dict(cls.physics2_partials),
        }
        physics = [
            f"- `{query}`: partials {as_list(sorted(set(named.values())))}"
            for query, named in partials.items()
            if named
        ] or ["- no physics loss: `pinn_grad` and `pinn2_grad` are unsupported"]
        has_reference = cls.reference is not Problem.reference
        out += [
            f"## `{cls.name}`",
            "",
            cls.description or "",
            "",
            f"Source: `{source_path(cls)}` · backends: {as_list(cls.backends)} · "
            f"`jvp` along `{cls.jvp_direction}` · closed-form reference: "
            f"{'yes' if has_reference else 'no (oracle only)'}",
            "",
            *physics,
            "",
            *rows,
            "",
            quoted(module_doc(cls)),
        ]
    return "\n".join(out)


def strategies_markdown() -> str:
    from deqbench.strategies.base import STRATEGIES

    out = [
        "| strategy | backend | supports | claims exact | library |",
        "|---|---|---|---|---|",
    ]
    for cls in STRATEGIES:
        supported = queries_in_order(cls.supported_queries)
        exact = queries_in_order(cls.exact_queries)
        claimed = "all it supports" if exact == supported else as_list(exact)
        out.append(
            f"| [`{cls.name}`](#{cls.name}) | {cls.backend} | {as_list(supported)} | "
            f"{claimed} | {cls.peer or 'deqbench'} |"
        )
    out.append("")
    for cls in STRATEGIES:
        out += [
            f"## `{cls.name}` {{ #{cls.name} }}",
            "",
            cls.description or "",
            "",
            f"Source: `{source_path(cls)}` · default solvers: forward `{cls.default_f_solver}`, "
            f"backward `{cls.default_b_solver}`",
            "",
            quoted(module_doc(cls)),
        ]
        refused = {q: r for q, r in cls.refusals.items() if q not in cls.supported_queries}
        if refused:
            out += ["Refuses:", ""]
            out += [f"- `{q}`: {reason}" for q, reason in refused.items()]
            out.append("")
    return "\n".join(out)
