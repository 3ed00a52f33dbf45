"""mkdocs hook: the settings page's table is generated from eikit's ``Settings`` at build
time (``eikit.settings.settings_table``, what ``python -m eikit.settings`` prints), so the
reference cannot drift from the code. The page holds the marker where the table goes."""

from __future__ import annotations

from typing import Any

from eikit.settings import settings_table

PAGE = "settings.md"
MARKER = "<!-- settings-table -->"


def fill(markdown: str) -> str:
    """The page with its marker replaced by the table; a page without exactly one marker
    is an error, so a lost marker fails the build instead of publishing no table."""
    if markdown.count(MARKER) != 1:
        raise ValueError("%s must hold %s exactly once" % (PAGE, MARKER))
    return markdown.replace(MARKER, settings_table())


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    return fill(markdown)
