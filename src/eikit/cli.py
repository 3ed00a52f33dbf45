"""Command line: parse, build the one Settings object, delegate."""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from pydantic import ValidationError

from eikit import __version__, interrupts
from eikit.errors import ConfigurationError
from eikit.neuron.status import neuron_status, status_lines
from eikit.settings import ACCELERATOR_CHOICES, Settings, load_settings

log = logging.getLogger("eikit.cli")


def _settings(**overrides: Any) -> Settings:
    try:
        return load_settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            "%s: %s" % (".".join(str(p) for p in err["loc"]), err["msg"]) for err in exc.errors()
        )
        raise ConfigurationError("invalid settings: %s" % problems) from None


def _server_overrides(args: argparse.Namespace) -> Dict[str, Any]:
    return {
        "port": args.port,
        "host": args.host,
        "workers": args.workers,
        "accelerator": args.accelerator,
        "framework": args.framework,
    }


def _add_server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, help="overrides SAGEMAKER_BIND_TO_PORT")
    parser.add_argument("--host", help="overrides EIKIT_HOST")
    parser.add_argument("--workers", type=int, help="overrides SAGEMAKER_MODEL_SERVER_WORKERS")
    parser.add_argument(
        "--accelerator", choices=ACCELERATOR_CHOICES, help="overrides EIKIT_ACCELERATOR"
    )
    parser.add_argument("--framework", help="overrides EIKIT_FRAMEWORK")


# --- commands -------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from eikit.server.run import serve

    return serve(_settings(**_server_overrides(args)))


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "eikit" / "local"


def cmd_local(args: argparse.Namespace) -> int:
    from eikit.local import layout_model_tree

    if args.cleanup:
        from eikit.images.leftovers import cleanup_command

        return cleanup_command(_say)
    if not args.model_dir:
        raise ConfigurationError("--model-dir is required (or --cleanup)")
    model = Path(args.model_dir)
    code = Path(args.code_dir) if args.code_dir else None
    if not model.exists():
        raise ConfigurationError("--model-dir %s does not exist" % model)
    if args.multi_model:
        if code is not None:
            raise ConfigurationError("--code-dir is for one model: each model brings its code/")
        return _local_multi_model(args, model)
    if args.image:
        from eikit.images.container import serve_container

        args.host = args.host or "127.0.0.1"  # host networking: don't listen on every interface
        return serve_container(
            args.image,
            model,
            code,
            env=_settings(**_server_overrides(args)).to_env(),
            port=args.port or 8080,
            stop_timeout=_container_stop_timeout(args),
        )
    key = hashlib.sha256(("%s|%s" % (model.resolve(), code and code.resolve())).encode())
    work = Path(args.work_dir) if args.work_dir else _cache_root() / key.hexdigest()[:12]
    # --work-dir must be new, empty or eikit's; the default cache folder is eikit's own.
    base = layout_model_tree(model, code, work, owned=not args.work_dir)
    from eikit.server.run import serve

    overrides = _server_overrides(args)
    overrides["host"] = args.host or "127.0.0.1"
    if args.stop_timeout is not None:
        overrides["graceful_timeout"] = args.stop_timeout
    return serve(_settings(base_dir=base, **overrides))


def _say(line: str) -> None:
    sys.stderr.write("eikit: %s\n" % line)
    sys.stderr.flush()


def _container_stop_timeout(args: argparse.Namespace) -> float:
    from eikit.images.container import STOP_TIMEOUT_S

    return float(STOP_TIMEOUT_S if args.stop_timeout is None else args.stop_timeout)


def _local_multi_model(args: argparse.Namespace, source: Path) -> int:
    """``eikit local --multi-model``: serve a folder of models as a multi-model endpoint and
    load each of them once it answers, as SageMaker would on their first invocations."""
    import threading

    from eikit.local_models import (
        ModelsClient,
        collect_models,
        container_mounts,
        link_models,
        load_all,
        to_stderr,
    )

    key = hashlib.sha256(("models|%s" % source.resolve()).encode())
    work = Path(args.work_dir) if args.work_dir else _cache_root() / key.hexdigest()[:12]
    work.mkdir(parents=True, exist_ok=True)
    models = collect_models(source, work)
    overrides = _server_overrides(args)
    overrides["multi_model"] = True
    if args.stop_timeout is not None:
        overrides["graceful_timeout"] = args.stop_timeout

    def load(url: str) -> None:
        failed = load_all(ModelsClient(url), urls, to_stderr)
        to_stderr(
            "%d of %d model(s) loaded; invoke with eikit invoke --target-model NAME"
            % (len(urls) - len(failed), len(urls))
        )

    if args.image:
        from eikit.images.container import serve_container

        args.host = args.host or "127.0.0.1"
        mounts, urls = container_mounts(models)
        return serve_container(
            args.image,
            None,
            env=_settings(**_server_overrides(args), multi_model=True).to_env(),
            port=args.port or 8080,
            mounts=mounts,
            on_ready=load,
            stop_timeout=_container_stop_timeout(args),
        )
    from eikit.ping import wait_for_ping
    from eikit.server.run import serve

    urls = link_models(models, work / "models")  # the server's models root
    overrides["host"] = args.host or "127.0.0.1"
    settings = _settings(base_dir=work, **overrides)
    url = "http://127.0.0.1:%d" % settings.port

    def load_when_ready() -> None:
        if wait_for_ping(url, time.monotonic() + settings.startup_timeout) == 200:
            load(url)

    threading.Thread(target=load_when_ready, name="eikit-load-models", daemon=True).start()
    return serve(settings)


def cmd_invoke(args: argparse.Namespace) -> int:
    from eikit import codecs
    from eikit.invoke import guess_content_type, invoke, show, write

    if args.json is not None:
        body = args.json.encode()
        content_type = args.content_type or codecs.JSON
    elif args.file == "-":
        body = sys.stdin.buffer.read()
        content_type = args.content_type or codecs.JSON
    elif args.file:
        path = Path(args.file)
        if not path.is_file():
            raise ConfigurationError("no such file: %s" % path)
        body = path.read_bytes()
        content_type = args.content_type or guess_content_type(path)
    else:
        raise ConfigurationError("give a FILE, - for standard input, or --json TEXT")
    base = args.url.rstrip("/")
    if base.endswith("/invocations"):
        base = base[: -len("/invocations")]
    url = base + "/invocations"
    extra = {}
    if args.target_model:
        from eikit.local_models import invoke_path

        # As SageMaker calls a multi-model endpoint: the model's route, and the header.
        url = base + invoke_path(args.target_model)
        extra["X-Amzn-SageMaker-Target-Model"] = args.target_model
    if args.wait:
        from eikit.ping import wait_for_ping

        status = wait_for_ping(base, time.monotonic() + args.wait)
        if status != 200:
            raise ConfigurationError(
                "%s/ping did not answer 200 within %gs (last: %s)"
                % (base, args.wait, status or "no answer")
            )
    try:
        status, headers, answer = invoke(
            url, body, content_type, args.accept, args.custom_attributes, headers=extra
        )
    except OSError as exc:
        raise ConfigurationError("cannot reach %s: %s" % (url, exc)) from None
    answer_type = headers.get("content-type", "")
    if status != 200:
        sys.stderr.write("HTTP %d\n" % status)
    write(show(answer, answer_type))
    return 0 if status == 200 else 1


def cmd_detect(args: argparse.Namespace) -> int:
    from eikit.accelerators import detect
    from eikit.runtime import find_runtime

    settings = _settings(framework=args.framework, accelerator=args.accelerator)
    runtime = find_runtime(settings.framework)
    detection = detect(runtime.probes(settings), settings.accelerator, settings.strict_accelerator)
    workers = settings.workers or runtime.default_workers(detection.chosen, settings)
    execution = runtime.execution(settings, detection.chosen)
    neuron = neuron_status(
        settings.device_root,
        settings.neuron_sysfs_root,
        settings.neuron_visible_cores,
        settings.model_dir,
    )
    if args.json:
        report = detection.to_dict()
        report.update({"framework": runtime.name, "workers": workers})
        report.update(execution)
        if neuron is not None:
            report["neuron"] = neuron
        print(json.dumps(report, indent=2))
        return 0
    print(
        "framework: %s   chosen: %s   workers: %d" % (runtime.name, detection.chosen.kind, workers)
    )
    for result in detection.results:
        mark = "yes" if result.available else "no "
        print("  %-7s %s  %s" % (result.kind, mark, result.reason))
    if len(detection.chain) > 1:
        print("fallback order: %s" % " -> ".join(r.kind for r in detection.chain))
    for key, value in execution.items():
        print("%s: %s" % (key.replace("_", " "), value))
    for line in status_lines(neuron) if neuron is not None else []:
        print(line)
    return 0


# --- parser --------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eikit", description="SageMaker model serving on EI, Neuron, GPU or CPU"
    )
    parser.add_argument("--version", action="version", version="eikit %s" % __version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    serve = sub.add_parser(
        "serve", help="serve SAGEMAKER_BASE_DIR/model as a SageMaker container does"
    )
    _add_server_options(serve)
    serve.set_defaults(func=cmd_serve)

    local = sub.add_parser("local", help="serve a model folder (or model.tar.gz) locally")
    local.add_argument("--model-dir", help="model files, or a model.tar.gz (required)")
    local.add_argument("--code-dir", help="folder with the inference script (becomes model/code)")
    local.add_argument("--image", help="run this image as SageMaker would, instead of a process")
    local.add_argument(
        "--multi-model",
        action="store_true",
        help="--model-dir is a folder of models (folders or model.tar.gz files): serve a "
        "multi-model endpoint and load each (invoke with eikit invoke --target-model)",
    )
    local.add_argument(
        "--work-dir",
        help="where the SageMaker tree is laid out: a new or empty folder, or one eikit made "
        "(default: a cache folder)",
    )
    local.add_argument(
        "--stop-timeout",
        type=float,
        metavar="SECONDS",
        help="how long the first Ctrl-C (or SIGTERM) lets in-flight requests finish before "
        "the server is killed; a second Ctrl-C kills it at once (default: 30 with --image, "
        "else EIKIT_GRACEFUL_TIMEOUT)",
    )
    local.add_argument(
        "--cleanup",
        action="store_true",
        help="remove the containers eikit local --image started whose eikit process has "
        "ended, say what was removed, and exit",
    )
    _add_server_options(local)
    local.set_defaults(func=cmd_local)

    inv = sub.add_parser("invoke", help="send a file or JSON to a running endpoint")
    inv.add_argument("file", nargs="?", help="file to send (- for standard input)")
    inv.add_argument("--json", help="send this JSON text")
    inv.add_argument(
        "--url", default="http://127.0.0.1:8080", help="endpoint (default %(default)s)"
    )
    inv.add_argument("--content-type", help="default: from the file's suffix, JSON for --json")
    inv.add_argument("--accept", help="Accept header")
    inv.add_argument(
        "--wait",
        type=float,
        default=0,
        metavar="SECONDS",
        help="first wait this long for /ping to say 200",
    )
    inv.add_argument("--custom-attributes", help="X-Amzn-SageMaker-Custom-Attributes header")
    inv.add_argument(
        "--target-model",
        metavar="NAME",
        help="multi-model endpoint: invoke this model (POST /models/NAME/invoke)",
    )
    inv.set_defaults(func=cmd_invoke)

    det = sub.add_parser("detect", help="which accelerator would be used, and why not the others")
    det.add_argument("--json", action="store_true", help="machine-readable output")
    det.add_argument("--framework", help="overrides EIKIT_FRAMEWORK")
    det.add_argument(
        "--accelerator", choices=ACCELERATOR_CHOICES, help="overrides EIKIT_ACCELERATOR"
    )
    det.set_defaults(func=cmd_detect)

    from eikit import reliability
    from eikit.bench.command import register as register_bench

    reliability.register(sub)
    from eikit.compile.cli import register as register_compile

    register_compile(sub)
    register_bench(sub)

    try:
        from eikit.images.commands import register
    except ImportError:  # the image tools need the optional docker/boto3 dependencies
        pass
    else:
        register(sub)
    try:
        from eikit.cloud.commands import register as register_cloud
    except ImportError:  # package/deploy/migrate/advise: boto3 and numpy load lazily
        pass
    else:
        register_cloud(sub)
    return parser


class _StopPhases(logging.Handler):
    """Stop phases (``eikit.stopping``) as ``eikit: ...`` lines on standard error, once
    the user asked to stop (``interrupts.ShowOnceInterrupted``)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(logging.Formatter("eikit: %(message)s"))
        self.addFilter(interrupts.ShowOnceInterrupted())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    phases = interrupts.stop_log
    handler, level, propagate = _StopPhases(), phases.level, phases.propagate
    phases.addHandler(handler)
    phases.setLevel(logging.INFO)
    phases.propagate = False
    try:
        # Ctrl-C and SIGTERM stop the command even where SIGINT was inherited ignored
        # (a background job of a script); a second one during the stop kills.
        with interrupts.stop_signals():
            return int(args.func(args) or 0)
    except ConfigurationError as exc:
        sys.stderr.write("eikit: error: %s\n" % exc)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        phases.removeHandler(handler)
        phases.setLevel(level)
        phases.propagate = propagate


def serve_main() -> int:
    """The ``serve`` console script: what ``docker run IMAGE serve`` runs."""
    return main(["serve"] + sys.argv[1:])
