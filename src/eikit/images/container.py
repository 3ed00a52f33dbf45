"""Run an image on this machine as SageMaker would.

The model folder is mounted read-only at ``/opt/ml/model`` (a separate code folder at
``/opt/ml/model/code``), the command is ``serve``, the container shares the host's network
and binds ``SAGEMAKER_BIND_TO_PORT``. The image must already be on the engine: nothing is
ever pulled. The container's log is streamed while it runs.

Stopping is bounded and says where it is: SIGTERM, up to ``stop_timeout`` s to drain (a stop
signal meanwhile, ``eikit.interrupts``, cuts that short), SIGKILL, remove, close the log
stream; each engine call has its own timeout. A container never outlives its owner for long:
it is labelled with who started it and this process's reaper removes it if this process
dies without stopping it (``eikit.images.leftovers``).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Type, Union

from eikit import interrupts
from eikit.images.build import EngineUnavailable, open_engine
from eikit.images.leftovers import ensure_reaper, owner_labels, remove_leftovers
from eikit.ping import LOAD_FAILED, wait_ready
from eikit.ping import status as ping_status
from eikit.procs import catches

if TYPE_CHECKING:
    from docker.client import DockerClient
    from docker.models.containers import Container

logger = logging.getLogger(__name__)

MODEL_MOUNT = "/opt/ml/model"
PASSTHROUGH_PREFIXES = ("SAGEMAKER_", "EIKIT_")
STARTUP_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
POLL_S = 0.1
EXITED = "exited"  # eikit.ping.wait_ready's reason when the container stopped
WAIT_SLICE_S = 1.0  # longest engine wait at a time: a signal is handled in between
CALL_TIMEOUT_S = 5.0  # each engine call while stopping
KILL_WAIT_S = 5.0  # for the exit after SIGKILL
STOP_MARGIN_S = 15.0  # a stop's engine calls end by the stop timeout plus this
LOG_JOIN_S = 3.0  # for the log stream to end once the container is gone
MAX_LOG_LINES = 20000

PathLike = Union[str, "os.PathLike[str]"]


class ContainerError(RuntimeError):
    """The container could not start, or stopped, or never became ready."""


def passthrough_env(environ: Mapping[str, str]) -> Dict[str, str]:
    """The ``SAGEMAKER_*`` and ``EIKIT_*`` entries of ``environ``."""
    return {k: v for k, v in environ.items() if k.startswith(PASSTHROUGH_PREFIXES)}


def docker_client() -> DockerClient:
    """A high-level client for the engine named by DOCKER_HOST; clear error when none runs."""
    client: DockerClient = open_engine("DockerClient", 60)
    return client


def model_mounts(
    model_dir: Path, code_dir: Optional[Path], staging: Optional[Path] = None
) -> List[Dict[str, Any]]:
    """Read-only bind mounts that lay ``model_dir`` (and ``code_dir``) out at /opt/ml/model.

    A code folder mounted inside a read-only model mount needs an existing ``code/`` there to
    mount onto. When the model folder has none, ``staging`` (an empty folder of ours) gets an
    empty stand-in for each entry and for ``code/``; it is mounted at /opt/ml/model and each
    entry over its stand-in. Everything stays read-only and the user's folder is never
    written to.
    """
    model_dir = model_dir.resolve()
    if not model_dir.is_dir():
        raise ContainerError("model folder %s does not exist" % model_dir)
    mounts = []
    if code_dir is None or (model_dir / "code").is_dir():
        mounts.append(_bind(model_dir, MODEL_MOUNT))
    else:
        if staging is None:
            raise ContainerError("a separate code folder needs a staging folder")
        staging.mkdir(parents=True, exist_ok=True)
        (staging / "code").mkdir()
        mounts.append(_bind(staging, MODEL_MOUNT))
        for entry in sorted(model_dir.iterdir()):
            source = entry.resolve()
            if entry.name == "code" or not source.exists():
                logger.warning("not mounting %s (a dangling link, or not a folder)", entry)
                continue
            stand_in = staging / entry.name
            if source.is_dir():
                stand_in.mkdir()
            else:
                stand_in.touch()
            mounts.append(_bind(source, "%s/%s" % (MODEL_MOUNT, entry.name)))
    if code_dir is not None:
        code_dir = code_dir.resolve()
        if not code_dir.is_dir():
            raise ContainerError("code folder %s does not exist" % code_dir)
        mounts.append(_bind(code_dir, MODEL_MOUNT + "/code"))
    return mounts


def _bind(source: Path, target: str) -> Dict[str, Any]:
    return {"Type": "bind", "Source": str(source), "Target": target, "ReadOnly": True}


class ContainerEndpoint:
    """One container serving a model on ``http://127.0.0.1:PORT``.

    >>> with ContainerEndpoint("eikit:pytorch-2.13-cpu-py311", "model/") as endpoint:
    ...     urllib.request.urlopen(endpoint.url + "/ping")

    ``env`` goes to the container as is, except that ``SAGEMAKER_BIND_TO_PORT`` is set from
    ``port`` and ``SAGEMAKER_BASE_DIR`` to /opt/ml; ``EIKIT_HOST`` defaults to ``bind_host``
    (loopback: the container shares the host's network).
    ``log_sink`` receives each line of the container's log (default: INFO log records);
    ``say`` each line about its life: started, waiting, ready, each stop phase (default: INFO
    log records).
    """

    def __init__(
        self,
        image: str,
        model_dir: Optional[PathLike],
        code_dir: Optional[PathLike] = None,
        env: Optional[Mapping[str, str]] = None,
        port: int = 8080,
        *,
        mounts: Optional[List[Dict[str, Any]]] = None,
        command: Optional[List[str]] = None,
        bind_host: str = "127.0.0.1",
        startup_timeout: float = STARTUP_TIMEOUT_S,
        stop_timeout: float = STOP_TIMEOUT_S,
        log_sink: Optional[Callable[[str], None]] = None,
        name: Optional[str] = None,
        say: Optional[Callable[[str], None]] = None,
    ) -> None:
        self.image = image
        # None: no /opt/ml/model (a multi-model endpoint, whose models come in ``mounts``)
        self.model_dir = Path(model_dir) if model_dir is not None else None
        self.mounts = list(mounts or [])
        self.code_dir = Path(code_dir) if code_dir is not None else None
        self.env = dict(env or {})
        self.port = port
        self.command = list(command) if command is not None else ["serve"]
        self.bind_host = bind_host
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.name = name
        self._sink = log_sink
        self._say = say or (lambda line: logger.info("%s", line))
        self._client: Optional[DockerClient] = None
        self._container: Optional[Container] = None
        self._lines: List[str] = []
        self._lock = threading.Lock()
        self._log_thread: Optional[threading.Thread] = None
        self._log_stream: Any = None
        self._hard_deadline = 0.0
        self._exit_code: Optional[int] = None
        self._short = ""
        self._workdir: Optional[tempfile.TemporaryDirectory[str]] = None

    # --- lifecycle ---

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % self.port

    @property
    def container_id(self) -> Optional[str]:
        return self._container.id if self._container is not None else None

    def __enter__(self) -> ContainerEndpoint:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.stop()

    def start(self) -> ContainerEndpoint:
        """Create and start the container (does not wait for /ping)."""
        if self._container is not None:
            return self
        from docker.errors import APIError, ImageNotFound

        self._client = docker_client()
        try:
            self._client.images.get(self.image)
        except ImageNotFound:
            raise ContainerError(
                "image %s is not on the engine, and it is never pulled; build it first "
                "(eikit build --framework ... --target ... --tag %s)" % (self.image, self.image)
            ) from None
        environment = dict(self.env)
        declared = environment.get("SAGEMAKER_BIND_TO_PORT")
        if declared and declared != str(self.port):
            logger.warning(
                "SAGEMAKER_BIND_TO_PORT=%s in env replaced by port=%d", declared, self.port
            )
        environment["SAGEMAKER_BIND_TO_PORT"] = str(self.port)
        # The model is mounted under /opt/ml whatever the host's settings say.
        environment["SAGEMAKER_BASE_DIR"] = "/opt/ml"
        environment.setdefault("EIKIT_HOST", self.bind_host)
        mounts = list(self.mounts)
        model_dir = None
        if self.model_dir is not None:
            model_dir = self._model_source()
            mounts += model_mounts(model_dir, self.code_dir, self._scratch() / "model")
        ensure_reaper()  # before the container exists: it removes it if we die
        try:
            container = self._client.containers.create(
                self.image,
                command=self.command,
                environment=environment,
                mounts=mounts,
                network_mode="host",
                name=self.name,
                labels=owner_labels(),
                detach=True,
            )
        except APIError as exc:
            raise ContainerError(
                "cannot create a container from %s: %s" % (self.image, exc)
            ) from exc
        self._container = container
        self._short = str(container.short_id)
        self._say(
            "created container %s from %s (model %s, port %d)"
            % (
                container.short_id,
                self.image,
                model_dir or "%d mounted models" % len(self.mounts),
                self.port,
            )
        )
        try:
            container.start()
        except APIError as exc:
            self.stop()
            raise ContainerError(
                "cannot start a container from %s: %s" % (self.image, exc)
            ) from exc
        self._log_thread = threading.Thread(
            target=self._follow_logs, name="eikit-container-logs", daemon=True
        )
        self._log_thread.start()
        return self

    def wait_ready(self, timeout: Optional[float] = None) -> None:
        """Poll /ping until it answers 200; fail if the container exits or time runs out."""
        limit = self.startup_timeout if timeout is None else timeout
        self._say("container %s started; waiting for /ping (up to %.0f s)" % (self._short, limit))
        ready = wait_ready(self.url, time.monotonic() + limit, self._gone, interval=POLL_S)
        if ready.status == 200:
            self._say("container %s ready at %s" % (self._short_id(), self.url))
            return
        if ready.why_not.startswith(LOAD_FAILED):
            raise ContainerError("%s\n%s" % (ready.why_not, self.log_tail()))
        if ready.why_not == EXITED:
            raise ContainerError(
                "container exited with code %s before /ping answered 200\n%s"
                % (self._exit_code, self.log_tail())
            )
        raise ContainerError(
            "container not ready after %.0f s (last /ping: %s)\n%s"
            % (limit, ready.status or "no answer", self.log_tail())
        )

    def _gone(self) -> Optional[str]:
        """``gone`` for wait_ready: the container has stopped running."""
        if self.running():
            return None
        if self._log_thread is not None:
            self._log_thread.join(timeout=5)  # the stream ends with the container
        return EXITED

    def ping(self, timeout: float = 2.0) -> int:
        """The status of GET /ping, or 0 when nothing answers."""
        return ping_status(self.url, timeout)

    def running(self) -> bool:
        if self._container is None:
            return False
        try:
            self._container.reload()
        except Exception:
            return False
        if self._container.status in ("created", "running", "restarting"):
            return True
        self._exit_code = int(self._container.attrs.get("State", {}).get("ExitCode", -1))
        return False

    def send_signal(self, sig: Union[int, str]) -> None:
        if self._container is not None:
            self._container.kill(signal=sig)

    def wait(self, timeout: Optional[float] = None) -> int:
        """Block until the container exits (``timeout``: ContainerError after that long);
        its exit code. Waits on the engine a second at a time, so a signal handler runs
        promptly whichever thread the signal reached."""
        if self._container is None:
            return self._exit_code if self._exit_code is not None else -1
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            code = _exit_code_within(self._container, WAIT_SLICE_S, deadline)
            if code is not None:
                self._exit_code = code
                return code
            if deadline is not None and time.monotonic() >= deadline:
                raise ContainerError("container still running after %s s" % timeout)

    def stop(self, timeout: Optional[float] = None) -> Optional[int]:
        """SIGTERM, SIGKILL after ``timeout`` (default ``stop_timeout``) s or at once when a
        stop signal arrives meanwhile, then remove; each phase is said. Returns the exit
        code (None if the container never started). Safe to call twice.

        Takes at most ``timeout`` + STOP_MARGIN_S + 2 LOG_JOIN_S, even if the engine stops
        answering: each engine call gets what is left of that (CALL_TIMEOUT_S at most), and
        past it none is made (the reaper or ``eikit local --cleanup`` removes the container).
        """
        container, self._container = self._container, None
        if container is not None:
            grace = float(self.stop_timeout if timeout is None else timeout)
            self._hard_deadline = time.monotonic() + grace + STOP_MARGIN_S
            with interrupts.stopping():
                self._terminate(container, grace)
                try:
                    self._bound(container)
                    container.remove(force=True)
                    self._say("removed container %s" % container.short_id)
                except Exception as exc:
                    self._say("removing container %s failed: %s" % (container.short_id, exc))
        self._close_log_stream()
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None
        return self._exit_code

    def _bound(self, container: Container) -> None:
        """Give the next engine call what is left of the stop's time (CALL_TIMEOUT_S at
        most); raise ContainerError when nothing is left."""
        left = self._hard_deadline - time.monotonic()
        if left <= 0:
            raise ContainerError("the engine did not answer in time; leaving it to the reaper")
        container.client.api.timeout = min(CALL_TIMEOUT_S, left)

    def _terminate(self, container: Container, grace: float) -> None:
        """SIGTERM, wait (cut short by a stop signal), SIGKILL, wait: each phase said."""
        short = container.short_id
        try:
            self._bound(container)
            container.reload()
        except Exception as exc:
            self._say("cannot inspect container %s (%s); removing it" % (short, exc))
            return
        if container.status not in ("running", "restarting", "paused"):
            self._exit_code = int(container.attrs.get("State", {}).get("ExitCode", -1))
            return
        began = time.monotonic()
        self._say(
            "stopping container %s: SIGTERM sent, up to %.0f s to drain%s"
            % (short, grace, " (Ctrl-C again kills it)" if interrupts.handled() else "")
        )
        code = None
        try:
            code = self._sigterm(
                container, int(container.attrs["State"].get("Pid") or 0), began + grace
            )
        except Exception as exc:
            self._say("SIGTERM to container %s failed: %s" % (short, exc))
        if code is None:
            if interrupts.kill_requested():
                self._say("stop signal again: killing container %s (SIGKILL)" % short)
            else:
                self._say(
                    "container %s still running after %.0f s: killing it (SIGKILL)"
                    % (short, time.monotonic() - began)
                )
            try:
                self._bound(container)
                _kill(container, "SIGKILL")
                code = _exit_code_within(container, KILL_WAIT_S, time.monotonic() + KILL_WAIT_S)
            except Exception as exc:
                self._say("SIGKILL to container %s failed: %s" % (short, exc))
        if code is None:
            self._say("container %s has not exited; removing it by force" % short)
        else:
            self._exit_code = code
            self._say(
                "container %s exited with code %d after %.1f s"
                % (short, code, time.monotonic() - began)
            )

    def _sigterm(self, container: Container, pid: int, deadline: float) -> Optional[int]:
        """SIGTERM, then wait until ``deadline`` (or a kill is requested) for the exit code.

        A container's PID 1 ignores a signal it has no handler for, and a server installs
        its handler only once it has started: a SIGTERM in its first moments is lost. So
        SIGTERM is sent again each second until PID 1 (``pid`` as this host sees it) had a
        handler when it was sent; where this host cannot tell, again after 1, 2, 4, ... s.
        """
        resend_at: Optional[float] = time.monotonic()
        backoff, waiting = WAIT_SLICE_S, False
        while True:
            if resend_at is not None and time.monotonic() >= resend_at:
                caught = catches(pid, signal.SIGTERM) if pid else None
                self._bound(container)
                if not _kill(container, "SIGTERM"):  # it has exited meanwhile
                    return _exit_code_within(container, KILL_WAIT_S, time.monotonic() + KILL_WAIT_S)
                if waiting:
                    self._say(
                        "SIGTERM sent to container %s again (%s)"
                        % (
                            container.short_id,
                            "its PID 1 has a handler now"
                            if caught
                            else "its PID 1 has no handler yet"
                            if caught is False
                            else "it may have had no handler yet",
                        )
                    )
                if caught:
                    resend_at = None
                else:
                    resend_at = time.monotonic() + backoff
                    if caught is None:
                        backoff *= 2
            if not waiting:
                self._say("waiting for container %s to exit" % container.short_id)
                waiting = True
            until = deadline if resend_at is None else min(deadline, resend_at)
            code = _exit_code_within(container, WAIT_SLICE_S, until, interrupts.kill_requested)
            if code is not None or interrupts.kill_requested() or time.monotonic() >= deadline:
                return code

    def _close_log_stream(self) -> None:
        """Wait for the log stream to end (it does once the container is gone), else close it."""
        thread, self._log_thread = self._log_thread, None
        if thread is None:
            return
        thread.join(timeout=LOG_JOIN_S)
        if thread.is_alive() and self._log_stream is not None:
            self._say("log stream of container %s still open: closing it" % self._short_id())
            try:
                self._log_stream.close()
            except Exception as exc:
                logger.debug("closing the log stream: %s", exc)
            thread.join(timeout=LOG_JOIN_S)
        if thread.is_alive():
            self._say("log stream of container %s did not close" % self._short_id())
        else:
            self._say("log stream of container %s closed" % self._short_id())

    @property
    def exit_code(self) -> Optional[int]:
        return self._exit_code

    # --- logs ---

    def logs(self) -> str:
        """Everything the container has logged so far (kept after it stops)."""
        with self._lock:
            return "\n".join(self._lines)

    def log_tail(self, lines: int = 40) -> str:
        with self._lock:
            tail = self._lines[-lines:]
        return "--- last lines of the container log ---\n" + "\n".join(tail)

    def _follow_logs(self) -> None:
        container = self._container
        if container is None:
            return
        partial = b""
        try:
            self._log_stream = container.logs(stream=True, follow=True, stdout=True, stderr=True)
            for chunk in self._log_stream:
                data = partial + chunk
                *complete, partial = data.split(b"\n")
                for raw in complete:
                    self._add_line(raw)
        except Exception as exc:  # the container was removed under us, the engine went away
            logger.debug("log stream of %s ended: %s", container.short_id, exc)
        if partial:
            self._add_line(partial)

    def _add_line(self, raw: bytes) -> None:
        line = raw.decode("utf-8", "replace").rstrip("\r")
        with self._lock:
            self._lines.append(line)
            if len(self._lines) > MAX_LOG_LINES:
                del self._lines[: len(self._lines) - MAX_LOG_LINES]
        if self._sink is not None:
            self._sink(line)
        else:
            logger.info("[%s] %s", self._short_id(), line)

    def _short_id(self) -> str:
        return self._short or "container"

    def _model_source(self) -> Path:
        assert self.model_dir is not None
        """The model folder, or a ``model.tar.gz`` extracted into a temporary folder."""
        if self.model_dir.is_dir() or not self.model_dir.exists():
            return self.model_dir
        from eikit.local import resolve_model_source

        return resolve_model_source(self.model_dir, self._scratch())

    def _scratch(self) -> Path:
        """A temporary folder of ours, removed by ``stop()``."""
        if self._workdir is None:
            self._workdir = tempfile.TemporaryDirectory(prefix="eikit-container-")
        return Path(self._workdir.name)


def _kill(container: Container, sig: str) -> bool:
    """Send ``sig``; False when the container is not running (any more)."""
    from docker.errors import APIError

    try:
        container.kill(signal=sig)
    except APIError as exc:
        if exc.status_code == 409:  # "is not running"
            return False
        raise
    return True


def _exit_code_within(
    container: Container,
    slice_s: float,
    deadline: Optional[float],
    give_up: Optional[Callable[[], bool]] = None,
) -> Optional[int]:
    """The container's exit code once it exits before ``deadline`` (None: no deadline);
    None when time runs out or ``give_up()`` says so. Asks the engine ``slice_s`` at a time."""
    import requests

    while True:
        if give_up is not None and give_up():
            return None
        wait = slice_s
        if deadline is not None:
            wait = min(wait, deadline - time.monotonic())
            if wait <= 0:
                return None
        try:
            result = container.wait(timeout=max(wait, 0.05))
        except requests.exceptions.RequestException as exc:
            if isinstance(exc, requests.exceptions.Timeout) or "timed out" in str(exc):
                continue
            raise
        return int(result.get("StatusCode", -1))


def serve_container(
    image: str,
    model_dir: Optional[PathLike],
    code_dir: Optional[PathLike] = None,
    env: Optional[Mapping[str, str]] = None,
    port: int = 8080,
    *,
    startup_timeout: float = STARTUP_TIMEOUT_S,
    stop_timeout: float = STOP_TIMEOUT_S,
    environ: Optional[Mapping[str, str]] = None,
    mounts: Optional[List[Dict[str, Any]]] = None,
    on_ready: Optional[Callable[[str], None]] = None,
) -> int:
    """``eikit local --image``: serve until the container exits or Ctrl-C; the exit code.

    ``SAGEMAKER_*``/``EIKIT_*`` variables of ``environ`` (default: this process's) are
    passed through; ``env`` adds to them. The first Ctrl-C or SIGTERM stops the container
    gracefully (up to ``stop_timeout`` s), a second kills it; whatever disposition of
    SIGINT this process inherited. Containers earlier eikit processes left behind are
    removed first.
    """
    environment = passthrough_env(os.environ if environ is None else environ)
    environment.update(env or {})
    endpoint = ContainerEndpoint(
        image,
        model_dir,
        code_dir,
        environment,
        port,
        startup_timeout=startup_timeout,
        stop_timeout=stop_timeout,
        log_sink=_to_stderr,
        mounts=mounts,
        say=_say,
    )
    with interrupts.stop_signals():
        try:
            _remove_leftovers()
            endpoint.start()
            endpoint.wait_ready()
            _say("%s serving at %s; Ctrl-C stops it" % (image, endpoint.url))
            if on_ready is not None:
                on_ready(endpoint.url)
            code = endpoint.wait()
            if code != 0:
                logger.error("container exited with code %d", code)
            return code
        except KeyboardInterrupt:
            stopped = endpoint.stop()
            return stopped if stopped is not None else 130
        except (ContainerError, EngineUnavailable) as exc:
            logger.error("%s", exc)
            return 1
        finally:
            endpoint.stop()


def _remove_leftovers() -> None:
    client = docker_client()
    try:
        remove_leftovers(client, _say, report_kept=False)
    finally:
        client.close()


def _to_stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _say(line: str) -> None:
    _to_stderr("eikit: " + line)
