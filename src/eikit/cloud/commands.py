"""``eikit package | deploy | migrate | advise``: thin argparse front ends.

Nothing here imports boto3, a framework or matplotlib until a command runs. Commands get
their AWS clients and waiting from ``eikit.cloud.cli_common`` (the seams tests replace).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Dict, List

from eikit.cloud import cli_common
from eikit.cloud.aws import stamp
from eikit.cloud.cli_common import autoscale, aws_options, run_command, scaling_options
from eikit.cloud.migrate_cli import add_migrate_command
from eikit.errors import ConfigurationError


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
    image = dep.add_mutually_exclusive_group(required=True)
    image.add_argument("--image", help="image URI (ECR), e.g. from eikit push")
    image.add_argument(
        "--repository",
        metavar="REPO",
        help="or eikit's image for the instance type in REPO "
        "(ACCOUNT.dkr.ecr.REGION.amazonaws.com/eikit): inf1 and inf2 get different ones",
    )
    dep.add_argument(
        "--framework", default="pytorch", help="--repository: the framework (%(default)s)"
    )
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
    dep.add_argument(
        "--allow-uncompiled",
        action="store_true",
        help="Inferentia: deploy a model not compiled for the instance type's generation "
        "(it serves on the instance's CPU)",
    )
    scaling_options(dep)
    aws_options(dep, 1800.0)
    dep.set_defaults(func=cmd_deploy)

    add_migrate_command(subparsers)

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


def cmd_package(args: argparse.Namespace) -> int:
    from eikit.cloud.package import describe_archive, package_model

    output = Path(args.output)
    package_model(Path(args.model_dir), Path(args.code_dir) if args.code_dir else None, output)
    print(describe_archive(output))
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    from eikit.cloud.deploy import DeployRequest, deploy
    from eikit.cloud.images import image_for

    def run() -> int:
        ei = bool(args.accelerator_type)
        image = args.image or image_for(args.instance_type, args.framework, args.repository, ei).uri
        request = DeployRequest(
            endpoint=args.endpoint,
            image=image,
            model_data=args.model_data,
            role=args.role,
            instance_type=args.instance_type,
            accelerator_type=args.accelerator_type,
            multi_model=args.multi_model,
            env=parse_env(args.env),
            instance_count=args.instance_count,
            name=args.name,
            autoscale=autoscale(args),
            allow_uncompiled=args.allow_uncompiled,
        )
        return deploy(
            cli_common.make_clients(args),
            request,
            stamp(),
            cli_common.make_waiter(args),
            args.timeout,
            sys.stdout,
            dry_run=args.dry_run,
        )

    return run_command(run)
