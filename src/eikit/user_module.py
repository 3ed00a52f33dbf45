"""Import the user's script (``SAGEMAKER_PROGRAM``) and check its hooks once, at load.

Every hook may take a trailing ``context`` argument; whether it does is decided here, from
its signature, so no signature is inspected per request.

A script that sets ``BATCH_HOOKS = True`` opts in to batch hooks: its ``transform_fn``, or
its ``input_fn`` and ``output_fn`` (and ``predict_fn`` if it has one), get a list of
requests and return one answer per request (see ``eikit.batching``).
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from eikit.errors import UserScriptError

log = logging.getLogger(__name__)

# hook name -> number of arguments before the optional trailing ``context``
HOOK_ARITY: Dict[str, int] = {
    "pre_model_fn": 1,  # (model_dir)
    "model_fn": 1,  # (model_dir)
    "model_warmup_fn": 2,  # (model_dir, model)
    "input_fn": 2,  # (input_data, content_type)
    "predict_fn": 2,  # (data, model)
    "output_fn": 2,  # (prediction, accept)
    "transform_fn": 4,  # (model, input_data, content_type, accept)
}


# The module-level flag by which a script's hooks take a batch (lists) instead of one request.
BATCH_FLAG = "BATCH_HOOKS"


@dataclass(frozen=True)
class Hook:
    """A user function and whether it wants the context appended."""

    name: str
    func: Callable[..., Any]
    takes_context: bool

    def __call__(self, *args: Any, context: Any = None) -> Any:
        if self.takes_context:
            return self.func(*args, context)
        return self.func(*args)


@dataclass(frozen=True)
class UserHooks:
    module_name: Optional[str]
    hooks: Dict[str, Hook]
    # Every name the script defines: a runtime whose AWS container used other hook names
    # (TensorFlow's input_handler/output_handler/handler) checks and picks its own here.
    namespace: Dict[str, Any] = field(default_factory=dict)
    batch_hooks: bool = False  # the script set BATCH_HOOKS = True: its hooks take lists

    def get(self, name: str) -> Optional[Hook]:
        return self.hooks.get(name)


def _accepts(func: Callable[..., Any], count: int) -> bool:
    """Can ``func`` be called with exactly ``count`` positional arguments?"""
    try:
        inspect.signature(func).bind(*range(count))
    except TypeError:
        return False
    return True


def check_hook(name: str, func: Any) -> Hook:
    if not callable(func):
        raise UserScriptError("%s is defined but is not callable" % name)
    arity = HOOK_ARITY[name]
    try:
        inspect.signature(func)
    except (TypeError, ValueError):  # builtins without a signature: trust the plain form
        return Hook(name, func, False)
    # A hook that can take the context (a trailing parameter, a default, *args) gets it.
    if _accepts(func, arity + 1):
        return Hook(name, func, True)
    if _accepts(func, arity):
        return Hook(name, func, False)
    raise UserScriptError(
        "%s%s must take %d argument(s), or %d with a trailing context"
        % (name, inspect.signature(func), arity, arity + 1)
    )


def validate(module_name: Optional[str], namespace: Dict[str, Any]) -> UserHooks:
    hooks = {name: check_hook(name, namespace[name]) for name in HOOK_ARITY if name in namespace}
    if "transform_fn" in hooks:
        clash = [n for n in ("input_fn", "predict_fn", "output_fn") if n in hooks]
        if clash:
            raise UserScriptError(
                "transform_fn replaces input_fn, predict_fn and output_fn; "
                "define it alone or remove it (also defined: %s)" % ", ".join(clash)
            )
    batch_hooks = namespace.get(BATCH_FLAG, False)
    if not isinstance(batch_hooks, bool):
        raise UserScriptError("%s must be True or False" % BATCH_FLAG)
    if batch_hooks and "transform_fn" not in hooks:
        missing = [n for n in ("input_fn", "output_fn") if n not in hooks]
        if missing:
            raise UserScriptError(
                "%s = True: define transform_fn, or input_fn and output_fn, taking lists "
                "(missing: %s)" % (BATCH_FLAG, ", ".join(missing))
            )
    return UserHooks(module_name, hooks, dict(namespace), batch_hooks)


# Modules scripts import from AWS's containers (``sagemaker_inference``): last on the path.
COMPAT_DIR = Path(__file__).resolve().parent / "compat"


def prepare_path(code_dir: Path, extra: Optional[Path] = None) -> None:
    """Put ``code/`` (and ``code/lib``, and an install target) first on ``sys.path``, and
    eikit's stand-ins for AWS's modules last, so that anything installed wins over them."""
    for entry in (extra, code_dir / "lib", code_dir):
        if entry is not None and entry.is_dir() and str(entry) not in sys.path:
            sys.path.insert(0, str(entry))
    if str(COMPAT_DIR) not in sys.path:
        sys.path.append(str(COMPAT_DIR))


def load_user_hooks(code_dir: Path, program: str) -> UserHooks:
    """Import ``code_dir/program``; no script at all means the runtime's defaults."""
    script = code_dir / program
    if not program.endswith(".py"):
        script = code_dir / (program + ".py")
    if not script.is_file():
        if code_dir.is_dir() and any(code_dir.glob("*.py")):
            log.warning(
                "SAGEMAKER_PROGRAM=%s not found in %s; using the default hooks", program, code_dir
            )
        return UserHooks(None, {})
    name = script.stem
    spec = importlib.util.spec_from_file_location(name, str(script))
    if spec is None or spec.loader is None:
        raise UserScriptError("cannot import %s" % script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise UserScriptError(
            "importing %s failed: %s: %s" % (script, type(exc).__name__, exc)
        ) from exc
    hooks = validate(name, vars(module))
    log.info("user script %s: hooks %s", script, ", ".join(sorted(hooks.hooks)) or "(none)")
    return hooks
