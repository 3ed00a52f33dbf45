"""SageMaker's side of a multi-model endpoint, for ``eikit reliability --multi-model``: the
models it drives, callers that invoke, load and unload as SageMaker does, and the tally of
every answer, each 5xx explained by a fault on its model or not."""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import quote

FLAKY = "flaky"  # the model whose loads the fail-loads fault makes fail
BODY = b'{"inputs": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}'
LABELS = ["setosa", "virginica"]  # what BODY gets from every model

# Each model: nearest centroid in plain numpy (the run measures the server, not a
# framework); its answer names the model, so an answer from the wrong model is caught.
SCRIPT = """\
import json
import os

import numpy as np

LABELS = ["setosa", "versicolor", "virginica"]


def model_fn(model_dir):
    with open(os.path.join(model_dir, "model.json")) as handle:
        spec = json.load(handle)
    if os.path.exists(spec["fail_flag"]):
        raise RuntimeError("this model's loads fail while %s exists" % spec["fail_flag"])
    with open(spec["pid_file"], "w") as handle:
        handle.write(str(os.getpid()))
    spec["centroids"] = np.array(spec["centroids"], dtype=np.float32)
    return spec


def input_fn(input_data, content_type):
    return np.array(json.loads(input_data)["inputs"], dtype=np.float32)


def predict_fn(data, model):
    distances = ((data[:, None, :] - model["centroids"][None, :, :]) ** 2).sum(axis=-1)
    return model["name"], distances.argmin(axis=1)


def output_fn(prediction, accept):
    name, labels = prediction
    return json.dumps({"model": name, "labels": [LABELS[int(i)] for i in labels]}), accept
"""
CENTROIDS = [[5.0, 3.4, 1.5, 0.2], [5.9, 2.8, 4.3, 1.3], [6.6, 3.0, 5.6, 2.0]]


def write_models(root: Path, work: Path, count: int) -> Dict[str, Path]:
    """``count`` models under the server's models root; the last is the flaky one."""
    names = ["model-%02d" % index for index in range(count - 1)] + [FLAKY]
    folders = {}
    for index, name in enumerate(names):
        folder = root / ("%05d" % index) / "model"
        (folder / "code").mkdir(parents=True)
        (folder / "code" / "inference.py").write_text(SCRIPT)
        spec = {
            "name": name,
            "centroids": CENTROIDS,
            "fail_flag": str(work / ("fail-%d" % index)),
            "pid_file": str(work / ("pid-%d" % index)),
        }
        (folder / "model.json").write_text(json.dumps(spec))
        folders[name] = folder
    return folders


# --- counting ----------------------------------------------------------------------------


class Window:
    """A fault on one model, from when it began until it recovered (None: still on)."""

    def __init__(self, model: str, start: float) -> None:
        self.model = model
        self.start = start
        self.end: Optional[float] = None


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.statuses: Counter = Counter()  # (kind, status) -> count
        self.lost: Counter = Counter()  # (kind, exception type) -> count
        self.wrong: List[str] = []
        self.explained: Counter = Counter()
        self.unexplained: List[Dict[str, Any]] = []
        self.windows: List[Window] = []

    def open_window(self, model: str) -> Window:
        window = Window(model, time.monotonic())
        with self.lock:
            self.windows.append(window)
        return window

    def faulted(self) -> List[str]:
        with self.lock:
            return [window.model for window in self.windows if window.end is None]

    def _explains(self, model: str, sent: float, answered: float) -> bool:
        return any(
            w.model == model and sent <= (w.end or answered) and answered >= w.start
            for w in self.windows
        )

    def answer(self, kind: str, model: str, status: int, sent: float, text: str) -> None:
        answered = time.monotonic()
        with self.lock:
            self.statuses[(kind, status)] += 1
            if status < 500 or status == 507:  # 507: "no room", SageMaker unloads models
                return
            if self._explains(model, sent, answered):
                self.explained[(kind, status)] += 1
            else:
                self.unexplained.append(
                    {"kind": kind, "model": model, "status": status, "answer": text[:300]}
                )

    def lose(self, kind: str, reason: str) -> None:
        with self.lock:
            self.lost[(kind, reason)] += 1

    def mistake(self, text: str) -> None:
        with self.lock:
            self.wrong.append(text[:300])


# --- clients -------------------------------------------------------------------------------


class Caller:
    """One keep-alive connection; every call counted in the tally."""

    def __init__(self, port: int, timeout: float, tally: Tally) -> None:
        self.port, self.timeout, self.tally = port, timeout, tally
        self.connection: Optional[http.client.HTTPConnection] = None

    def call(
        self, kind: str, model: str, method: str, path: str, body: Optional[bytes] = None
    ) -> Tuple[Optional[int], bytes]:
        if self.connection is None:
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, self.timeout)
        headers = {"Content-Type": "application/json"} if body is not None else {}
        sent = time.monotonic()
        try:
            self.connection.request(method, path, body, headers)
            response = self.connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.tally.lose(kind, type(exc).__name__)
            self.connection.close()
            self.connection = None
            return None, b""
        if response.will_close:
            self.connection.close()
            self.connection = None
        self.tally.answer(kind, model, response.status, sent, data.decode("utf-8", "replace"))
        return response.status, data

    def invoke(self, name: str) -> Optional[int]:
        status, data = self.call("invoke", name, "POST", invoke_path(name), BODY)
        if status == 200:
            try:
                answer = json.loads(data)
            except ValueError:
                answer = None
            if answer != {"model": name, "labels": LABELS}:
                self.tally.mistake("%s answered %r" % (name, data[:200]))
        return status

    def load(self, name: str, url: str) -> Optional[int]:
        body = json.dumps({"model_name": name, "url": url}).encode()
        return self.call("load", name, "POST", "/models", body)[0]

    def unload(self, name: str) -> Optional[int]:
        return self.call("unload", name, "DELETE", "/models/" + quote(name, safe=""))[0]

    def loaded(self) -> List[str]:
        status, data = self.call("list", "", "GET", "/models")
        return [m["modelName"] for m in json.loads(data)["models"]] if status == 200 else []

    def as_sagemaker(self, name: str, url: str, recent: List[str]) -> Optional[int]:
        """Invoke as SageMaker does: 404 -> load -> invoke again; 507 -> unload the least
        recently used model -> load again."""
        status = self.invoke(name)
        if status != 404:
            return status
        loaded = self.load(name, url)
        if loaded == 507:
            victim = next((other for other in recent if other != name), None)
            if victim is not None:
                self.unload(victim)
            loaded = self.load(name, url)
        if loaded in (200, 409):
            return self.invoke(name)
        return loaded


def invoke_path(name: str) -> str:
    return "/models/%s/invoke" % quote(name, safe="")


class Client(threading.Thread):
    """Invokes models as SageMaker does until ``stop`` is set."""

    def __init__(self, caller: Caller, folders: Dict[str, Path], stop: threading.Event, seed: int):
        super().__init__(daemon=True)
        self.caller, self.folders, self.stop = caller, folders, stop
        self.random = random.Random(seed)
        self.recent: List[str] = []  # this client's models, least recently used first

    def run(self) -> None:
        names = sorted(self.folders)
        # Traffic as a multi-model endpoint sees it: the n-th model is asked for 1/n as
        # often as the first (Zipf), so a few are hot and the rest come and go.
        weights = [1.0 / (rank + 1) for rank in range(len(names))]
        while not self.stop.is_set():
            name = self.random.choices(names, weights)[0]
            self.caller.as_sagemaker(name, str(self.folders[name]), self.recent)
            if name in self.recent:
                self.recent.remove(name)
            self.recent.append(name)


class Unloader(threading.Thread):
    """Unloads a random loaded model every ``--unload-every`` seconds, except one a fault
    is being injected into (so that the fault meets the model it was aimed at)."""

    def __init__(self, caller: Caller, stop: threading.Event, every: float) -> None:
        super().__init__(daemon=True)
        self.caller, self.stop, self.every = caller, stop, every
        self.random = random.Random(7)

    def run(self) -> None:
        while not self.stop.wait(self.every):
            faulted = self.caller.tally.faulted()
            loaded = [name for name in self.caller.loaded() if name not in faulted]
            if loaded:
                self.caller.unload(self.random.choice(loaded))


def progress(tally: Tally) -> str:
    with tally.lock:
        invokes = sum(n for (kind, _), n in tally.statuses.items() if kind == "invoke")
        loads = sum(n for (kind, _), n in tally.statuses.items() if kind == "load")
        return "invokes %d, loads %d, lost %d, wrong %d, unexplained 5xx %d" % (
            invokes,
            loads,
            sum(tally.lost.values()),
            len(tally.wrong),
            len(tally.unexplained),
        )
