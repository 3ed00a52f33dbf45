"""What AWS says about Neuron (Inferentia, Trainium), written down once, each with its source
and the date it was read. Images, ``eikit compile``, the runtime, ``eikit advise`` and the
migration all read these; nothing else in eikit spells a Neuron package version.

Read on 2026-12-06 from the Neuron documentation (awsdocs-neuron.readthedocs-hosted.com, up
to Neuron 2.34), the Neuron docs repository's release manifest
(github.com/aws-neuron/aws-neuron-sdk, ``src/helperscripts/n2-manifest.json``, manifest date
08/17/2026, Neuron 2.32.0), aws-neuron/deep-learning-containers, the SageMaker developer
guide and botocore's SageMaker service model. Where a claim could not be confirmed there,
its ``Source`` says so ("as stated in issue 17, not independently verified").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

CHECKED = "2026-12-06"
UNVERIFIED = "as stated in issue 17, not independently verified"

NEURON_DOCS = "https://awsdocs-neuron.readthedocs-hosted.com/en/latest"
MANIFEST = (
    "github.com/aws-neuron/aws-neuron-sdk src/helperscripts/n2-manifest.json (manifest 08/17/2026)"
)


@dataclass(frozen=True)
class Source:
    """Where a fact comes from and when it was read."""

    where: str
    checked: str = CHECKED
    verified: bool = True

    def cite(self) -> str:
        if not self.verified:
            return "%s (%s)" % (self.where, UNVERIFIED)
        return "%s (read %s)" % (self.where, self.checked)


@dataclass(frozen=True)
class Generation:
    """One NeuronCore generation: the instances it is on and the PyTorch stack that
    compiles for it and runs there."""

    name: str  # eikit's name for it, also the image target: "inf1", "inf2"
    neuron_core: str  # "v1", "v2"
    families: Tuple[str, ...]  # SageMaker instance families (ml.FAMILY.size)
    cores_per_device: int  # NeuronCores on one chip (/dev/neuronN)
    module: str  # the Python module a compiled TorchScript needs imported
    package: str  # its pip distribution
    compiler: str  # the compiler's pip distribution
    neo_target: str  # SageMaker Neo's TargetDevice
    state: str  # one line: supported, frozen, ...
    state_source: Source
    offers: str  # what it gives a user over the other generation
    guardrails: bool  # SageMaker deployment guardrails (canary, linear, rollback) apply
    guardrails_source: Source


GENERATIONS: Dict[str, Generation] = {
    "inf1": Generation(
        name="inf1",
        neuron_core="v1",
        families=("inf1",),
        cores_per_device=4,
        module="torch_neuron",
        package="torch-neuron",
        compiler="neuron-cc",
        neo_target="ml_inf1",
        state="retired platform: AWS removed the Inf1 install commands from the Neuron docs and "
        "froze its packages (torch-neuron 1.13.1, neuron-cc, tensorflow-neuron, mx_neuron; "
        "Python 3.9-3.10 in the last releases) and its driver (aws-neuronx-dkms 2.24.*); "
        "they stay in AWS's repositories, with no new releases",
        state_source=Source(
            NEURON_DOCS + "/setup/legacy-inf1/pytorch.html ('Inf1 instances are no longer "
            "supported. The installation and upgrade commands ... have been removed', "
            "modified 2026-03-30); archive/torch-neuron pages ('torch-neuron (Inf1) is no "
            "longer officially supported', 2026-03-11); announcement 'Correction: Neuron "
            "Driver support for Inf1 - version 2.24' (March 12, 2026); " + MANIFEST
        ),
        offers="the EI-era price point (AWS's EI migration guidance names ml.inf1.xlarge), "
        "4 NeuronCores per chip; but a frozen, retired stack",
        guardrails=False,
        guardrails_source=Source(
            "docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-exclusions.html "
            "('Endpoints that use Inf1 (Inferentia-based) instances' fall back to a "
            "blue/green deployment with all at once traffic shifting and no final baking "
            "period)"
        ),
    ),
    "inf2": Generation(
        name="inf2",
        neuron_core="v2",
        families=("inf2", "trn1", "trn1n"),
        cores_per_device=2,
        module="torch_neuronx",
        package="torch-neuronx",
        compiler="neuronx-cc",
        neo_target="ml_inf2",
        state="supported in maintenance: the PyTorch/XLA-based torch-neuronx (PyTorch 2.9, "
        "its last PyTorch) gets critical fixes and security patches since Neuron 2.32; it "
        "is still the Inf2/Trn1 inference path (PyTorch/XLA inference ended on Trn2/Trn3 "
        "only, in Neuron 2.34)",
        state_source=Source(
            NEURON_DOCS + "/archive/frameworks/torch/inference-torch-neuronx.html "
            "('maintenance status as of Neuron SDK 2.32 ... It is not end-of-support'); "
            "announce-transition-pytorch-trainium ('PyTorch 2.9 will be the last version "
            "based on PyTorch/XLA'); announce-no-support-torch-xla-inference-trn (Neuron "
            "2.34: no PyTorch/XLA inference on Trn2 and Trn3); " + MANIFEST
        ),
        offers="Neuron's current inference generation: PyTorch 2.9, 32 GB HBM per chip "
        "(inf2), and 'Inf2 offers 3x better price-performance' than Inf1 (AWS)",
        guardrails=True,
        guardrails_source=Source(
            "docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-exclusions.html "
            "(only Inf1 is excluded)"
        ),
    ),
}

# NeuronCore v3/v4 (Trn2, Trn3): PyTorch runs there only through TorchNeuron, the native
# backend published from Neuron 2.33 under the same package name (torch-neuronx 2.13/2.14).
# eikit pins the XLA line, which AWS no longer supports for inference on them.
UNSUPPORTED_FAMILIES: Dict[str, str] = {
    "trn2": "Trn2 (NeuronCore v3)",
    "trn3": "Trn3 (NeuronCore v4)",
}
TORCHNEURON = Source(
    NEURON_DOCS + "/release-notes/components/torchneuron.html (torch-neuronx 2.13.3.0 and "
    "2.14.3.0, Neuron 2.33.0, 10/19/2026: the native backend, public beta, Trn2 and Trn3 "
    "only) and announce-no-support-torch-xla-inference-trn (Neuron 2.34)"
)
# The XLA-based torch-neuronx line that supports Inf2, and its support window.
XLA_LINE = Source(
    MANIFEST + ": torch-neuronx 2.9.0.2.15.32035 for trn1/inf2/trn2/trn3, Python 3.11-3.13, "
    "first in Neuron 2.31.0 (07/07/2026), with neuronx-cc 2.26.6360.0; absent from the 2.32.0 "
    "manifest; the Neuron 2.33.0 component index still lists PyTorch NeuronX 2.9.0.2.15.32035. "
    "Window: maintenance (fixes and security patches) from Neuron 2.32; no end date announced "
    "for Inf2 as of Neuron 2.34"
)


@dataclass(frozen=True)
class Support:
    """One framework on one generation: what AWS publishes for it and in what state."""

    framework: str
    generation: str
    state: str  # "supported", "frozen" (retired, packages kept), "archived", "never"
    requirements: Tuple[str, ...]  # pip requirements the eikit image pins (from AWS's index)
    python: str  # the CPython the eikit image runs
    aws_image: Optional[str]  # AWS's own Deep Learning Container (repository:tag)
    note: str
    source: Source


DLC = "763104351884.dkr.ecr.<region>.amazonaws.com/"
TF_ARCHIVED = Source(
    NEURON_DOCS + " announcements: 'Neuron no longer supports TensorFlow for Inferentia2 "
    "(Inf2) starting with Neuron 2.29' (March 30, 2026); setup/legacy-inf1: 'TensorFlow 2.x "
    "with tensorflow-neuron (archived)'; " + MANIFEST + ": tensorflow-neuron "
    "2.10.1.2.12.2.0 last listed for inf1 in Neuron 2.28.1"
)

SUPPORT: Dict[Tuple[str, str], Support] = {
    ("pytorch", "inf1"): Support(
        "pytorch",
        "inf1",
        "frozen",
        ("torch-neuron==1.13.1.2.11.13.0", "neuron-cc==1.24.0.0"),
        "3.10",
        DLC + "pytorch-inference-neuron:1.13.1-neuron-py310-sdk2.20.2-ubuntu20.04",
        "torch 1.13.1 with torch-neuron, compiled by neuron-cc; the last packages, frozen",
        Source(
            MANIFEST + ": torch-neuron 1.13.1.2.11.13.0 (since Neuron 2.20.2) and neuron-cc "
            "1.24.0.0, inf1 only, Python 3.9-3.10 (3.8 until Neuron 2.21); AWS's last Inf1 "
            "PyTorch DLC: aws-neuron/deep-learning-containers README"
        ),
    ),
    ("pytorch", "inf2"): Support(
        "pytorch",
        "inf2",
        "supported",
        ("torch-neuronx==2.9.0.2.15.32035", "neuronx-cc==2.26.6360.0"),
        "3.12",
        DLC + "pytorch-inference-neuronx:2.9.0-neuronx-py312-sdk2.31.0-ubuntu24.04",
        "torch 2.9 with the PyTorch/XLA-based torch-neuronx (the last XLA release), compiled "
        "by neuronx-cc; not TorchNeuron, the native backend of the same name for Trn2/Trn3",
        XLA_LINE,
    ),
    ("tensorflow", "inf1"): Support(
        "tensorflow",
        "inf1",
        "frozen",
        ("tensorflow-neuron==2.10.1.2.12.2.0",),
        "3.10",
        DLC + "tensorflow-inference-neuron:2.10.1-neuron-py38-sdk2.10.0-ubuntu20.04",
        "tensorflow-neuron 2.10.1: Inf1 is retired and TensorFlow on Neuron is archived",
        TF_ARCHIVED,
    ),
    ("tensorflow", "inf2"): Support(
        "tensorflow",
        "inf2",
        "archived",
        ("tensorflow-neuronx==2.10.1.2.1.0",),
        "3.10",
        DLC + "tensorflow-inference-neuronx:2.10.1-neuronx-py38-sdk2.10.0-ubuntu20.04",
        "tensorflow-neuronx 2.10.1: Neuron dropped TensorFlow on Inf2 in Neuron 2.29; AWS "
        "points Inf2 users to PyTorch 2.9",
        TF_ARCHIVED,
    ),
    ("mxnet", "inf1"): Support(
        "mxnet",
        "inf1",
        "frozen",
        ("mx_neuron==1.8.0.2.4.147.0",),
        "3.8",
        DLC + "mxnet-inference-neuron:1.8.0-neuron-py38-sdk2.5.0-ubuntu20.04",
        "aws_mx 1.8 with mx_neuron: Neuron support for MXNet is in maintenance since Neuron "
        "2.19 and Inf1 is retired",
        Source(
            NEURON_DOCS
            + " announce-maintenance-mxnet (June 28, 2024); "
            + MANIFEST
            + ": mx_neuron 1.8.0.2.4.147.0, inf1 only"
        ),
    ),
    ("mxnet", "inf2"): Support(
        "mxnet",
        "inf2",
        "never",
        (),
        "",
        None,
        "MXNet never ran on NeuronCore v2 (Inf2, Trn1): Neuron published MXNet for Inf1 only",
        Source(MANIFEST + ": mx_neuron and mxnet_neuron list inf1 as their only instance"),
    ),
}

# SageMaker Neo compiles in the cloud for these TargetDevice values (CreateCompilationJob).
NEO = Source(
    "botocore's SageMaker service model, TargetDevice enum (ml_inf1, ml_inf2, ml_trn1); "
    "docs.aws.amazon.com/sagemaker/latest/dg/neo-job-compilation-cli.html"
)
NEO_TARGETS: Dict[str, str] = {"inf1": "ml_inf1", "inf2": "ml_inf2", "trn1": "ml_trn1"}
COMPILE_ANYWHERE = Source(
    NEURON_DOCS + "/archive/torch-neuron/api-compilation-python-api.html ('Compilation "
    "can be done on any EC2 machine with sufficient memory'); compiler/neuronx-cc/faq "
    "('may be performed on any EC2 instance or even on-premises')"
)
FIXED_SHAPES = Source(
    NEURON_DOCS + "/archive/torch-neuron/api-compilation-python-api.html "
    "(dynamic_batch_size: 'Dynamic sizing is restricted to the 0th dimension of a tensor'); "
    "that every other dimension is fixed at trace time is " + UNVERIFIED,
    verified=False,
)
EI_GUIDANCE = Source(
    "AWS's EI migration guidance naming ml.inf1.xlarge as 'the best high performance and "
    "low-cost alternative for Amazon EI customers' (up to 56% cost savings, 2x performance)",
    verified=False,
)

# NeuronCores per SageMaker instance type (chips x cores per chip), for worker counts and
# advice. AWS's instance pages: inf1 1/1/4/16 chips, inf2 1/1/6/12, trn1 1/16.
INSTANCE_CORES: Dict[str, int] = {
    "ml.inf1.xlarge": 4,
    "ml.inf1.2xlarge": 4,
    "ml.inf1.6xlarge": 16,
    "ml.inf1.24xlarge": 64,
    "ml.inf2.xlarge": 2,
    "ml.inf2.8xlarge": 2,
    "ml.inf2.24xlarge": 12,
    "ml.inf2.48xlarge": 24,
    "ml.trn1.2xlarge": 2,
    "ml.trn1.32xlarge": 32,
    "ml.trn1n.32xlarge": 32,
}
INSTANCE_CORES_SOURCE = Source(
    "AWS EC2 Inf1/Inf2/Trn1 instance pages (chips per size) x NeuronCores per chip",
    verified=False,
)


def generation(name: str) -> Generation:
    try:
        return GENERATIONS[name]
    except KeyError:
        raise ValueError(
            "unknown Neuron generation %r; choose one of: %s" % (name, ", ".join(GENERATIONS))
        ) from None


def generation_of_family(family: str) -> Optional[Generation]:
    """The generation an instance family runs, None for a family that is not Neuron's;
    ValueError for Neuron families eikit does not serve (Trn2, Trn3)."""
    if family in UNSUPPORTED_FAMILIES:
        raise ValueError(
            "%s runs PyTorch only through TorchNeuron, the native backend (%s); eikit's "
            "Neuron images pin the PyTorch/XLA torch-neuronx line for Inf2/Trn1. Use "
            "ml.inf2.* or ml.trn1.* instead, or pass your own image"
            % (UNSUPPORTED_FAMILIES[family], TORCHNEURON.cite())
        )
    for each in GENERATIONS.values():
        if family in each.families:
            return each
    return None


def is_neuron_family(family: str) -> bool:
    return family in UNSUPPORTED_FAMILIES or any(
        family in each.families for each in GENERATIONS.values()
    )


def support(framework: str, generation_name: str) -> Support:
    try:
        return SUPPORT[(framework, generation_name)]
    except KeyError:
        raise ValueError(
            "no Neuron facts for %s on %s; frameworks: %s"
            % (framework, generation_name, ", ".join(sorted({f for f, _ in SUPPORT})))
        ) from None


def what_works(framework: str) -> str:
    """The combinations that exist, for a refusal's message."""
    working = [
        "%s on %s (%s)" % (s.framework, s.generation, s.state)
        for s in SUPPORT.values()
        if s.state != "never" and (s.framework == framework or s.framework == "pytorch")
    ]
    return "; ".join(working)


def refusal(framework: str, generation_name: str) -> Optional[str]:
    """Why this combination never existed (and what does), or None when it exists."""
    cell = SUPPORT.get((framework, generation_name))
    if cell is None or cell.state != "never":
        return None
    return "%s. What exists: %s. Source: %s" % (
        cell.note,
        what_works(framework),
        cell.source.cite(),
    )


def warning(framework: str, generation_name: str) -> Optional[str]:
    """What a user must know before building or deploying a frozen or archived stack."""
    cell = SUPPORT.get((framework, generation_name))
    if cell is None or cell.state in ("supported", "never"):
        return None
    gen = GENERATIONS[generation_name]
    text = "%s on %s is %s: %s." % (framework, generation_name, cell.state, cell.note)
    if generation_name == "inf1":
        text += " Inf1 is a %s." % gen.state
        text += " What inf2 offers instead: %s." % GENERATIONS["inf2"].offers
    elif framework == "tensorflow":
        text += " AWS advises PyTorch 2.9 (torch-neuronx) on Inf2."
    return text + " Source: %s" % cell.source.cite()
