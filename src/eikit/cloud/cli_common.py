"""What the cloud commands share: their AWS clients and waiting (the seams tests replace),
the AWS, autoscaling and parity options, and how a refused step ends a command.

Nothing here imports boto3 until a command runs.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Optional, Tuple

from eikit.cloud.aws import Clients, CloudError, Waiter
from eikit.errors import ConfigurationError


def make_clients(args: argparse.Namespace) -> Clients:
    return Clients(region=args.region, profile=args.profile)


def make_waiter(args: argparse.Namespace) -> Waiter:
    return Waiter(interval=args.poll, progress_every=60.0, out=sys.stderr)


def aws_options(parser: argparse.ArgumentParser, timeout: float, dry_run: bool = True) -> None:
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


def scaling_options(parser: argparse.ArgumentParser) -> None:
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


def parity_options(parser: argparse.ArgumentParser) -> None:
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


def run_command(func: Any, *args: Any, **kwargs: Any) -> int:
    try:
        return int(func(*args, **kwargs))
    except CloudError as exc:
        sys.stderr.write("eikit: error: %s\n" % exc)
        return 1
