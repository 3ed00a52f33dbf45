"""The image matrix as data: which Dockerfile, base image, framework and Python each
(framework, target) image uses, and the build arguments and tag of one image.

``docker/<framework>/Dockerfile`` holds the same defaults (tests keep the two in step); this
module passes ``TARGET`` and ``BASE_IMAGE`` explicitly, so a build never depends on the
Dockerfile's choice of base, and only the one base image it names has to be on the engine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple, Union

from eikit.neuron.facts import GENERATIONS, refusal, warning

FRAMEWORKS: Tuple[str, ...] = ("pytorch", "tensorflow", "mxnet")
# inf1, inf2: one image per NeuronCore generation (inf2's also serves Trn1); a framework
# only has the generations it ran on (eikit.neuron.facts; MXNet has no inf2).
TARGETS: Tuple[str, ...] = ("cpu", "gpu", "eia", "inf1", "inf2")
# Tags of eikit's first images named the one Neuron target "neuron": what each was.
LEGACY_TARGETS: Dict[Tuple[str, str], str] = {
    ("pytorch", "neuron"): "inf2",
    ("tensorflow", "neuron"): "inf2",
    ("mxnet", "neuron"): "inf1",
}

# Build arguments each Dockerfile declares (tests check them against the Dockerfiles).
COMMON_BUILD_ARGS: Tuple[str, ...] = (
    "TARGET",
    "BASE_IMAGE",
    "WHEELHOUSE",
    "PIP_INDEX_URL",
    "NEURON_PIP_INDEX",
    "NEURON_APT_REPO",
    "EIKIT_UID",
)
BUILD_ARGS: Dict[str, Tuple[str, ...]] = {
    "pytorch": COMMON_BUILD_ARGS + ("TORCH_INDEX_URL",),
    "tensorflow": COMMON_BUILD_ARGS,
    "mxnet": COMMON_BUILD_ARGS,
}


@dataclass(frozen=True)
class Variant:
    """One cell of the matrix: what the Dockerfile installs for this target by default."""

    framework: str
    target: str
    framework_version: str
    python: str
    base_image: str

    @property
    def tag(self) -> str:
        """``pytorch-2.13-cpu-py311``: framework, major.minor, target, CPython version."""
        short = ".".join(self.framework_version.split(".")[:2])
        return "%s-%s-%s-py%s" % (self.framework, short, self.target, self.python.replace(".", ""))


def _variants(*rows: Tuple[str, str, str, str, str]) -> Dict[Tuple[str, str], Variant]:
    return {(row[0], row[1]): Variant(*row) for row in rows}


VARIANTS: Dict[Tuple[str, str], Variant] = _variants(
    # framework, target, framework version, Python, default base image
    ("pytorch", "cpu", "2.13.0", "3.11", "python:3.11-slim-bookworm"),
    ("pytorch", "gpu", "2.13.0", "3.12", "nvidia/cuda:13.0.0-base-ubuntu24.04"),
    ("pytorch", "eia", "1.5.1", "3.8", "ubuntu:20.04"),
    ("pytorch", "inf1", "1.13.1", "3.10", "ubuntu:22.04"),
    ("pytorch", "inf2", "2.9.0", "3.12", "ubuntu:24.04"),
    ("tensorflow", "cpu", "2.21.0", "3.11", "python:3.11-slim-bookworm"),
    ("tensorflow", "gpu", "2.21.0", "3.12", "nvidia/cuda:12.8.1-base-ubuntu24.04"),
    ("tensorflow", "eia", "2.0.0", "3.8", "ubuntu:20.04"),
    ("tensorflow", "inf1", "2.10.1", "3.10", "ubuntu:22.04"),
    ("tensorflow", "inf2", "2.10.1", "3.10", "ubuntu:22.04"),
    ("mxnet", "cpu", "1.9.1", "3.11", "python:3.11-slim-bookworm"),
    ("mxnet", "gpu", "1.9.1", "3.10", "nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04"),
    ("mxnet", "eia", "1.7.0", "3.8", "ubuntu:20.04"),
    ("mxnet", "inf1", "1.8.0", "3.8", "ubuntu:20.04"),
)


@dataclass(frozen=True)
class ImageSpec:
    """Everything a build needs: ``dockerfile`` is relative to ``context`` (the repo root)."""

    framework: str
    target: str
    dockerfile: str
    context: str
    build_args: Dict[str, str]
    tag: str
    python: str
    framework_version: str
    base_image: str


def repo_root() -> Path:
    """The build context: the checkout this module runs from, else the current directory."""
    root = Path(__file__).resolve().parents[3]
    return root if (root / "docker").is_dir() else Path.cwd()


def dockerfile_path(framework: str) -> str:
    """``docker/<framework>/Dockerfile``, relative to the build context."""
    _check(framework, FRAMEWORKS, "framework")
    return "docker/%s/Dockerfile" % framework


def variant(framework: str, target: str) -> Variant:
    _check(framework, FRAMEWORKS, "framework")
    _check(target, TARGETS, "target")
    if (framework, target) not in VARIANTS:
        raise ValueError(refusal(framework, target) or "no %s image for %s" % (framework, target))
    return VARIANTS[(framework, target)]


def caution(framework: str, target: str) -> Optional[str]:
    """What to know before building or deploying this image (a frozen or archived Neuron
    stack), None for the others."""
    return warning(framework, target) if target in GENERATIONS else None


def image_spec(
    framework: str,
    target: str,
    base_image: Optional[str] = None,
    wheelhouse: Optional[Union[str, os.PathLike[str]]] = None,
    extra_args: Optional[Mapping[str, str]] = None,
    context: Optional[Union[str, os.PathLike[str]]] = None,
) -> ImageSpec:
    """The spec of one image.

    ``wheelhouse`` (a directory inside the context) makes the build offline: Python packages
    come only from it. ``extra_args`` sets other declared build arguments (not ``TARGET``).
    """
    cell = variant(framework, target)
    root = Path(context) if context is not None else repo_root()
    base = base_image or cell.base_image
    args: Dict[str, str] = {"TARGET": target, "BASE_IMAGE": base}
    if wheelhouse is not None and str(wheelhouse) != "":
        args["WHEELHOUSE"] = _inside(root, Path(wheelhouse))
    for name, value in (extra_args or {}).items():
        if name == "TARGET" or name not in BUILD_ARGS[framework]:
            known = ", ".join(a for a in BUILD_ARGS[framework] if a != "TARGET")
            raise ValueError(
                "build argument %r is not one docker/%s/Dockerfile takes (the target is chosen "
                "by image_spec's target); known: %s" % (name, framework, known)
            )
        args[name] = str(value)
    return ImageSpec(
        framework=framework,
        target=target,
        dockerfile=dockerfile_path(framework),
        context=str(root),
        build_args=args,
        tag=cell.tag,
        python=cell.python,
        framework_version=cell.framework_version,
        base_image=args["BASE_IMAGE"],
    )


def _inside(root: Path, wheelhouse: Path) -> str:
    """The wheelhouse as a path relative to the build context (COPY only sees the context)."""
    path = wheelhouse if wheelhouse.is_absolute() else root / wheelhouse
    try:
        relative = path.resolve().relative_to(root.resolve())
    except ValueError:
        raise ValueError(
            "wheelhouse %s is outside the build context %s; put it inside (e.g. .wheelhouse/)"
            % (wheelhouse, root)
        ) from None
    if not path.is_dir():
        raise ValueError("wheelhouse %s is not a directory" % path)
    if str(relative) == ".":
        raise ValueError("the wheelhouse cannot be the build context itself")
    return relative.as_posix()


def _check(name: str, known: Tuple[str, ...], what: str) -> None:
    if name not in known:
        raise ValueError("unknown %s %r; choose one of: %s" % (what, name, ", ".join(known)))


if __name__ == "__main__":
    # `python -m eikit.images.matrix FRAMEWORK TARGET` prints the tag (for shell scripts).
    import sys

    print(image_spec(sys.argv[1], sys.argv[2]).tag)
