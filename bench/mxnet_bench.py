"""The MXNet side of the bench, run by the mxnet environment's interpreter (``nox -s mxnet``
makes ``.nox/mxnet``): the orchestrator (``run.py``) runs in ``.venv``, where mxnet cannot
be installed beside torch's numpy.

* ``save DIR``: ResNet-18 (``gluon.model_zoo.vision.resnet18_v1``, seeded random weights,
  11,699,112 parameters with its BatchNorm statistics), hybridized and exported as
  ``DIR/resnet18-symbol.json`` + ``DIR/resnet18-0000.params``: a Gluon export, what the
  eikit runtime's default ``model_fn`` loads with ``SymbolBlock.imports``.
* ``answer DIR BODY CONTENT_TYPE``: the in-process answer to one request, on stdout.
* ``load_model`` / ``make_handler``: the in-process loop's handler (``inprocess.py --framework
  mxnet``): per request, what eikit's default hooks do: decode (``np.load`` of the NPY, or
  ``json.loads``), ``mx.nd.array`` on ``mx.cpu()`` (float32), ``block(x)``,
  ``asnumpy().tolist()``, ``json.dumps``.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

PREFIX = "resnet18"


def save(model_dir: Path, seed: int = 0) -> None:
    import mxnet as mx

    mx.random.seed(seed)
    net = mx.gluon.model_zoo.vision.resnet18_v1(pretrained=False)
    net.initialize(mx.init.Xavier(), ctx=mx.cpu())
    net.hybridize()
    net(mx.nd.zeros((1, 3, 224, 224)))
    model_dir.mkdir(parents=True, exist_ok=True)
    net.export(str(model_dir / PREFIX), 0)


def load_model(model_dir: str, threads: int = 1) -> Any:
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))  # read when mxnet is imported
    os.environ.setdefault("MXNET_CPU_WORKER_NTHREADS", "1")
    import mxnet as mx

    path = Path(model_dir)
    with warnings.catch_warnings():  # as eikit_mxnet.loading: "Cannot decide type" is noise
        warnings.filterwarnings("ignore", "Cannot decide type", UserWarning)
        return mx.gluon.SymbolBlock.imports(
            str(path / (PREFIX + "-symbol.json")),
            ["data"],
            str(path / (PREFIX + "-0000.params")),
            ctx=mx.cpu(),
        )


def make_handler(block: Any, content_type: str) -> Callable[[bytes], bytes]:
    import mxnet as mx
    from inprocess import decode  # this file runs beside inprocess.py, as a sibling module

    def handle(body: bytes) -> bytes:
        x = mx.nd.array(decode(body, content_type), ctx=mx.cpu())
        return json.dumps(block(x).asnumpy().tolist()).encode()

    return handle


def main(argv: Any) -> int:
    if argv[:1] == ["save"]:
        save(Path(argv[1]))
        return 0
    if argv[:1] == ["answer"]:
        handle = make_handler(load_model(argv[1]), argv[3])
        sys.stdout.buffer.write(handle(Path(argv[2]).read_bytes()))
        return 0
    print("usage: mxnet_bench.py save DIR | answer DIR BODY CONTENT_TYPE", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main(sys.argv[1:]))
