"""``eikit migrate endpoint | resume | rollback | verify | notebook``: argparse front ends
(the work is in ``eikit.cloud.migrate``, ``parity`` and ``notebook``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from eikit.cloud import cli_common
from eikit.cloud.aws import CloudError, stamp
from eikit.cloud.cli_common import (
    autoscale,
    aws_options,
    parity_options,
    run_command,
    scaling_options,
)
from eikit.cloud.guardrails import DEFAULT_TRAFFIC
from eikit.compile.cli import batch_sizes_arg
from eikit.errors import ConfigurationError

if TYPE_CHECKING:
    from eikit.cloud.neuron_plan import CompileOptions


def add_migrate_command(subparsers: Any) -> None:
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
    parity_options(ep)
    neuron_options(ep)
    scaling_options(ep)
    aws_options(ep, 3600.0)
    ep.set_defaults(func=cmd_migrate_endpoint)
    for verb, text in (
        ("resume", "finish an interrupted endpoint migration from its state file"),
        ("rollback", "put the endpoint back on its old config, with its autoscaling"),
    ):
        sub = msub.add_parser(verb, help=text, description=text)
        sub.add_argument("endpoint", nargs="?", help="endpoint name (finds its state file)")
        sub.add_argument("--state", help="state file (default ./eikit-migrate-ENDPOINT.json)")
        aws_options(sub, 3600.0)
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
    parity_options(ver)
    aws_options(ver, 600.0, dry_run=False)
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
    aws_options(nb, 1800.0)
    nb.set_defaults(func=cmd_migrate_notebook)


def neuron_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "Inferentia (ml.inf1.*, ml.inf2.*, ml.trn1.*)",
        "a model runs on the NeuronCores only once compiled for their generation; the plan "
        "reads each model archive's eikit-neuron.json and refuses one that is not compiled",
    )
    group.add_argument(
        "--compile",
        action="store_true",
        help="compile uncompiled models first (in-process where the generation's Neuron "
        "package is installed, else in its eikit image with Docker) and upload "
        "<name>-<generation>.tar.gz beside each archive",
    )
    how = group.add_mutually_exclusive_group()
    for flag, where, text in (
        ("--in-process", "in-process", "--compile here (the Neuron package installed)"),
        ("--docker", "docker", "--compile in the generation's eikit image"),
        ("--neo", "neo", "--compile with SageMaker Neo"),
    ):
        how.add_argument(flag, dest="compile_where", action="store_const", const=where, help=text)
    example = group.add_mutually_exclusive_group()
    example.add_argument(
        "--example",
        metavar="FILE",
        help="the request body to trace with (.json .npy ...; default: the first of --samples)",
    )
    example.add_argument(
        "--shape", action="append", help="or an input's shape, batch first (repeat per input)"
    )
    group.add_argument("--dtype", action="append", default=[], help="--shape's dtype (float32)")
    group.add_argument("--batch-sizes", type=batch_sizes_arg, help="one graph per size, e.g. 1,4,8")
    group.add_argument("--compile-image", help="--docker: the image (default eikit:<its tag>)")
    group.add_argument("--neo-s3", help="--neo: s3://bucket/prefix (default beside the model)")
    group.add_argument("--neo-role", help="--neo: IAM role ARN (default: the model's role)")
    group.add_argument(
        "--allow-uncompiled",
        action="store_true",
        help="move an uncompiled model anyway: it serves on the instance's CPU",
    )


def compile_options(args: argparse.Namespace) -> Optional[CompileOptions]:
    from eikit.cloud.neuron_plan import CompileOptions

    asked = args.compile or args.compile_where
    if not asked:
        if args.example or args.shape or args.batch_sizes or args.neo_s3 or args.neo_role:
            raise ConfigurationError("--example, --shape, --batch-sizes, --neo-*: with --compile")
        return None
    if args.allow_uncompiled:
        raise ConfigurationError("--compile or --allow-uncompiled, not both")
    return CompileOptions(
        where=args.compile_where or "auto",
        example=args.example,
        shapes=list(args.shape or []),
        dtypes=list(args.dtype),
        batch_sizes=args.batch_sizes,
        image=args.compile_image,
        neo_s3=args.neo_s3,
        neo_role=args.neo_role,
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
        clients = cli_common.make_clients(args)
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
            compile=compile_options(args),
            allow_uncompiled=args.allow_uncompiled,
        )
        plan = migrate.plan_migration(
            clients, args.endpoint, args.instance_type, args.image, stamp(), opts
        )
        migrate.show_plan(plan, sys.stdout)
        if args.dry_run:
            print("dry run: nothing changed")
            return 0
        return migrate.start(
            clients, plan, _state_path(args), cli_common.make_waiter(args), args.timeout, sys.stdout
        )

    return run_command(run)


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
    return Migration(
        cli_common.make_clients(args), state, cli_common.make_waiter(args), args.timeout, sys.stdout
    )


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

    return run_command(run)


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

    return run_command(run)


def cmd_verify(args: argparse.Namespace) -> int:
    from eikit.cloud import parity

    def run() -> int:
        if not args.samples:
            raise CloudError("verify needs --samples FILE|DIR")
        clients = cli_common.make_clients(args)
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

    return run_command(run)


def cmd_migrate_notebook(args: argparse.Namespace) -> int:
    from eikit.cloud.notebook import migrate_notebook

    return run_command(
        migrate_notebook,
        cli_common.make_clients(args),
        args.notebook,
        args.instance_type,
        args.stop,
        args.start,
        cli_common.make_waiter(args),
        args.timeout,
        sys.stdout,
        dry_run=args.dry_run,
    )
