"""mkdocs hook: README files that live beside their code (bench/, docker/) are published as
pages of the site, read at build time, so they are written once. A docs page links them by
their path in the repository (``../bench/README.md``), which also works when browsing the
repository; the link is pointed at the published page here."""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
# repository path -> the page it becomes
PAGES = {"bench/README.md": "reference/bench.md", "docker/README.md": "reference/docker.md"}
LINK = re.compile(r"\]\(([^)\s#]+)(#[^)\s]*)?\)")


def on_files(files: Files, config: Any, **kwargs: Any) -> Files:
    for source, page in PAGES.items():
        files.append(File.generated(config, page, abs_src_path=str(ROOT / source)))
    return files


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    here = posixpath.dirname(page.file.src_uri)

    def point(match: re.Match[str]) -> str:
        target, anchor = match.group(1), match.group(2) or ""
        # the target as a path from the repository root (docs/ is one level down)
        in_repo = posixpath.normpath(posixpath.join("docs", here, target))
        if in_repo not in PAGES:
            return match.group(0)
        return "](%s%s)" % (posixpath.relpath(PAGES[in_repo], here or "."), anchor)

    return LINK.sub(point, markdown)
