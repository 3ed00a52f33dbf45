"""The TF Serving path: a ``tensorflow_model_server`` binary serves the SavedModels, eikit's
worker writes its config, starts and watches it, and forwards each request to it.

Each eikit worker owns one TF Serving process on its own loopback ports (gRPC and REST),
which is what AWS's container ran by default (one TF Serving, ``SAGEMAKER_TFS_INSTANCE_COUNT``
more). The worker's load starts the binary and waits until every version of every model
reports ``AVAILABLE`` (ModelService/GetModelStatus, or REST's model status), within
``SAGEMAKER_STARTUP_TIMEOUT``, and reports the binary's own output when a model fails to
load or the binary exits. The binary dies with its worker (``PR_SET_PDEATHSIG``; its own
session, so a stop signal sent to the container's process group reaches eikit, which
drains, and not the binary); when the binary dies on its own, a watcher thread ends the
worker, and eikit's pool replaces it as it replaces any crashed worker: the request in
flight fails, the queued ones are resent, ``/ping`` follows the workers. So supervision is
the pool's, in one place, for both paths.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from eikit.errors import BadRequest, ConfigurationError, EikitError, ModelNotReady
from eikit_tensorflow import grpc_client, tfs_config
from eikit_tensorflow.executor import Executor, check_method
from eikit_tensorflow.layout import Models
from eikit_tensorflow.rest_client import RestClient
from eikit_tensorflow.tensor_protos import SignatureInfo, UnsupportedTensor
from eikit_tensorflow.tfs_process import Binary, ServingError, in_use, ports

log = logging.getLogger(__name__)

INSTALLED = Path("/opt/eikit/bin/tensorflow_model_server")  # docker/tensorflow/Dockerfile, eia
NAMES = ("tensorflow_model_server", "amazonei_tensorflow_model_server")
OFF = ("", "none", "off", "false", "0")
DEFAULT_SIGNATURE = "serving_default"
METHODS = {
    "predict": "tensorflow/serving/predict",
    "classify": "tensorflow/serving/classify",
    "regress": "tensorflow/serving/regress",
}
POLL = 0.2
DEATH_GRACE = 2.0  # how long an UNAVAILABLE waits to learn whether the binary died
EXIT_BINARY_DIED = 70  # the worker's exit status when its TF Serving died under it


def find_binary(settings: Any) -> Optional[Path]:
    """The TF Serving binary to use, or None (the in-process path).

    ``EIKIT_TFS_BINARY`` names one (a path, or a name looked up on PATH), or turns the path
    off (``none``). Unset: ``/opt/eikit/bin/tensorflow_model_server`` (the eia image's EI
    build), else ``tensorflow_model_server`` or ``amazonei_tensorflow_model_server`` on PATH.
    """
    value = settings.tfs_binary
    if value is not None:
        if value.strip().lower() in OFF:
            return None
        found = shutil.which(value) if os.sep not in value else value
        if found is None or not os.access(found, os.X_OK) or not os.path.isfile(found):
            raise ConfigurationError("EIKIT_TFS_BINARY=%s is not an executable file" % value)
        return Path(found)
    if os.access(str(INSTALLED), os.X_OK):
        return INSTALLED
    for name in NAMES:
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


def default_workers(settings: Any, accelerator: Any = None) -> int:
    """Workers (so TF Serving processes) on this path when ``SAGEMAKER_MODEL_SERVER_WORKERS``
    is unset: ``SAGEMAKER_TFS_INSTANCE_COUNT`` when set (AWS's knob for the number of TF
    Serving processes); else one on EI, as AWS ran it (every binary would hold the model in
    the accelerator's few GB, and all share one accelerator); else one per core on CPU and
    one per GPU, as on the in-process path, each binary's intra-op threads sharing the cores
    out (``_threads``), since a worker sends its binary one request at a time."""
    if settings.tfs_instance_count:
        return int(settings.tfs_instance_count)
    kind = getattr(accelerator, "kind", "eia")
    if kind == "cuda":
        return max(1, int(getattr(accelerator, "count", 1) or 1))
    if kind == "cpu":
        return os.cpu_count() or 1
    return 1


def client_kind(settings: Any) -> str:
    """``grpc`` or ``rest``: ``EIKIT_TFS_CLIENT``, or with ``auto`` gRPC where its packages
    import (grpcio, tensorflow-serving-api, TensorFlow) and REST elsewhere."""
    wanted = settings.tfs_client
    if wanted == "grpc" and not grpc_client.available():
        raise ConfigurationError(
            "EIKIT_TFS_CLIENT=grpc needs grpcio, tensorflow-serving-api and tensorflow "
            "importable (or use rest)"
        )
    if wanted == "auto":
        return "grpc" if grpc_client.available() else "rest"
    return wanted


def _listed(signatures: Dict[str, SignatureInfo]) -> List[str]:
    """Signature names to show: not the SavedModel's ``__saved_model_init_op``."""
    return sorted(name for name in signatures if not name.startswith("__"))


def _threads(settings: Any, processes: int) -> Optional[int]:
    """``--tensorflow_intra_op_parallelism``: the setting; else ``EIKIT_WORKER_THREADS``;
    else the cores shared out when several binaries run (one alone: TensorFlow's choice)."""
    if settings.tfs_intra_op_parallelism is not None:
        return settings.tfs_intra_op_parallelism
    if settings.worker_threads is not None:
        return settings.worker_threads
    if processes > 1:
        return max(1, (os.cpu_count() or 1) // processes)
    return None


class ServingExecutor(Executor):
    """The models of one model dir, served by a TF Serving process this worker owns."""

    def __init__(self, models: Models, settings: Any, accelerator: Any, worker: int) -> None:
        binary = find_binary(settings)
        if binary is None:
            raise ConfigurationError("no TF Serving binary (EIKIT_TFS_BINARY, PATH)")
        self.settings = settings
        self.worker = worker
        self._versions = {name: sorted(versions) for name, versions in models.items()}
        self._signatures: Dict[str, Dict[int, Dict[str, SignatureInfo]]] = {}
        self._binary: Optional[Binary] = None
        self._client: Any = None
        self.dir = Path(tempfile.mkdtemp(prefix="eikit-tfs-%d-" % worker))
        try:
            self._start(binary, models, settings, accelerator, worker)
        except BaseException:
            self.close()
            raise

    # --- start-up ---------------------------------------------------------------

    def _start(
        self, binary: Path, models: Models, settings: Any, accelerator: Any, worker: int
    ) -> None:
        processes = settings.workers or default_workers(settings, accelerator)
        config_file = self.dir / "model-config.cfg"
        config_file.write_text(tfs_config.model_config(models), encoding="utf-8")
        log.info("tensorflow serving model config: \n%s", config_file.read_text())
        batching_file = None
        if settings.tfs_enable_batching:
            params, warnings = tfs_config.batching(
                settings.tfs_max_batch_size,
                settings.tfs_batch_timeout_micros,
                settings.tfs_num_batch_threads,
                settings.tfs_max_enqueued_batches,
                os.cpu_count() or 1,
                settings.batch_transform,
            )
            if warnings:
                log.warning("%s", "\n".join(warnings))
            batching_file = self.dir / "batching-config.cfg"
            batching_file.write_text(tfs_config.batching_config(params), encoding="utf-8")
            log.info("batching config: \n%s", batching_file.read_text())
        env = dict(os.environ)
        gpu_fraction = None
        if getattr(accelerator, "kind", "") == "cuda":
            gpu_fraction = tfs_config.gpu_memory_fraction(processes)
            if getattr(accelerator, "count", 0) > 1:
                env["CUDA_VISIBLE_DEVICES"] = str(worker % accelerator.count)
        grpc_port, rest_port = ports(settings, worker)
        for port in (grpc_port, rest_port):  # a fixed port a dying predecessor still holds
            deadline = time.monotonic() + 5.0
            while in_use(port) and time.monotonic() < deadline:
                time.sleep(POLL)
        self.grpc, self.rest = grpc_port, rest_port
        argv = tfs_config.command(
            binary,
            grpc_port,
            rest_port,
            config_file,
            batching_file,
            _threads(settings, processes),
            settings.tfs_inter_op_parallelism,
            gpu_fraction,
        )
        self.kind = client_kind(settings)
        log.info("tensorflow serving command: %s", " ".join(argv))
        started = time.monotonic()
        self._binary = Binary(argv, env, self.dir / "tensorflow_model_server.log")
        timeout = settings.model_server_timeout
        self._client = (
            grpc_client.GrpcClient(grpc_port, timeout)
            if self.kind == "grpc"
            else RestClient(rest_port, timeout)
        )
        self._wait_available(started)
        for name, versions in self._versions.items():
            self._signatures[name] = {v: self._client.signatures(name, v) for v in versions}
        # From here on the binary's exit ends the worker; before, it fails the load.
        self._binary.on_exit = self._died
        if not self._binary.alive():
            raise ServingError(
                "TF Serving exited with code %s just after start-up; its output:\n%s"
                % (self._binary.returncode, self._binary.tail())
            )
        log.info(
            "TF Serving (pid %d, %s) serves %s on gRPC %d, REST %d (%s client), %.1fs after start",
            self._binary.pid,
            binary,
            ", ".join("%s %s" % (n, v) for n, v in self._versions.items()),
            grpc_port,
            rest_port,
            self.kind,
            time.monotonic() - started,
        )

    def _wait_available(self, started: float) -> None:
        """Until every version of every model is AVAILABLE; ``ServingError`` with the
        binary's output when it exits, a version ends, or the start-up timeout (less a
        margin, so that this message, not the pool's, is the one reported) passes."""
        assert self._binary is not None
        limit = self.settings.startup_timeout
        deadline = started + max(limit * 0.9, limit - 5.0)
        states: Dict[str, Dict[int, Any]] = {}
        while True:
            if not self._binary.alive():
                raise ServingError(
                    "TF Serving exited with code %s before serving the models; its output:\n%s"
                    % (self._binary.returncode, self._binary.tail())
                )
            try:
                states = {name: self._client.version_states(name) for name in self._versions}
            except EikitError:
                states = {}  # not listening yet, or the model is not known yet
            failed = [
                "%s version %d: %s" % (name, v, found[v][1] or found[v][0])
                for name, found in states.items()
                for v in self._versions[name]
                if v in found and found[v][0] == "END"
            ]
            if failed:
                raise ServingError(
                    "TF Serving could not load %s; its output:\n%s"
                    % ("; ".join(failed), self._binary.tail())
                )
            if states and all(
                found.get(v, ("",))[0] == "AVAILABLE"
                for name, found in states.items()
                for v in self._versions[name]
            ):
                return
            if time.monotonic() > deadline:
                raise ServingError(
                    "TF Serving did not serve every model version within %.0fs of "
                    "SAGEMAKER_STARTUP_TIMEOUT=%gs (states: %s); its output:\n%s"
                    % (deadline - started, limit, states or "not answering", self._binary.tail())
                )
            time.sleep(POLL)

    def _died(self, code: Optional[int]) -> None:
        """The binary exited on its own after start-up: end the worker, which the pool
        replaces (a new worker, a new binary); requests queued on it are resent."""
        assert self._binary is not None
        log.error(
            "TF Serving (pid %d) exited with code %s; ending worker %d so that it is "
            "replaced. Its last output:\n%s",
            self._binary.pid,
            code,
            self.worker,
            self._binary.tail(),
        )
        logging.shutdown()
        os._exit(EXIT_BINARY_DIED)

    # --- Executor ---------------------------------------------------------------

    def models(self) -> Dict[str, List[int]]:
        return {name: list(versions) for name, versions in self._versions.items()}

    def describe(self) -> str:
        pid = self._binary.pid if self._binary is not None else "-"
        return "TF Serving binary (pid %s, gRPC %d, REST %d, %s client)" % (
            pid,
            self.grpc,
            self.rest,
            self.kind,
        )

    def rest_port(self) -> Optional[int]:
        return self.rest

    def grpc_port(self) -> Optional[int]:
        return self.grpc

    def signature(
        self, model: str, version: int, body: Dict[str, Any], method: str
    ) -> SignatureInfo:
        """The signature the body names (``serving_default`` unless it names one), of the
        request's method; ``BadRequest`` naming the ones there are otherwise."""
        name = body.get("signature_name", "")
        if not isinstance(name, str):
            raise BadRequest("'signature_name' key must be a string value.")
        name = name or DEFAULT_SIGNATURE
        signatures = self._signatures[model][version]
        found = signatures.get(name)
        if found is None:
            raise BadRequest(
                'Serving signature name: "%s" not found in signature def (model %s version %d '
                "has: %s)" % (name, model, version, ", ".join(_listed(signatures)))
            )
        wanted = METHODS[method]
        if (found.method or METHODS["predict"]) != wanted:
            fitting = [s.name for s in signatures.values() if s.method == wanted]
            raise BadRequest(
                "Expected %s signature method_name to be %s. Was: %s (signatures of model %s "
                "version %d for %s: %s)"
                % (
                    method,
                    wanted,
                    found.method,
                    model,
                    version,
                    method,
                    ", ".join(sorted(fitting)) or "none",
                )
            )
        return found

    def request(
        self, model: str, version: Optional[int], method: str, body: Dict[str, Any]
    ) -> Dict[str, Any]:
        check_method(method)
        number = self.resolve(model, version)
        if not isinstance(body, dict):
            raise BadRequest("JSON Value: %s Is not object" % str(body)[:200])
        signature = self.signature(model, number, body, method)
        try:
            return self._client.request(model, number, method, body, signature)
        except UnsupportedTensor as exc:  # an output JSON cannot hold: TF Serving's 400 too
            raise BadRequest(str(exc)) from None
        except ModelNotReady:
            # UNAVAILABLE: if the binary died under this request, end the worker now, before
            # it answers 503 to the requests queued behind this one: the pool resends those.
            binary = self._binary
            if binary is not None and not binary.closing and binary.exited.wait(DEATH_GRACE):
                self._died(binary.returncode)
            raise

    def close(self) -> None:
        if self._binary is not None:
            self._binary.stop()
        if self._client is not None:
            self._client.close()
        shutil.rmtree(self.dir, ignore_errors=True)
