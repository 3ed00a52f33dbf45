"""``eikit advise``: measure a model here, size it against EI and SageMaker targets."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from eikit.errors import ConfigurationError


def _ints(text: str) -> List[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("a comma-separated list of integers: %r" % text) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("positive integers, comma-separated: %r" % text)
    return sorted(set(values))


def add_advise_command(subparsers: Any) -> None:
    adv = subparsers.add_parser(
        "advise",
        help="measure a model here; size it against EI and SageMaker instance types",
        description="Serve the model with a real eikit server on loopback, measure latency, "
        "throughput and memory at a few batch sizes and concurrencies, count FLOPs where the "
        "framework can, then estimate fit, latency, throughput and cost per million "
        "inferences on EI accelerators and SageMaker instance types from an editable "
        "targets file. Writes a table, JSON and a PNG chart; every figure says whether it "
        "was measured or estimated.",
    )
    adv.add_argument("--model-dir", required=True, help="model files, or a model.tar.gz")
    adv.add_argument("--code-dir", help="folder with the inference script (becomes code/)")
    example = adv.add_mutually_exclusive_group(required=True)
    example.add_argument("--json", help="one example request as JSON text (one record)")
    example.add_argument("--input", help="a file holding one example request (.json or .npy)")
    adv.add_argument("--content-type", help="default: from the --input suffix, JSON for --json")
    adv.add_argument(
        "--batch-sizes", type=_ints, default=[1, 8, 32], help="default 1,8,32 (records per request)"
    )
    adv.add_argument("--concurrency", type=_ints, default=[1, 4], help="default 1,4")
    adv.add_argument(
        "--duration", type=float, default=1.0, metavar="SECONDS", help="per point (default 1)"
    )
    adv.add_argument("--workers", type=int, default=1, help="server workers (default 1)")
    adv.add_argument("--accelerator", default="cpu", help="what the server here uses (default cpu)")
    adv.add_argument("--framework", help="runtime for the FLOP count (default: the installed one)")
    adv.add_argument("--targets", help="targets file (default: eikit's, dated and sourced)")
    adv.add_argument("--out", default="eikit-advise", help="folder for advise.json/.png")
    adv.add_argument("--no-chart", action="store_true", help="skip the PNG (no matplotlib)")
    adv.set_defaults(func=cmd_advise)


def _example(args: argparse.Namespace) -> Any:
    from eikit import codecs

    if args.json is not None:
        return args.json.encode(), args.content_type or codecs.JSON
    path = Path(args.input)
    if not path.is_file():
        raise ConfigurationError("no such file: %s" % path)
    from eikit.invoke import guess_content_type

    return path.read_bytes(), args.content_type or guess_content_type(path)


def profile(
    model_tree: Path,
    framework: Optional[str],
    example: bytes,
    content_type: str,
    batches: List[int],
) -> Dict[int, Optional[Dict[str, float]]]:
    """The runtime's in-process profile per batch size (None where it cannot count)."""
    from eikit.cloud.measure import example_array
    from eikit.runtime import find_runtime

    runtime = find_runtime(framework)
    result: Dict[int, Optional[Dict[str, float]]] = {}
    for batch in batches:
        array = example_array(example, content_type, batch)
        result[batch] = runtime.profile_model(model_tree, array) if array is not None else None
    return result


def cmd_advise(args: argparse.Namespace) -> int:
    import tempfile

    from eikit.cloud import advise, report
    from eikit.cloud.measure import measure
    from eikit.local import layout_model_tree

    body, content_type = _example(args)
    targets = advise.load_targets(Path(args.targets) if args.targets else None)
    model = Path(args.model_dir)
    code = Path(args.code_dir) if args.code_dir else None
    if not model.exists():
        raise ConfigurationError("--model-dir %s does not exist" % model)
    sys.stderr.write(
        "measuring: %d batch sizes x %d concurrencies, %.1f s each\n"
        % (len(args.batch_sizes), len(args.concurrency), args.duration)
    )
    measurement = measure(
        model, code, body, content_type, args.batch_sizes, args.concurrency, args.duration,
        workers=args.workers, accelerator=args.accelerator,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="eikit-profile-") as work:
        tree = layout_model_tree(model, code, Path(work) / "tree")
        profiles = profile(tree / "model", args.framework, body, content_type, args.batch_sizes)
    from eikit.runtime import find_runtime

    framework = find_runtime(args.framework).name
    result = advise.analyse(measurement, profiles, targets, args.accelerator, framework)
    out = Path(args.out)
    report.write_json(result, out / "advise.json")
    print(report.table(result), end="")
    written = [str(out / "advise.json")]
    if not args.no_chart:
        report.write_chart(result, out / "advise.png")
        written.append(str(out / "advise.png"))
    print("written: %s" % ", ".join(written))
    return 0
