#!/usr/bin/env python
"""eikit's TensorFlow runtime against TensorFlow called in-process, in one run.

    .nox/tensorflow/bin/python bench/tensorflow_bench.py [--duration 10] [--concurrency 1,2,4]
                                                  [--workers 2] [--rounds 3] [--out FILE.json]

The model is a Keras ResNet-18 (the same layers as torchvision's resnet18, 11.7 M
parameters, random seeded weights), built in code and exported as a SavedModel under
``model/1/``; the request is one 224x224x3 image as TF Serving REST JSON
(``{"instances": [...]}``, about 1.4 MB), the answer ``{"predictions": [[1000 floats]]}``.

1. In-process baseline: ``--workers`` processes, one TensorFlow thread each, each doing per
   request what a TF Serving REST client needs done: ``json.loads`` -> ``np.asarray(float32)``
   -> the ``serving_default`` signature -> ``.numpy().tolist()`` -> ``json.dumps``.
2. The eikit server, started once (``serve`` from this interpreter's venv,
   ``EIKIT_FRAMEWORK=tensorflow``, ``--workers`` workers with one TensorFlow thread each,
   the in-process execution path),
   checked against the baseline's answer, then loaded with wrk at each concurrency.

With ``--rounds N`` the two sides take turns N times (the baseline, then every concurrency
through the server) and the table gives the medians, each ratio against its own round's
baseline: on a shared machine the load moves between the two.

Runs in the TensorFlow environment (``nox -s tensorflow`` makes ``.nox/tensorflow``); needs
wrk. Reuses eikit.bench.load (wrk) and bench/server.py (the server process).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import server as srv  # noqa: E402
from eikit.bench import load  # noqa: E402

JSON = "application/json"
SHAPE = (1, 224, 224, 3)


def log(message: str) -> None:
    sys.stderr.write("[bench-tf] %s\n" % message)
    sys.stderr.flush()


def resnet18(seed: int = 0) -> Any:
    """A Keras ResNet-18: 7x7/2 conv, max-pool, four stages of two basic blocks, 1000-way."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)

    def block(x: Any, filters: int, stride: int) -> Any:
        shortcut = x
        y = layers.Conv2D(filters, 3, stride, padding="same", use_bias=False)(x)
        y = layers.ReLU()(layers.BatchNormalization()(y))
        y = layers.BatchNormalization()(
            layers.Conv2D(filters, 3, padding="same", use_bias=False)(y)
        )
        if stride != 1 or shortcut.shape[-1] != filters:
            shortcut = layers.Conv2D(filters, 1, stride, use_bias=False)(shortcut)
            shortcut = layers.BatchNormalization()(shortcut)
        return layers.ReLU()(layers.Add()([y, shortcut]))

    inputs = keras.Input(SHAPE[1:], name="image")
    x = layers.Conv2D(64, 7, 2, padding="same", use_bias=False)(inputs)
    x = layers.MaxPooling2D(3, 2, padding="same")(layers.ReLU()(layers.BatchNormalization()(x)))
    for filters, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        x = block(block(x, filters, stride), filters, 1)
    outputs = layers.Dense(1000, name="logits")(layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, outputs)


def save_model(path: Path) -> int:
    """The SavedModel under ``path`` (TF Serving's ``<model>/1``); returns the parameter count."""
    model = resnet18()
    model.export(str(path), format="tf_saved_model", verbose=False)
    return int(model.count_params())


def request_body(seed: int = 0) -> bytes:
    import numpy as np

    image = np.random.default_rng(seed).standard_normal(SHAPE[1:])
    return json.dumps({"instances": [np.round(image, 4).tolist()]}).encode()


# --- the in-process baseline (this file is also its child process) ------------------------


def _child(model: str, body_path: str, seconds: float, warmup: float) -> int:
    import numpy as np

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    serve = tf.saved_model.load(model).signatures["serving_default"]
    (name,) = serve.structured_input_signature[1]
    body = Path(body_path).read_bytes()

    def handle() -> bytes:
        x = np.asarray(json.loads(body)["instances"], dtype=np.float32)
        outputs = serve(**{name: tf.constant(x)})
        (y,) = outputs.values()
        return json.dumps({"predictions": y.numpy().tolist()}).encode()

    sys.stdout.write(handle().decode() + "\n")
    end = time.monotonic() + warmup
    while time.monotonic() < end:
        handle()
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    if sys.stdin.readline().strip() != "go":
        return 2
    count, started = 0, time.perf_counter()
    end = started + seconds
    while time.perf_counter() < end:
        handle()
        count += 1
    sys.stdout.write(
        "RESULT %s\n" % json.dumps({"requests": count, "seconds": time.perf_counter() - started})
    )
    return 0


def in_process(model: Path, body: Path, seconds: float, processes: int, warmup: float) -> Dict:
    cmd = [sys.executable, __file__, "--child", str(model), str(body), str(seconds), str(warmup)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    procs = [
        subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        for _ in range(processes)
    ]
    answers = []
    try:
        for proc in procs:
            assert proc.stdout is not None
            answers.append(proc.stdout.readline())
            if proc.stdout.readline().strip() != "READY":
                raise RuntimeError("in-process worker did not start")
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            results.append(json.loads(line[len("RESULT ") :]))
            proc.wait(timeout=60)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    return {
        "rps": sum(r["requests"] / r["seconds"] for r in results),
        "requests": sum(r["requests"] for r in results),
        "answer": json.loads(answers[0]),
    }


def median(values: List[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def close(a: Any, b: Any, tolerance: float = 1e-4) -> bool:
    import numpy as np

    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return x.shape == y.shape and bool(np.allclose(x, y, rtol=tolerance, atol=tolerance))


def main(argv: List[str]) -> int:
    if argv[:1] == ["--child"]:
        return _child(argv[1], argv[2], float(argv[3]), float(argv[4]))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--concurrency", default="1,2,4")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--wrk", default=None)
    p.add_argument("--out", default=None)
    p.add_argument("--rounds", type=int, default=1, help="alternate the two sides; medians")
    a = p.parse_args(argv)
    wrk = load.find_wrk(a.wrk)
    if wrk is None:
        raise SystemExit(load.WRK_HINT)
    work = Path(tempfile.mkdtemp(prefix="eikit-bench-tf-"))
    model_dir = work / "model" / "1"
    params = save_model(model_dir)
    body = request_body()
    body_path = work / "request.json"
    body_path.write_bytes(body)
    request = load.Request("", body, "POST", {"Content-Type": JSON, "Accept": JSON})
    log(
        "resnet18 (Keras, %s parameters), request %s bytes"
        % (format(params, ","), format(len(body), ","))
    )
    result: Dict[str, Any] = {
        "model": "resnet18-keras",
        "parameters": params,
        "request_bytes": len(body),
    }
    server = srv.Server(
        work,
        workers=a.workers,
        threads=1,
        log_path=work / "server.log",
        ready_timeout=300,
        extra_env={"EIKIT_FRAMEWORK": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    concurrency = [int(x) for x in a.concurrency.split(",") if x]
    rounds: List[Dict[str, Any]] = []
    with server:
        url = server.url + "/invocations"
        for number in range(a.rounds):
            # The two sides in turn, each round: on a shared machine the load moves.
            log("round %d: in-process, %d x %gs ..." % (number + 1, a.workers, a.duration))
            baseline = in_process(model_dir, body_path, a.duration, a.workers, a.warmup)
            log("round %d: in-process %.2f req/s" % (number + 1, baseline["rps"]))
            if number == 0:
                code, got = srv.http(
                    "POST", url, body, {"Content-Type": JSON, "Accept": JSON}, timeout=120
                )
                want = baseline["answer"]["predictions"]
                if code != 200 or not close(json.loads(got)["predictions"], want):
                    raise SystemExit(
                        "first prediction differs from in-process: HTTP %d %r" % (code, got[:200])
                    )
                log("server ready in %.1fs; its answer matches in-process" % server.startup_s)
            found: Dict[str, Any] = {"inprocess_rps": baseline["rps"], "points": []}
            for c in concurrency:
                target = load.Request(url, request.body, "POST", request.headers)
                load.run(target, c, a.warmup, engine="wrk", wrk=wrk)
                srv.wait_idle(server.pids())
                res = load.run(target, c, a.duration, engine="wrk", wrk=wrk).as_dict()
                point = {
                    "concurrency": c,
                    "rps": res["rps"],
                    "p50_ms": res["p50_ms"],
                    "p99_ms": res["p99_ms"],
                    "errors": res["failed"],
                    "ratio": res["rps"] / baseline["rps"],
                }
                log(
                    "round %d, c=%d: %.2f req/s (ratio %.3f), p50 %.0f ms, p99 %.0f ms, %d errors"
                    % (
                        number + 1,
                        c,
                        point["rps"],
                        point["ratio"],
                        point["p50_ms"],
                        point["p99_ms"],
                        point["errors"],
                    )
                )
                found["points"].append(point)
            rounds.append(found)
    result["rounds"] = rounds
    result["inprocess_rps"] = median([r["inprocess_rps"] for r in rounds])
    points = []
    for index, c in enumerate(concurrency):
        mine = [r["points"][index] for r in rounds]
        points.append(
            {
                "concurrency": c,
                "rps": median([p["rps"] for p in mine]),
                "ratio": median([p["ratio"] for p in mine]),
                "p50_ms": median([p["p50_ms"] for p in mine]),
                "p99_ms": median([p["p99_ms"] for p in mine]),
            }
        )
    baseline = {"rps": result["inprocess_rps"]}
    result["points"] = points
    print("medians of %d round(s):" % a.rounds)
    print("| concurrency | eikit req/s | in-process req/s | ratio | p50 / p99 ms |")
    print("|---|---|---|---|---|")
    for point in points:
        print(
            "| %d | %.1f | %.1f | %.3f | %.0f / %.0f |"
            % (
                point["concurrency"],
                point["rps"],
                baseline["rps"],
                point["ratio"],
                point["p50_ms"],
                point["p99_ms"],
            )
        )
    if a.out:
        Path(a.out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
