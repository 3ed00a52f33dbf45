#!/usr/bin/env python
"""CPU time per request: eikit's worker-side handling (TensorFlowPipeline's default path:
AWS's body conversion, TF Serving's JSON rules, the signature, TF Serving's float writing)
against TensorFlow called directly, alternating, one TF thread, process CPU time.

    .nox/tensorflow/bin/python bench/tensorflow_cpu.py [REQUESTS]   (default 15 of each)

CPU time, unlike requests/s, holds on a busy host. The HTTP frontend and the hop to the
worker are not in it (bench/tensorflow_bench.py measures the whole path)."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

import tensorflow as tf  # noqa: E402
from bench.tensorflow_bench import request_body, save_model  # noqa: E402
from eikit_tensorflow import invocation, layout  # noqa: E402
from eikit_tensorflow.inprocess import InProcessExecutor  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
root = Path(tempfile.mkdtemp()) / "model"
save_model(root / "1")
body = request_body()
f = tf.saved_model.load(str(root / "1")).signatures["serving_default"]
(name,) = f.structured_input_signature[1]
ex = InProcessExecutor(layout.discover(root))


def direct():
    x = np.asarray(json.loads(body)["instances"], dtype=np.float32)
    (y,) = f(**{name: tf.constant(x)}).values()
    return json.dumps({"predictions": y.numpy().tolist()}).encode()


def eikit():
    request = invocation.default_request(body, "application/json")
    return invocation.dumps(ex.request("model", None, "predict", request))


assert np.allclose(
    json.loads(direct())["predictions"], json.loads(eikit())["predictions"], atol=1e-5
)
times = {"direct": [], "eikit": []}
for _ in range(int(sys.argv[1]) if len(sys.argv) > 1 else 15):
    for label, fn in (("direct", direct), ("eikit", eikit)):
        t = time.process_time()
        fn()
        times[label].append(time.process_time() - t)
d, e = np.median(times["direct"]), np.median(times["eikit"])
print(
    "CPU ms/request (median): TensorFlow direct %.1f, eikit worker path %.1f, "
    "ratio direct/eikit %.3f" % (d * 1e3, e * 1e3, d / e)
)
