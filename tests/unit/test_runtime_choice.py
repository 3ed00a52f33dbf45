"""Which runtime serves when EIKIT_FRAMEWORK is unset: the only one whose framework is
installed (runtimes say which module that is; they are loaded, never their framework)."""

from __future__ import annotations

from typing import Any, List

import pytest

from eikit import runtime as runtime_module
from eikit.errors import ConfigurationError
from eikit.runtime import Runtime, find_runtime


class _Base(Runtime):
    def probes(self, settings: Any) -> Any:
        return {}

    def session(self, accelerator: Any, settings: Any, worker: int) -> Any:
        raise NotImplementedError


class Missing(_Base):
    name = "missing"
    framework_module = "no_such_framework_module_here"


class Present(_Base):
    name = "present"
    framework_module = "json"  # any importable module


class Undeclared(_Base):
    name = "undeclared"


class EntryPoint:
    def __init__(self, name: str, factory: Any) -> None:
        self.name = name
        self.factory = factory

    def load(self) -> Any:
        if isinstance(self.factory, Exception):
            raise self.factory
        return self.factory


def installed(monkeypatch: pytest.MonkeyPatch, *eps: EntryPoint) -> None:
    listed: List[EntryPoint] = list(eps)
    monkeypatch.setattr(runtime_module, "_entry_points", lambda: listed)


def test_a_runtime_whose_framework_is_missing_is_left_out(monkeypatch):
    installed(monkeypatch, EntryPoint("missing", Missing), EntryPoint("present", Present))
    assert isinstance(find_runtime(None), Present)
    installed(monkeypatch, EntryPoint("missing", Missing), EntryPoint("undeclared", Undeclared))
    assert isinstance(find_runtime(None), Undeclared)


def test_two_candidates_still_need_eikit_framework(monkeypatch):
    installed(monkeypatch, EntryPoint("present", Present), EntryPoint("undeclared", Undeclared))
    with pytest.raises(ConfigurationError, match="set EIKIT_FRAMEWORK to one of: present"):
        find_runtime(None)
    assert isinstance(find_runtime("undeclared"), Undeclared)


def test_a_runtime_that_does_not_import_is_not_a_candidate(monkeypatch):
    installed(
        monkeypatch, EntryPoint("broken", ImportError("no module")), EntryPoint("present", Present)
    )
    assert isinstance(find_runtime(None), Present)


def test_one_runtime_is_chosen_even_without_its_framework(monkeypatch):
    """As before: the only runtime installed is the choice (its session says what is missing)."""
    installed(monkeypatch, EntryPoint("missing", Missing))
    assert isinstance(find_runtime(None), Missing)


def test_runtimes_set_no_worker_environment_by_default():
    assert Undeclared().worker_environment(None, None, 0) == {}  # type: ignore[arg-type]
