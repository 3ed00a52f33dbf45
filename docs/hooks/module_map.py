"""mkdocs hook: the design page's module map, generated at build time from the source tree
(each module's path and the first sentence of its docstring), so it lists the modules that
exist, as their own docstrings describe them. The page holds the marker where it goes."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any, List

ROOT = Path(__file__).resolve().parents[2]
PAGE = "design.md"
MARKER = "<!-- module-map -->"
# The trees mapped, and the folders under them left out (the sagemaker_inference stand-in
# is AWS's module layout, described by its package's docstring).
TREES = ["src/eikit", "handlers/eikit_pytorch", "handlers/eikit_tensorflow", "handlers/eikit_mxnet"]
SKIP = {"src/eikit/compat/sagemaker_inference"}
SENTENCE = re.compile(r"^(.+?[.?])(\s|$)")


def summary(path: Path) -> str:
    """The first sentence of a module's docstring, on one line ("" when it has none)."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    first = " ".join(doc.split("\n\n")[0].split())
    match = SENTENCE.match(first)
    sentence = match.group(1) if match else first
    # reStructuredText's ``literal`` is Markdown's `literal`. A pipe ends a table cell unless
    # it is escaped, or inside a code span (where an escape would show).
    parts = sentence.replace("``", "`").split("`")
    return "`".join(p if i % 2 else p.replace("|", "\\|") for i, p in enumerate(parts))


def modules(tree: str) -> List[Path]:
    found = []
    for path in sorted((ROOT / tree).rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if path.name == "__main__.py" or any(relative.startswith(s + "/") for s in SKIP):
            continue
        found.append(path)
    return found


def module_map() -> str:
    """One table per tree: each module (a package by its folder) and what it is."""
    tables = []
    for tree in TREES:
        lines = ["| `%s/` | |" % tree, "|---|---|"]
        for path in modules(tree):
            shown = path.relative_to(ROOT / tree).as_posix()
            if path.name == "__init__.py":
                shown = shown[: -len("__init__.py")] or "__init__.py"
            lines.append("| `%s` | %s |" % (shown, summary(path)))
        tables.append("\n".join(lines))
    return "\n\n".join(tables)


def fill(markdown: str) -> str:
    if markdown.count(MARKER) != 1:
        raise ValueError("%s must hold %s exactly once" % (PAGE, MARKER))
    return markdown.replace(MARKER, module_map())


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    return fill(markdown)
