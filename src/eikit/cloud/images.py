"""Which eikit image serves on which SageMaker instance type.

eikit tags say framework, version, target and Python (``pytorch-2.13-cpu-py311``, see
``eikit.images.matrix``). An instance family decides the target: Inferentia/Trainium -> the
NeuronCore generation (``inf1`` for Inf1; ``inf2`` for Inf2, Trn1 and Trn1n: two images that
share nothing at run time), NVIDIA GPUs -> ``gpu``, everything else SageMaker hosts on ->
``cpu``. Trn2/Trn3 (PyTorch there only through TorchNeuron) and MXNet on inf2 (never
existed) are refused with what works instead (``eikit.neuron.facts``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Tuple

from eikit.cloud.aws import CloudError
from eikit.images import matrix
from eikit.neuron.facts import GENERATIONS, generation_of_family

NEURON_FAMILIES = ("inf1", "inf2", "trn1", "trn1n", "trn2", "trn3")
GPU_FAMILIES = ("g4dn", "g5", "g6", "g6e", "p2", "p3", "p3dn", "p4d", "p4de", "p5", "p5e")
CPU_FAMILIES = (
    "t2", "t3", "m4", "m5", "m5d", "m6i", "m6id", "m7i", "c4", "c5", "c5d", "c5n", "c6i",
    "c6id", "c6in", "c7i", "r5", "r5d", "r6i", "r6id", "r7i",
)  # fmt: skip
ARM_FAMILIES = ("c6g", "c6gd", "c6gn", "c7g", "m6g", "m6gd", "m7g", "r6g", "r6gd", "r7g")

_TAG = re.compile(
    r"^(?P<framework>[a-z]+)-(?P<version>\d+\.\d+)-(?P<target>[a-z0-9]+)-py(?P<py>\d+)$"
)
_INSTANCE = re.compile(r"^ml\.(?P<family>[a-z0-9]+)\.(?P<size>[a-z0-9]+)$")


@dataclass(frozen=True)
class EikitImage:
    """An image URI whose tag is an eikit tag: ``REPO:pytorch-2.13-cpu-py311``."""

    repository: str  # everything before the tag: registry/name
    framework: str
    target: str
    tag: str

    def with_target(self, target: str) -> EikitImage:
        """The same repository's image of this framework for ``target``; CloudError for a
        combination that never existed (MXNet on inf2), naming what does."""
        try:
            tag = matrix.variant(self.framework, target).tag
        except ValueError as exc:
            raise CloudError(str(exc)) from None
        return EikitImage(self.repository, self.framework, target, tag)

    @property
    def uri(self) -> str:
        return "%s:%s" % (self.repository, self.tag)

    @property
    def ecr(self) -> Optional[Tuple[str, str, str]]:
        """(account, region, repository name) for an ECR URI, else None."""
        match = re.match(
            r"^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/(.+)$", self.repository
        )
        return (match.group(1), match.group(2), match.group(3)) if match else None


def parse_image(uri: str) -> Optional[EikitImage]:
    """The eikit image a URI names, or None when its tag is not an eikit tag."""
    if "@" in uri:
        return None  # a digest says nothing about framework or target
    repository, sep, tag = uri.rpartition(":")
    if not sep or "/" in tag:
        return None
    match = _TAG.match(tag)
    if match is None:
        return None
    framework, target = match.group("framework"), match.group("target")
    target = matrix.LEGACY_TARGETS.get((framework, target), target)
    if framework not in matrix.FRAMEWORKS or target not in matrix.TARGETS:
        return None
    return EikitImage(repository, framework, target, tag)


def instance_family(instance_type: str) -> str:
    match = _INSTANCE.match(instance_type)
    if match is None:
        raise CloudError(
            "%r is not a SageMaker instance type (ml.FAMILY.SIZE, e.g. ml.inf1.xlarge)"
            % instance_type
        )
    return match.group("family")


def target_for(instance_type: str) -> str:
    """The eikit image target that serves on ``instance_type``."""
    family = instance_family(instance_type)
    if family.startswith("eia"):
        raise CloudError(
            "%s is an Elastic Inference accelerator, not an instance type" % (instance_type,)
        )
    if family in NEURON_FAMILIES:
        try:
            generation = generation_of_family(family)
        except ValueError as exc:
            raise CloudError(str(exc)) from None
        assert generation is not None
        return generation.name
    if family in GPU_FAMILIES:
        return "gpu"
    if family in CPU_FAMILIES:
        return "cpu"
    if family in ARM_FAMILIES:
        raise CloudError(
            "%s is a Graviton (arm64) instance: eikit's images are built for x86_64; build an "
            "arm64 image on an arm64 machine and pass it with --image" % instance_type
        )
    raise CloudError(
        "eikit does not know instance family %r; pass the image to run with --image" % family
    )


def build_command(image: EikitImage, region: Optional[str]) -> str:
    """The commands that build and push the image ``image`` names."""
    ecr = image.ecr
    repo = ecr[2] if ecr else image.repository.rsplit("/", 1)[-1]
    push = "eikit push --repository %s --tag %s" % (repo, image.tag)
    if ecr or region:
        push += " --region %s" % (ecr[1] if ecr else region)
    return "eikit build --framework %s --target %s && %s" % (
        image.framework,
        image.target,
        push,
    )


def image_for(instance_type: str, framework: str, repository: str, ei: bool = False) -> EikitImage:
    """The eikit image of ``framework`` that serves on ``instance_type`` (with an EI
    accelerator when ``ei``), in ``repository`` (``ACCOUNT.dkr.ecr.REGION.amazonaws.com/
    eikit``); CloudError for a combination that never existed. ``ml.inf1.*`` and
    ``ml.inf2.*`` get different images."""
    target = "eia" if ei else target_for(instance_type)
    try:
        tag = matrix.variant(framework, target).tag
    except ValueError as exc:
        raise CloudError(str(exc)) from None
    return EikitImage(repository, framework, target, tag)


def framework_of(uri: str) -> Optional[str]:
    """The framework an image serves: its eikit tag's, else a framework named in the
    repository (AWS's ``pytorch-inference-eia``), else None."""
    parsed = parse_image(uri)
    if parsed is not None:
        return parsed.framework
    repository = uri.split("@")[0].rpartition(":")[0] or uri
    name = repository.rsplit("/", 1)[-1]
    found = [f for f in matrix.FRAMEWORKS if f in name]
    return found[0] if len(found) == 1 else None


def check_target(uri: str, instance_type: str, ei: bool = False) -> Optional[EikitImage]:
    """Refuse an eikit image built for another target than ``instance_type`` (with an EI
    accelerator when ``ei``) runs: an inf2 image on ml.inf1.* (or the reverse) cannot
    serve, a CPU or GPU image on Inferentia leaves the NeuronCores unused. Returns the
    parsed image (None: not an eikit tag, nothing to check). The message names the image
    that fits and how to build it."""
    parsed = parse_image(uri)
    if parsed is None:
        return None
    try:
        wanted = "eia" if ei else target_for(instance_type)
    except CloudError:
        return parsed  # a family eikit does not know: the user's call
    if parsed.target == wanted:
        return parsed
    where = "%s with an EI accelerator" % instance_type if ei else instance_type
    try:
        fits = parsed.with_target(wanted)
        instead = "use %s (%s)" % (fits.uri, build_command(fits, None))
    except CloudError as exc:
        instead = str(exc)
    raise CloudError(
        "image %s is built for %s, but %s needs the %s image: %s"
        % (uri, _describe_target(parsed.target), where, wanted, instead)
    )


def _describe_target(target: str) -> str:
    generation = GENERATIONS.get(target)
    if generation is not None:
        return "%s (%s, NeuronCore %s; it cannot run on another generation)" % (
            target,
            generation.package,
            generation.neuron_core,
        )
    return target
