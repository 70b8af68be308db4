"""The one document writer: a :class:`Document` to report.md and a self-contained report.html.

Run reports (:mod:`.documents`) and training reports (:mod:`..train.report`) both describe
their content as a :class:`Document` (sections of paragraphs, lists, tables and figures)
and write it here, through the Jinja2 templates in ``templates/``. The HTML template
autoescapes every value, so a problem name or error message holding ``<script>`` shows as
text; the Markdown template escapes Markdown's punctuation in every value the same way
(:func:`markdown_escape`), so a name like ``*x*`` or ``[a](b)`` is shown, not rendered.
Tables become Markdown through tabulate. Figures are embedded in the HTML as base64 data
URIs: the page has no reference outside itself and opens offline.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from pathlib import Path

MARKDOWN_FILE = "report.md"
HTML_FILE = "report.html"
TEMPLATES = Path(__file__).parent / "templates"


class MarkdownText(str):
    """Markdown that is already rendered (a table, a code span): written as it is."""


@dataclass
class Cell:
    """A table cell: text, shown as code (a name) or not, and a tone ("fail", "warn", "")."""

    text: str
    code: bool = False
    tone: str = ""


def code(text: str) -> Cell:
    return Cell(str(text), code=True)


def as_cell(value) -> Cell:
    return value if isinstance(value, Cell) else Cell(str(value))


@dataclass
class Paragraph:
    text: str
    kind: str = "paragraph"


@dataclass
class Heading:
    text: str
    kind: str = "heading"


@dataclass
class Items:
    items: list[str]
    kind: str = "items"


@dataclass
class Table:
    header: list
    rows: list[list]
    caption: str = ""
    kind: str = "table"

    @property
    def cells(self) -> list[list[Cell]]:
        return [[as_cell(v) for v in row] for row in self.rows]

    @property
    def markdown(self) -> MarkdownText:
        from tabulate import tabulate

        header = [markdown_cell(as_cell(h)) for h in self.header]
        body = [[markdown_cell(c) for c in row] for row in self.cells]
        return MarkdownText(tabulate(body, header, tablefmt="github", disable_numparse=True))

    def header_cells(self) -> list[Cell]:
        return [as_cell(h) for h in self.header]


@dataclass
class Figure:
    """A figure written to files (PNG and/or SVG): linked from Markdown, embedded in HTML."""

    name: str
    title: str
    caption: str
    paths: dict[str, Path]
    kind: str = "figure"

    @property
    def file(self) -> MarkdownText:
        """The linked file's name (figure names are safe for files and for Markdown links)."""
        return MarkdownText((self.paths.get("png") or next(iter(self.paths.values()))).name)

    @property
    def data_uri(self) -> str:
        fmt = "png" if "png" in self.paths else "svg"
        mime = "image/png" if fmt == "png" else "image/svg+xml"
        data = base64.b64encode(self.paths[fmt].read_bytes()).decode("ascii")
        return f"data:{mime};base64,{data}"


@dataclass
class Section:
    heading: str
    blocks: list = field(default_factory=list)


@dataclass
class Document:
    title: str
    intro: list[str] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)


# ---------------------------------------------------------------- Markdown
#: What can start markup inside a line: backslash, code, emphasis, links and images, HTML,
#: table pipes, strikethrough; "_" only where it is not inside a word (there it is inert),
#: "&" only where it would start an entity, "#" only at the start.
MARKDOWN_SPECIAL = re.compile(r"([\\`*\[\]<>|~])|((?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))|(&(?=#?\w+;))|(^#)")


def markdown_escape(value) -> str:
    """Text shown as it is in Markdown, not rendered: markup characters backslash-escaped,
    lines joined."""
    if isinstance(value, MarkdownText):
        return value
    text = "" if value is None else str(value)
    text = text.replace("\r", " ").replace("\n", " ")
    return MARKDOWN_SPECIAL.sub(lambda m: "\\" + m.group(0), text)


def markdown_code(text: str) -> str:
    """A code span that holds any text: a fence longer than any backtick run inside."""
    text = text.replace("\n", " ").replace("|", "\\|")
    run = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (run + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def markdown_cell(cell: Cell) -> str:
    return markdown_code(cell.text) if cell.code else markdown_escape(cell.text)


# ------------------------------------------------------------------ writing
def environments():
    """The Markdown and HTML Jinja2 environments (the HTML one autoescapes)."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    loader = FileSystemLoader(TEMPLATES)
    markdown = Environment(
        loader=loader, autoescape=False, finalize=markdown_escape, undefined=StrictUndefined
    )
    page = Environment(loader=loader, autoescape=True, undefined=StrictUndefined)
    return markdown, page


def render(document: Document) -> tuple[str, str]:
    """(Markdown, HTML) of a document."""
    markdown, page = environments()
    text = markdown.get_template("report.md.j2").render(doc=document)
    html = page.get_template("report.html.j2").render(doc=document)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n", html


def write_documents(document: Document, out: Path) -> list[Path]:
    """report.md and report.html of ``document`` in ``out``; the paths written."""
    text, html = render(document)
    (out / MARKDOWN_FILE).write_text(text, encoding="utf-8")
    (out / HTML_FILE).write_text(html, encoding="utf-8")
    return [out / MARKDOWN_FILE, out / HTML_FILE]
