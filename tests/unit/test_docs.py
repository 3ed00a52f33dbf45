"""The documentation agrees with the code where the code can say so.

The settings reference is generated when the site is built (``docs/hooks/settings.py``;
``nox -s docs`` builds with ``--strict``, so broken links and anchors fail there). These
tests need no mkdocs: the hook fills the settings page with every setting, and every
``SAGEMAKER_*``/``EIKIT_*`` name the pages and the README mention is one eikit reads, so a
setting renamed or removed in the code cannot live on in the prose.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

from eikit.settings import Settings, settings_table

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

# Names the docs mention that are not eikit settings, each with what it is instead.
NOT_SETTINGS = {
    "EIKIT_*": "the prefix of eikit's own settings",
    "SAGEMAKER_*": "the prefix of the settings AWS named",
    "EIKIT_FUZZ_SCALE": "the fuzz tests' case count multiplier (tests/fuzzing.py)",
    "EIKIT_REQUIRE_ALL_PYTHONS": "CI: a missing Python 3.8 fails nox instead of a warning",
    "EIKIT_REQUIRE_CONTAINER_TESTS": "CI: container tests fail instead of skipping",
    "EIKIT_REQUIRE_MXNET": "the mxnet session: tests/mxnet fails instead of skipping",
    "EIKIT_TEST_IMAGE": "the pytest plugin: run every eikit_endpoint in this image",
    "EIKIT_UID": "a build argument of the images (a non-root user)",
    "SAGEMAKER_GUNICORN_*": "AWS's TF container's, not taken over (eikit's server replaces it)",
    "SAGEMAKER_NGINX_*": "AWS's TF container's, not taken over",
    "SAGEMAKER_TFS_NGINX_*": "AWS's TF container's, not taken over",
    "SAGEMAKER_TFS_WAIT_TIME_SECONDS": "AWS's TF container's; SAGEMAKER_STARTUP_TIMEOUT bounds it",
}
NAME = re.compile(r"\b(?:SAGEMAKER|EIKIT)_[A-Z0-9_]*[A-Z0-9*]")


def _hook(name: str) -> ModuleType:
    """A hook module of docs/hooks, loaded by path (mkdocs loads them so; no mkdocs here)."""
    spec = importlib.util.spec_from_file_location("docs_hook_" + name, DOCS / "hooks" / name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _page(src_uri: str) -> SimpleNamespace:
    return SimpleNamespace(file=SimpleNamespace(src_uri=src_uri))


def test_the_settings_page_gets_the_table_the_code_generates():
    hook = _hook("settings.py")
    source = (DOCS / "settings.md").read_text()
    built = hook.on_page_markdown(source, page=_page("settings.md"))
    assert settings_table() in built and hook.MARKER not in built
    for field in Settings.model_fields.values():
        assert "| `%s` |" % field.alias in built, field.alias
    # other pages pass through untouched, marker or not
    assert hook.on_page_markdown(hook.MARKER, page=_page("index.md")) == hook.MARKER


def test_a_settings_page_that_lost_its_marker_fails_the_build():
    hook = _hook("settings.py")
    with pytest.raises(ValueError, match="settings-table"):
        hook.fill("# Settings\n\nno table here\n")
    with pytest.raises(ValueError):
        hook.fill(hook.MARKER + hook.MARKER)


def test_the_design_page_maps_every_module_by_its_docstring():
    hook = _hook("module_map.py")
    built = hook.on_page_markdown((DOCS / "design.md").read_text(), page=_page("design.md"))
    assert hook.MARKER not in built
    for tree in hook.TREES:
        # the tree's table: from its header row to the blank line after it
        table = built.split("| `%s/` | |\n" % tree, 1)[1].split("\n\n", 1)[0].splitlines()
        rows = {row.split("`")[1]: row for row in table[1:]}
        for path in (ROOT / tree).rglob("*.py"):
            if path.name == "__main__.py" or "compat/sagemaker_inference/" in path.as_posix():
                continue
            shown = path.relative_to(ROOT / tree).as_posix()
            if path.name == "__init__.py":
                shown = shown[: -len("__init__.py")] or "__init__.py"
            assert shown in rows, "%s/%s is missing from the module map" % (tree, shown)
            assert not rows[shown].endswith("|  |"), "%s/%s has no docstring" % (tree, shown)


def test_every_variable_the_docs_name_is_a_setting_or_known_not_to_be_one():
    aliases = {str(field.alias) for field in Settings.model_fields.values()}
    assert not aliases & set(NOT_SETTINGS), "a setting listed as not being one"
    unknown = {}
    for path in sorted(DOCS.rglob("*.md")) + [ROOT / "README.md"]:
        for name in NAME.findall(path.read_text()):
            if name not in aliases and name not in NOT_SETTINGS:
                unknown.setdefault(name, str(path.relative_to(ROOT)))
    assert not unknown, (
        "the docs name variables eikit does not read (renamed or removed settings?): %s" % unknown
    )


def test_the_readme_links_to_files_that_exist():
    # The site's own links are checked by its strict build; the README is outside it.
    links = re.findall(r"\]\(([^)#\s]+)", (ROOT / "README.md").read_text())
    relative = [link for link in links if "://" not in link]
    assert relative, "the README links into docs/"
    missing = [link for link in relative if not (ROOT / link).is_file()]
    assert not missing, "the README links to missing files: %s" % missing
