"""``eikit build``, ``eikit push`` and ``eikit pin``: thin argparse front ends.

Nothing here imports docker or boto3 until a command runs, so ``eikit serve`` starts fast.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any, Dict, List, Optional

from eikit.images import matrix

logger = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    """Add ``build``, ``push`` and ``pin`` to the CLI's subparsers."""
    build = subparsers.add_parser(
        "build",
        help="build a serving image (Docker engine; pulls a missing base image)",
        description="Build docker/<framework>/Dockerfile for one target. The image is tagged "
        "eikit:<framework>-<version>-<target>-py<python> and with every --tag. A base image "
        "the engine lacks is pulled first (credentials: docker login), unless --no-pull.",
    )
    build.add_argument("--framework", required=True, choices=matrix.FRAMEWORKS)
    build.add_argument("--target", required=True, choices=matrix.TARGETS)
    build.add_argument(
        "--tag", action="append", default=[], help="another name for the image (repeatable)"
    )
    build.add_argument("--base-image", help="base image (default: the matrix's, for the target)")
    build.add_argument(
        "--no-pull",
        action="store_true",
        help="offline: never pull; a base image missing from the engine fails the build "
        "(scripts/make-base-image makes one without a registry)",
    )
    build.add_argument(
        "--wheelhouse",
        metavar="DIR",
        help="offline build: Python packages come only from this folder inside the "
        "repository (scripts/make-wheelhouse DIR)",
    )
    build.add_argument(
        "--build-arg",
        action="append",
        default=[],
        metavar="K=V",
        help="another build argument the Dockerfile takes (repeatable)",
    )
    build.add_argument("--no-cache", action="store_true", help="rebuild every step")
    build.add_argument(
        "-v", "--verbose", action="store_true", help="print the whole build log, not only steps"
    )
    build.add_argument("-q", "--quiet", action="store_true", help="print only the image id")
    build.set_defaults(func=cmd_build)

    push = subparsers.add_parser(
        "push",
        help="push images to Amazon ECR (or any registry with --registry)",
        description="Tag local images into REPOSITORY and push them. ECR: the repository is "
        "created when missing and the engine is logged in with a fresh token. Each --tag "
        "is pushed from --image, else from the local image eikit:TAG.",
    )
    push.add_argument("--repository", required=True, help="repository name (ECR: created)")
    push.add_argument("--region", help="AWS region (default: boto3's, e.g. AWS_DEFAULT_REGION)")
    push.add_argument(
        "--tag", action="append", default=[], help="tag to push (repeatable; default: --image's)"
    )
    push.add_argument("--image", help="the local image to push under every --tag")
    push.add_argument(
        "--registry",
        metavar="URL",
        help="push to this registry instead of ECR (e.g. 127.0.0.1:5000); no AWS calls",
    )
    push.add_argument("-q", "--quiet", action="store_true", help="print only the pushed names")
    push.set_defaults(func=cmd_push)

    from eikit.images.pins import add_pin_command

    add_pin_command(subparsers)


def parse_build_args(pairs: List[str]) -> Dict[str, str]:
    """``["K=V", ...]`` -> ``{"K": "V"}``; raises ValueError on a pair without ``=``."""
    args: Dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError("--build-arg %r is not K=V" % pair)
        args[name] = value
    return args


def cmd_build(args: argparse.Namespace) -> int:
    from eikit.images.build import BuildError, EngineUnavailable, build_image

    _show_progress(args.quiet)
    try:
        spec = matrix.image_spec(
            args.framework,
            args.target,
            base_image=args.base_image,
            wheelhouse=args.wheelhouse,
            extra_args=parse_build_args(args.build_arg),
        )
    except ValueError as exc:  # a bad argument, or a combination that never existed
        return _fail("build", exc, 2)
    caution = matrix.caution(args.framework, args.target)
    if caution:
        sys.stderr.write("eikit build: warning: %s\n" % caution)
    echo = _echo if args.verbose else None
    try:
        result = build_image(
            spec, args.tag, nocache=args.no_cache, echo=echo, pull=not args.no_pull
        )
    except (BuildError, EngineUnavailable) as exc:
        return _fail("build", exc)
    if args.quiet:
        print(result.image_id)
    else:
        print(
            "built %s (%s) in %.0f s, %d of %d steps from cache%s"
            % (
                " ".join(result.tags),
                result.image_id[:19],
                result.seconds,
                result.cached_steps,
                result.steps,
                "; pulled " + " ".join(result.pulled) if result.pulled else "",
            )
        )
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from eikit.images.build import EngineUnavailable
    from eikit.images.push import PushError, default_tags, push_to_ecr, push_to_registry

    _show_progress(args.quiet)
    tags = list(args.tag) or default_tags(args.image)
    if not tags:
        return _fail("push", "give --tag (the local image eikit:TAG) or --image", 2)
    try:
        if args.registry:
            results = push_to_registry(args.image, args.registry, args.repository, tags)
        else:
            results = push_to_ecr(args.image, args.repository, args.region, tags)
    except (PushError, EngineUnavailable) as exc:
        return _fail("push", exc)
    for result in results:
        print("%s@%s" % (result.reference, result.digest) if result.digest else result.reference)
    return 0


def _show_progress(quiet: bool) -> None:
    """Let the image modules' INFO progress through (the CLI's root level is WARNING)."""
    if not quiet:
        logging.getLogger("eikit.images").setLevel(logging.INFO)


def _echo(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _fail(command: str, error: Any, code: int = 1, stream: Optional[Any] = None) -> int:
    (stream or sys.stderr).write("eikit %s: error: %s\n" % (command, error))
    return code
