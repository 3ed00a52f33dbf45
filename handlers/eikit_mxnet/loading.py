"""Which files in the model directory are the model, and loading them onto a context.

Two layouts load without a ``model_fn``:

- a Module checkpoint as AWS's MXNet toolkit's ``default_model_fn`` loads it:
  ``model-symbol.json``, ``model-0000.params`` and ``model-shapes.json`` (the input names
  and shapes, ``[{"name": "data", "shape": [1, 4]}]``). Like AWS's, the Module is bound for
  inference with batch size 1 (the first dimension of every shape); a request with more
  rows reshapes it. A checkpoint saved at another epoch (``model-0003.params``) loads too,
  the latest one when there are several.
- a Gluon export (``HybridBlock.export``): one ``NAME-symbol.json`` with its
  ``NAME-NNNN.params``, loaded with ``SymbolBlock.imports``. The inputs are the symbol's
  free variables that the params file does not hold (``data`` for an export). A Module
  checkpoint without ``model-shapes.json`` is loaded this way as well.

Nothing else is guessed: anything else is a ``ConfigurationError`` naming what was found.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Tuple

from eikit.errors import ConfigurationError, NoModelFiles

SYMBOL_SUFFIX = "-symbol.json"
SHAPES_FILE = "model-shapes.json"
MODULE_PREFIX = "model"
_PARAMS = re.compile(r"^(?P<prefix>.+)-(?P<epoch>\d{4})\.params$")


@dataclass(frozen=True)
class ModelFiles:
    kind: str  # "module" or "gluon"
    symbol: Path
    params: Path
    epoch: int
    shapes: Optional[Path] = None

    @property
    def prefix(self) -> str:
        return str(self.symbol)[: -len(SYMBOL_SUFFIX)]


def _params_for(model_dir: Path, prefix: str) -> List[Tuple[int, Path]]:
    found = []
    for path in model_dir.iterdir():
        match = _PARAMS.match(path.name)
        if match and match.group("prefix") == prefix and path.is_file():
            found.append((int(match.group("epoch")), path))
    return sorted(found)


def _listing(model_dir: Path) -> str:
    names = sorted(path.name for path in model_dir.iterdir() if path.name != "code")
    return ", ".join(names) if names else "nothing"


def find_model_files(model_dir: Path) -> ModelFiles:
    if not model_dir.is_dir():
        raise NoModelFiles("model directory %s does not exist" % model_dir)
    symbols = sorted(
        path for path in model_dir.iterdir() if path.name.endswith(SYMBOL_SUFFIX) and path.is_file()
    )
    with_params = [
        (path, _params_for(model_dir, path.name[: -len(SYMBOL_SUFFIX)])) for path in symbols
    ]
    with_params = [(path, params) for path, params in with_params if params]
    module = [item for item in with_params if item[0].name == MODULE_PREFIX + SYMBOL_SUFFIX]
    shapes = model_dir / SHAPES_FILE
    if module and shapes.is_file():
        symbol, params = module[0]
        return ModelFiles("module", symbol, params[-1][1], params[-1][0], shapes)
    if len(with_params) > 1 and module:
        with_params = module
    if len(with_params) == 1:
        symbol, params = with_params[0]
        return ModelFiles("gluon", symbol, params[-1][1], params[-1][0])
    if with_params:
        raise ConfigurationError(
            "%s holds %d MXNet models (%s) and no model-symbol.json: keep one, or load it in "
            "model_fn" % (model_dir, len(with_params), ", ".join(p.name for p, _ in with_params))
        )
    raise NoModelFiles(
        "no MXNet model in %s (found: %s). The default model_fn loads a Module checkpoint "
        "(model-symbol.json, model-0000.params, model-shapes.json, as AWS's MXNet container "
        "does) or a Gluon export (NAME-symbol.json with NAME-0000.params); otherwise define "
        "model_fn in the inference script" % (model_dir, _listing(model_dir))
    )


def read_data_shapes(
    path: Path, batch_size: int = 1
) -> Tuple[List[str], List[Tuple[str, Tuple[int, ...]]]]:
    """Input names and shapes from ``model-shapes.json``, the first dimension set to
    ``batch_size`` (as AWS's ``read_data_shapes`` does with its preferred batch size 1)."""
    try:
        signatures = json.loads(path.read_text())
        names = [str(item["name"]) for item in signatures]
        shapes = [
            (str(item["name"]), (batch_size,) + tuple(int(n) for n in item["shape"][1:]))
            for item in signatures
        ]
    except (OSError, ValueError, TypeError, KeyError, IndexError) as exc:
        raise ConfigurationError(
            '%s must be a JSON list of {"name": ..., "shape": [...]}: %s: %s'
            % (path, type(exc).__name__, exc)
        ) from exc
    if not names:
        raise ConfigurationError("%s names no inputs" % path)
    return names, shapes


def load_module(mx: Any, files: ModelFiles, ctx: Any) -> Any:
    """AWS's default_model_fn: load_checkpoint, a Module bound for inference, set_params."""
    assert files.shapes is not None
    data_names, data_shapes = read_data_shapes(files.shapes)
    try:
        symbol, args, aux = mx.model.load_checkpoint(files.prefix, files.epoch)
        module = mx.mod.Module(symbol=symbol, context=ctx, data_names=data_names, label_names=None)
        module.bind(for_training=False, data_shapes=data_shapes)
        module.set_params(args, aux, allow_missing=True)
    except Exception as exc:
        raise ConfigurationError(
            "MXNet Module checkpoint %s (epoch %d) does not load on %s: %s: %s"
            % (files.prefix, files.epoch, ctx, type(exc).__name__, exc)
        ) from exc
    return module


def load_gluon(mx: Any, files: ModelFiles, ctx: Any) -> Any:
    """A Gluon export through ``SymbolBlock.imports``, its inputs read from the files."""
    try:
        symbol = mx.sym.load(str(files.symbol))
        saved = mx.nd.load(str(files.params))
        held = {name.split(":", 1)[-1] for name in saved}
        inputs = [name for name in symbol.list_inputs() if name not in held]
        if not inputs:
            raise ValueError("every input of the symbol is a parameter")
        del saved
        with warnings.catch_warnings():
            # "Cannot decide type for the following arguments": the inputs' type is float32,
            # decided at the first call; imports warns about every export.
            warnings.filterwarnings("ignore", "Cannot decide type", UserWarning)
            return mx.gluon.SymbolBlock.imports(
                str(files.symbol), inputs, str(files.params), ctx=ctx
            )
    except Exception as exc:
        raise ConfigurationError(
            "Gluon export %s with %s does not load on %s: %s: %s"
            % (files.symbol.name, files.params.name, ctx, type(exc).__name__, exc)
        ) from exc
