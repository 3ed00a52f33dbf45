"""``eikit compile``: argparse front end (the work is in ``eikit.compile.run``).

Nothing here imports numpy, docker or boto3 until the command runs: ``eikit serve`` parses
the same command line and its frontend stays free of them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any, List

from eikit.cloud.images import instance_family
from eikit.errors import ConfigurationError
from eikit.neuron.facts import GENERATIONS, generation_of_family

if TYPE_CHECKING:
    from eikit.compile.request import CompileRequest


def batch_sizes_arg(text: str) -> List[int]:
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError("comma-separated batch sizes, e.g. 1,4,8") from None
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError("positive batch sizes, e.g. 1,4,8")
    return values


def register(subparsers: Any) -> None:
    cmp = subparsers.add_parser(
        "compile",
        help="compile a model for Inferentia (inf1 or inf2) into a new model.tar.gz",
        description="Trace the TorchScript model with the generation's Neuron package "
        "(inf1: torch-neuron/neuron-cc; inf2, trn1: torch-neuronx/neuronx-cc), one graph per "
        "batch size, check the graphs against the original on records made from the example, "
        "and write a new model.tar.gz: the original model file, the same code/, the compiled "
        "graphs under neuron/<generation>/ and a manifest (eikit-neuron.json). The compilers "
        "run on any x86 machine: in-process where the Neuron package is installed, else in "
        "the generation's eikit image with Docker, or in the cloud with --neo.",
    )
    cmp.add_argument("model", help="a model folder or model.tar.gz (model.pt at its top)")
    gen = cmp.add_mutually_exclusive_group(required=True)
    gen.add_argument("--generation", choices=sorted(GENERATIONS))
    gen.add_argument("--instance-type", help="the generation of this type (ml.inf1.xlarge: inf1)")
    ex = cmp.add_mutually_exclusive_group(required=True)
    ex.add_argument("--example", help="one request body (.json, .jsonl, .csv, .npy, .npz)")
    ex.add_argument(
        "--shape",
        action="append",
        help="an input's shape, batch first (1x3x224x224); repeat for several inputs",
    )
    cmp.add_argument("--content-type", help="the --example's type (default: by its suffix)")
    cmp.add_argument(
        "--dtype", action="append", default=[], help="--shape's dtype (default float32)"
    )
    cmp.add_argument(
        "--batch-sizes",
        type=batch_sizes_arg,
        help="compile one graph per size, e.g. 1,4,8 (default: the example's batch)",
    )
    cmp.add_argument("--output", "-o", help="default: <model>-<generation>.tar.gz beside it")
    cmp.add_argument(
        "--in-place",
        action="store_true",
        help="MODEL is a folder: write the graphs and manifest into it, no archive",
    )
    cmp.add_argument("--code-dir", help="inference script folder to pack as code/")
    cmp.add_argument("--framework", help="eikit runtime (default: the installed one)")
    how = cmp.add_mutually_exclusive_group()
    how.add_argument(
        "--in-process", dest="where", action="store_const", const="in-process",
        help="with the Neuron package installed here",
    )  # fmt: skip
    how.add_argument(
        "--docker", dest="where", action="store_const", const="docker",
        help="in the generation's eikit image (eikit build --target inf1|inf2)",
    )  # fmt: skip
    how.add_argument(
        "--neo", dest="where", action="store_const", const="neo",
        help="with SageMaker Neo (needs --s3 and --role)",
    )  # fmt: skip
    cmp.set_defaults(where="auto")
    cmp.add_argument("--image", help="--docker: the image (default eikit:<its tag>)")
    cmp.add_argument("--s3", help="--neo: s3://bucket/prefix for the input and output")
    cmp.add_argument("--role", help="--neo: the IAM role ARN SageMaker uses")
    cmp.add_argument("--region", help="--neo: AWS region (default: boto3's)")
    cmp.add_argument("--neo-framework-version", help="--neo: InputConfig.FrameworkVersion")
    cmp.add_argument(
        "--neo-max-runtime", type=int, default=900, help="--neo: seconds per job (900)"
    )
    cmp.add_argument(
        "--rtol", type=float, help="parity: relative tolerance (default 0.02: Neuron uses bf16)"
    )
    cmp.add_argument("--atol", type=float, help="parity: absolute tolerance (default 0.001)")
    cmp.add_argument(
        "--compiler-arg", action="append", default=[], help="passed to the compiler (repeat)"
    )
    cmp.add_argument(
        "--no-split-check",
        dest="split",
        action="store_false",
        help="check only requests up to the largest size (serve with EIKIT_SPLIT_BATCHES=false)",
    )
    cmp.set_defaults(func=cmd_compile)


def generation_of(args: argparse.Namespace) -> str:
    if args.generation:
        return str(args.generation)
    try:
        found = generation_of_family(instance_family(args.instance_type))
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    if found is None:
        raise ConfigurationError(
            "%s is not an Inferentia or Trainium instance type: nothing to compile for"
            % args.instance_type
        )
    return found.name


def request_of(args: argparse.Namespace) -> CompileRequest:
    from eikit.compile.example import from_file, from_shapes
    from eikit.compile.neo import NeoOptions
    from eikit.compile.request import WHERE, CompileRequest

    if args.example:
        example = from_file(Path(args.example), args.content_type)
    else:
        example = from_shapes(args.shape, args.dtype)
    neo = None
    if args.where == "neo":
        neo = NeoOptions(
            s3=args.s3 or "",
            role=args.role or "",
            region=args.region,
            framework_version=args.neo_framework_version,
            max_runtime=args.neo_max_runtime,
        )
    if args.where not in WHERE:
        raise ConfigurationError("unknown compile mode %r" % args.where)
    return CompileRequest(
        source=Path(args.model),
        generation=generation_of(args),
        example=example,
        batch_sizes=args.batch_sizes,
        output=Path(args.output) if args.output else None,
        in_place=args.in_place,
        code_dir=Path(args.code_dir) if args.code_dir else None,
        framework=args.framework,
        where=args.where,
        image=args.image,
        rtol=args.rtol,
        atol=args.atol,
        compiler_args=list(args.compiler_arg),
        split=args.split,
        neo=neo,
    )


def cmd_compile(args: argparse.Namespace) -> int:
    from eikit.compile.run import compile_archive

    if not Path(args.model).exists():
        raise ConfigurationError("%s does not exist" % args.model)
    try:
        compile_archive(request_of(args))
    except ValueError as exc:  # an unknown generation or framework
        raise ConfigurationError(str(exc)) from None
    return 0
