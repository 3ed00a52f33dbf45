"""``eikit bench``: load a model (a folder it serves itself) or a running endpoint at a sweep
of concurrencies; report req/s, p50/p90/p99, the server's CPU per request and memory; write
JSON and a PNG; ``--b`` runs a second configuration side by side, in alternating rounds.

    eikit bench MODEL_DIR --json '[[1, 2, 3, 4]]' --concurrency 1,4,16 --out bench.json
    eikit bench MODEL_DIR --body x.npy --b EIKIT_METRICS=false --rounds 4
    eikit bench http://127.0.0.1:8080 --json '[[1, 2, 3, 4]]'
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from eikit.bench import load, report, runner
from eikit.errors import ConfigurationError
from eikit.local import layout_model_tree


def _settings(items: List[str], option: str) -> Dict[str, str]:
    found = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConfigurationError("%s takes NAME=VALUE, not %r" % (option, item))
        found[name] = value
    return found


def _concurrency(text: str) -> List[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("expected positive integers such as 1,4,16")
    return values


def register(sub: Any) -> None:
    p = sub.add_parser(
        "bench",
        help="load a model or endpoint: req/s, latency, CPU and memory, A/B",
        description="Load a model (a folder it serves itself) or a running endpoint at a sweep "
        "of concurrencies: req/s, p50/p90/p99, the server's CPU per request and memory; JSON "
        "and a PNG; --b (--b-serve, --b-url) runs a second configuration in alternating rounds.",
    )
    p.add_argument("target", help="model folder (or model.tar.gz) to serve, or an endpoint URL")
    body = p.add_mutually_exclusive_group(required=True)
    body.add_argument("--body", type=Path, help="file to POST to /invocations")
    body.add_argument("--json", help="JSON text to POST to /invocations")
    p.add_argument("--content-type", help="default: from --body's suffix, JSON for --json")
    p.add_argument("--accept", default="application/json")
    p.add_argument("--code-dir", type=Path, help="the inference script's folder (model/code)")
    p.add_argument("--concurrency", type=_concurrency, default=[1, 4, 16], help="e.g. 1,4,16")
    p.add_argument("--duration", type=float, default=10.0, help="seconds measured per point")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of load before each point")
    p.add_argument("--rounds", type=int, default=1, help="rounds (alternating with --b)")
    p.add_argument("--workers", type=int, help="SAGEMAKER_MODEL_SERVER_WORKERS of a served model")
    p.add_argument("--threads", type=int, default=1, help="EIKIT_WORKER_THREADS (default 1)")
    p.add_argument("--env", action="append", default=[], help="NAME=VALUE for every server")
    p.add_argument("--a", action="append", default=[], help="NAME=VALUE for config A only")
    p.add_argument("--b", action="append", default=[], help="NAME=VALUE for config B: A/B run")
    p.add_argument("--serve", help="command that serves config A (default: this eikit)")
    p.add_argument("--b-serve", help="command that serves config B (e.g. another venv's serve)")
    p.add_argument("--b-url", help="config B is this running endpoint")
    p.add_argument("--engine", choices=("auto", "wrk", "python"), default="auto")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds one request may take")
    p.add_argument("--ready-timeout", type=float, default=300.0)
    p.add_argument("--out", type=Path, help="write everything as JSON here")
    p.add_argument("--plot", type=Path, help="draw req/s and latency here (PNG; matplotlib)")
    p.set_defaults(func=cmd_bench)


def _body(args: argparse.Namespace) -> Tuple[bytes, str]:
    # Here, not at the top: every command (``serve`` too) registers this one, and the
    # codecs import numpy, which only a bench run needs.
    from eikit import codecs
    from eikit.invoke import guess_content_type

    if args.json is not None:
        return args.json.encode("utf-8"), args.content_type or codecs.JSON
    try:
        data = args.body.read_bytes()
    except OSError as exc:
        raise ConfigurationError("cannot read --body: %s" % exc) from None
    return data, args.content_type or guess_content_type(args.body)


def configs(args: argparse.Namespace) -> List[runner.Config]:
    """Config A (and B when --b, --b-serve or --b-url is given)."""
    is_url = args.target.startswith(("http://", "https://"))
    env = {"EIKIT_WORKER_THREADS": str(args.threads)}
    if args.workers:
        env["SAGEMAKER_MODEL_SERVER_WORKERS"] = str(args.workers)
    env.update(_settings(args.env, "--env"))
    a_env = dict(env, **_settings(args.a, "--a"))
    b_env = dict(env, **_settings(args.b, "--b"))
    serve_a = shlex.split(args.serve) if args.serve else None
    a = runner.Config("A", url=args.target if is_url else None, command=serve_a, env=a_env)
    if not (args.b or args.b_serve or args.b_url):
        return [a]
    if is_url and not args.b_url:
        raise ConfigurationError("A is a running endpoint: give B one too, with --b-url")
    b_command = shlex.split(args.b_serve) if args.b_serve else serve_a
    b = runner.Config("B", url=args.b_url, command=b_command, env=b_env)
    if (a.url, a.command, a.env) == (b.url, b.command, b.env):
        raise ConfigurationError("A and B are the same: --b, --b-serve or --b-url must differ")
    return [a, b]


def cmd_bench(args: argparse.Namespace) -> int:
    if args.rounds < 1 or args.duration <= 0:
        raise ConfigurationError("--rounds must be at least 1 and --duration positive")
    if args.engine == "wrk" and load.find_wrk() is None:
        raise ConfigurationError(load.WRK_HINT)
    body, content_type = _body(args)
    chosen = configs(args)
    plan = runner.Plan(
        body=body,
        content_type=content_type,
        accept=args.accept,
        concurrency=args.concurrency,
        duration=args.duration,
        warmup=args.warmup,
        rounds=args.rounds,
        engine=args.engine,
        timeout=args.timeout,
        ready_timeout=args.ready_timeout,
    )

    def progress(text: str) -> None:
        print("[bench] " + text, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="eikit-bench-tree-") as work:
        base: Optional[Path] = None
        if any(config.started for config in chosen):
            model = Path(args.target)
            if not model.exists():
                raise ConfigurationError("%s is neither a model folder nor a URL" % model)
            base = layout_model_tree(model, args.code_dir, Path(work) / "tree")
        try:
            result = runner.run(chosen, plan, base, progress)
        except (RuntimeError, TimeoutError) as exc:  # a server that did not start or answer
            raise ConfigurationError(str(exc)) from None
    print(report.table(result))
    engine = result.points[0].load["engine"] if result.points else args.engine
    if args.out:
        report.write_json(result, args.out, {"machine": report.facts(engine)})
        progress("wrote %s" % args.out)
    if args.plot:
        report.write_plot(result, args.plot)
        progress("drew %s" % args.plot)
    return 1 if any(point.load["failed"] for point in result.points) else 0
