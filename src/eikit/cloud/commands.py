"""``eikit package | deploy | migrate | advise``: thin argparse front ends.

Nothing here imports boto3, a framework or matplotlib until a command runs. Commands get
their AWS clients from ``make_clients`` and their waiting from ``make_waiter``: the seams
tests replace.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from eikit.cloud.aws import Clients, CloudError, Waiter, stamp
from eikit.cloud.guardrails import DEFAULT_TRAFFIC
from eikit.errors import ConfigurationError


def make_clients(args: argparse.Namespace) -> Clients:
    return Clients(region=args.region, profile=args.profile)


def make_waiter(args: argparse.Namespace) -> Waiter:
    return Waiter(interval=args.poll, progress_every=60.0, out=sys.stderr)


def _aws_options(parser: argparse.ArgumentParser, timeout: float, dry_run: bool = True) -> None:
    parser.add_argument("--region", help="AWS region (default: boto3's, e.g. AWS_DEFAULT_REGION)")
    parser.add_argument("--profile", help="AWS profile (default: boto3's chain)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=timeout,
        metavar="SECONDS",
        help="give up waiting after this long (default %(default)g)",
    )
    parser.add_argument(
        "--poll", type=float, default=15.0, metavar="SECONDS", help=argparse.SUPPRESS
    )
    if dry_run:
        parser.add_argument(
            "--dry-run", action="store_true", help="print every call it would make; change nothing"
        )


def _scaling_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "autoscaling", "target tracking on invocations per instance, set once InService"
    )
    group.add_argument("--min", type=int, metavar="N", help="fewest instances per variant")
    group.add_argument("--max", type=int, metavar="N", help="most instances per variant")
    group.add_argument(
        "--invocations-per-instance",
        type=float,
        metavar="N",
        help="the target: invocations per instance a minute",
    )


def autoscale(args: argparse.Namespace) -> Optional[Tuple[int, int, float]]:
    given = (args.min, args.max, args.invocations_per_instance)
    if all(value is None for value in given):
        return None
    if any(value is None for value in given):
        raise ConfigurationError("give --min, --max and --invocations-per-instance together")
    low, high, per_instance = given
    if not 1 <= low <= high or per_instance <= 0:
        raise ConfigurationError(
            "autoscaling: 1 <= --min <= --max, and --invocations-per-instance above 0"
        )
    return int(low), int(high), float(per_instance)


def _parity_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("parity", "compare answers before and after")
    group.add_argument(
        "--samples",
        metavar="FILE|DIR",
        help="sample requests, one per file (.json .jsonl .csv .npy .npz .txt .bin)",
    )
    group.add_argument("--baseline", help="baseline file (default ./eikit-baseline-ENDPOINT.json)")
    group.add_argument("--content-type", help="Content-Type of every sample (default: by suffix)")
    group.add_argument("--accept", help="Accept header sent with every sample")
    group.add_argument("--rtol", type=float, default=1e-5, help="default %(default)g")
    group.add_argument("--atol", type=float, default=1e-6, help="default %(default)g")
    group.add_argument(
        "--repeat", type=int, default=3, help="calls per sample, for latency (default 3)"
    )


def register(subparsers: Any) -> None:
    pkg = subparsers.add_parser(
        "package",
        help="make a model.tar.gz from a model folder and a code folder",
        description="Pack the model files at the top and --code-dir as code/, the layout "
        "SageMaker extracts to /opt/ml/model.",
    )
    pkg.add_argument("--model-dir", required=True, help="the model files (e.g. model.pt)")
    pkg.add_argument("--code-dir", help="inference.py, requirements.txt, lib/ (becomes code/)")
    pkg.add_argument("--output", "-o", default="model.tar.gz", help="default %(default)s")
    pkg.set_defaults(func=cmd_package)

    dep = subparsers.add_parser(
        "deploy",
        help="create or update a SageMaker endpoint serving an image and a model.tar.gz",
        description="CreateModel, CreateEndpointConfig, CreateEndpoint (UpdateEndpoint when "
        "the endpoint exists), then wait for InService.",
    )
    dep.add_argument("--endpoint", required=True, help="endpoint name")
    dep.add_argument("--image", required=True, help="image URI (ECR), e.g. from eikit push")
    dep.add_argument("--model-data", required=True, help="s3://.../model.tar.gz (or prefix/)")
    dep.add_argument("--role", required=True, help="the SageMaker execution role ARN")
    dep.add_argument("--instance-type", required=True, help="e.g. ml.c6i.xlarge, ml.inf1.xlarge")
    dep.add_argument("--instance-count", type=int, default=1)
    dep.add_argument("--accelerator-type", help="attach an EI accelerator (ml.eia2.medium, ...)")
    dep.add_argument(
        "--multi-model", action="store_true", help="serve every model under an S3 prefix"
    )
    dep.add_argument(
        "--env", action="append", default=[], metavar="K=V", help="container environment"
    )
    dep.add_argument("--name", help="model and endpoint-config name (default ENDPOINT-STAMP)")
    _scaling_options(dep)
    _aws_options(dep, 1800.0)
    dep.set_defaults(func=cmd_deploy)

    mig = subparsers.add_parser(
        "migrate", help="move an endpoint or notebook instance to another instance type, off EI"
    )
    msub = mig.add_subparsers(dest="migrate_command", metavar="WHAT")
    msub.required = True
    ep = msub.add_parser(
        "endpoint",
        help="new config on INSTANCE_TYPE, guardrails, parity, autoscaling kept",
        description="Read the endpoint and run preflight checks; plan a new EndpointConfig on "
        "--instance-type without EI (with the eikit image for the new target); record the old "
        "endpoint's answers (--samples); remove autoscaling; UpdateEndpoint blue/green with "
        "canary or linear traffic shifting and auto-rollback on alarms; restore autoscaling; "
        "compare the answers. A state file records each step for `eikit migrate "
        "resume|rollback`.",
    )
    ep.add_argument("endpoint", help="endpoint name")
    ep.add_argument("--instance-type", required=True)
    ep.add_argument("--image", help="image for the new instance type (default: eikit's)")
    ep.add_argument("--state", help="state file (default ./eikit-migrate-ENDPOINT.json)")
    ep.add_argument(
        "--traffic",
        default=DEFAULT_TRAFFIC,
        metavar="all-at-once[:S]|canary:PCT:S|linear:PCT:S",
        help="blue/green traffic shifting and baking seconds (default %(default)s; Inf1 "
        "endpoints always shift all at once)",
    )
    ep.add_argument(
        "--max-latency-ms",
        type=float,
        help="model latency that rolls the update back (default 3 x the baseline p99, "
        "or 2000 without --samples)",
    )
    _parity_options(ep)
    _scaling_options(ep)
    _aws_options(ep, 3600.0)
    ep.set_defaults(func=cmd_migrate_endpoint)
    for verb, text in (
        ("resume", "finish an interrupted endpoint migration from its state file"),
        ("rollback", "put the endpoint back on its old config, with its autoscaling"),
    ):
        sub = msub.add_parser(verb, help=text, description=text)
        sub.add_argument("endpoint", nargs="?", help="endpoint name (finds its state file)")
        sub.add_argument("--state", help="state file (default ./eikit-migrate-ENDPOINT.json)")
        _aws_options(sub, 3600.0)
        sub.set_defaults(func=cmd_resume if verb == "resume" else cmd_rollback)
    ver = msub.add_parser(
        "verify",
        help="compare an endpoint's answers with a recorded baseline",
        description="Replay --samples against the endpoint as it is now and compare with the "
        "baseline (numbers within --rtol/--atol, other bodies exactly); --record writes the "
        "baseline instead. Exits 1 when an answer differs.",
    )
    ver.add_argument("endpoint", help="endpoint name")
    ver.add_argument("--record", action="store_true", help="record the baseline now")
    _parity_options(ver)
    _aws_options(ver, 600.0, dry_run=False)
    ver.set_defaults(func=cmd_verify)
    nb = msub.add_parser(
        "notebook",
        help="change a notebook instance's type and remove its EI accelerator",
        description="The notebook must be Stopped (--stop stops it and waits). Then "
        "UpdateNotebookInstance with the new type and the accelerator disassociated.",
    )
    nb.add_argument("notebook", help="notebook instance name")
    nb.add_argument("--instance-type", required=True, help="e.g. ml.g4dn.xlarge, ml.t3.medium")
    nb.add_argument("--stop", action="store_true", help="stop it first if it is running")
    nb.add_argument("--start", action="store_true", help="start it again afterwards")
    _aws_options(nb, 1800.0)
    nb.set_defaults(func=cmd_migrate_notebook)

    from eikit.cloud.advise_cli import add_advise_command

    add_advise_command(subparsers)


def parse_env(pairs: List[str]) -> Dict[str, str]:
    env: Dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ConfigurationError("--env %r is not K=V" % pair)
        env[name] = value
    return env


def _run(func: Any, *args: Any, **kwargs: Any) -> int:
    try:
        return int(func(*args, **kwargs))
    except CloudError as exc:
        sys.stderr.write("eikit: error: %s\n" % exc)
        return 1


def cmd_package(args: argparse.Namespace) -> int:
    from eikit.cloud.package import describe_archive, package_model

    output = Path(args.output)
    package_model(Path(args.model_dir), Path(args.code_dir) if args.code_dir else None, output)
    print(describe_archive(output))
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    from eikit.cloud.deploy import DeployRequest, deploy

    request = DeployRequest(
        endpoint=args.endpoint,
        image=args.image,
        model_data=args.model_data,
        role=args.role,
        instance_type=args.instance_type,
        accelerator_type=args.accelerator_type,
        multi_model=args.multi_model,
        env=parse_env(args.env),
        instance_count=args.instance_count,
        name=args.name,
        autoscale=autoscale(args),
    )
    return _run(
        deploy,
        make_clients(args),
        request,
        stamp(),
        make_waiter(args),
        args.timeout,
        sys.stdout,
        dry_run=args.dry_run,
    )


def _state_path(args: argparse.Namespace) -> Path:
    from eikit.cloud.state import default_path

    if args.state:
        return Path(args.state)
    if not getattr(args, "endpoint", None):
        raise ConfigurationError("give the endpoint name or --state FILE")
    return default_path(args.endpoint)


def cmd_migrate_endpoint(args: argparse.Namespace) -> int:
    from eikit.cloud import migrate

    def run() -> int:
        clients = make_clients(args)
        opts = migrate.Options(
            image=args.image,
            traffic=args.traffic,
            samples=args.samples,
            baseline=args.baseline,
            content_type=args.content_type,
            accept=args.accept,
            rtol=args.rtol,
            atol=args.atol,
            repeat=max(1, args.repeat),
            latency_ms=args.max_latency_ms,
            autoscale=autoscale(args),
        )
        plan = migrate.plan_migration(
            clients, args.endpoint, args.instance_type, args.image, stamp(), opts
        )
        migrate.show_plan(plan, sys.stdout)
        if args.dry_run:
            print("dry run: nothing changed")
            return 0
        return migrate.start(
            clients, plan, _state_path(args), make_waiter(args), args.timeout, sys.stdout
        )

    return _run(run)


def _migration(args: argparse.Namespace) -> Any:
    from eikit.cloud.migrate import Migration
    from eikit.cloud.state import StateFile

    state = StateFile.load(_state_path(args))
    recorded = state.data.get("region")
    if args.region and recorded and args.region != recorded:
        raise CloudError(
            "%s is a migration in region %s, not --region %s: leave --region out"
            % (state.path, recorded, args.region)
        )
    args.region = recorded or args.region
    return Migration(make_clients(args), state, make_waiter(args), args.timeout, sys.stdout)


def cmd_resume(args: argparse.Namespace) -> int:
    def run() -> int:
        migration = _migration(args)
        print(
            "resuming the migration of %s at step %s"
            % (migration.s["endpoint"], migration.state.step)
        )
        if args.dry_run:
            return 0
        return int(migration.execute())

    return _run(run)


def cmd_rollback(args: argparse.Namespace) -> int:
    def run() -> int:
        migration = _migration(args)
        print(
            "rolling back the migration of %s (step %s) to %s"
            % (migration.s["endpoint"], migration.state.step, migration.s["old_config"])
        )
        if args.dry_run:
            return 0
        return int(migration.rollback())

    return _run(run)


def cmd_verify(args: argparse.Namespace) -> int:
    from eikit.cloud import parity

    def run() -> int:
        if not args.samples:
            raise CloudError("verify needs --samples FILE|DIR")
        clients = make_clients(args)
        samples = parity.load_samples(Path(args.samples), args.content_type, args.accept)
        path = Path(args.baseline) if args.baseline else parity.default_path(args.endpoint)
        if args.record:
            config = clients.sagemaker.describe_endpoint(EndpointName=args.endpoint)
            baseline = parity.record(
                clients, args.endpoint, config["EndpointConfigName"], samples, max(1, args.repeat)
            )
            parity.save(path, baseline)
            times = [t for s in baseline["samples"] for t in s["latency_ms"]]
            print(
                "baseline of %s (%s): %d sample(s) in %s, latency ms %s"
                % (args.endpoint, baseline["config"], len(samples), path, parity.percentiles(times))
            )
            return 0
        report = parity.check(
            clients,
            args.endpoint,
            parity.load(path),
            samples,
            args.rtol,
            args.atol,
            max(1, args.repeat),
        )
        for line in report.lines(args.rtol, args.atol):
            print(line)
        return 0 if report.ok else 1

    return _run(run)


def cmd_migrate_notebook(args: argparse.Namespace) -> int:
    from eikit.cloud.notebook import migrate_notebook

    return _run(
        migrate_notebook,
        make_clients(args),
        args.notebook,
        args.instance_type,
        args.stop,
        args.start,
        make_waiter(args),
        args.timeout,
        sys.stdout,
        dry_run=args.dry_run,
    )
