"""What a model of a framework needs on a Neuron instance type, and whether it is a dead end:
for ``eikit advise`` and for the migration plan. Every statement comes from
``eikit.neuron.facts`` and carries its dated source."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from eikit.compile.command import compile_command
from eikit.images import matrix
from eikit.neuron.facts import (
    COMPILE_ANYWHERE,
    GENERATIONS,
    INSTANCE_CORES,
    NEO_TARGETS,
    generation_of_family,
    refusal,
    support,
    warning,
)


@dataclass
class TargetAdvice:
    instance_type: str
    framework: str
    generation: str
    neuron_core: str
    state: str  # "supported", "frozen", "archived", "never"
    image_tag: Optional[str]  # eikit's image for it
    aws_image: Optional[str]  # AWS's own Deep Learning Container
    python: str
    cores: Optional[int] = None  # NeuronCores on the instance type: one worker each
    needs: List[str] = field(default_factory=list)  # what to do, in order
    dead_end: Optional[str] = None  # why not (never existed), with what works
    caution: Optional[str] = None  # frozen / archived, with what inf2 offers
    guardrails: Optional[str] = None  # SageMaker's deployment guardrails do not apply
    sources: List[str] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        return dict(self.__dict__)


def _family(instance_type: str) -> str:
    parts = instance_type.split(".")
    return parts[1] if len(parts) == 3 and parts[0] == "ml" else ""


def target_advice(instance_type: str, framework: str) -> Optional[TargetAdvice]:
    """None for an instance type that is not Inferentia/Trainium; ValueError for a Neuron
    family eikit does not serve (Trn2, Trn3: the message says why)."""
    gen = generation_of_family(_family(instance_type))
    if gen is None:
        return None
    cell = support(framework, gen.name)
    advice = TargetAdvice(
        instance_type=instance_type,
        framework=framework,
        generation=gen.name,
        neuron_core=gen.neuron_core,
        state=cell.state,
        image_tag=matrix.VARIANTS[(framework, gen.name)].tag
        if (framework, gen.name) in matrix.VARIANTS
        else None,
        aws_image=cell.aws_image,
        python=cell.python,
        cores=INSTANCE_CORES.get(instance_type),
        sources=[cell.source.cite(), gen.state_source.cite()],
    )
    if cell.state == "never":
        advice.dead_end = refusal(framework, gen.name)
        return advice
    advice.caution = warning(framework, gen.name)
    if framework == "pytorch":
        advice.needs.append(
            "compile the model for %s (NeuronCore %s) with %s / %s; the compilers run on any "
            "x86 machine [%s]: %s (or --neo: SageMaker Neo, target %s)"
            % (
                gen.name,
                gen.neuron_core,
                gen.package,
                gen.compiler,
                COMPILE_ANYWHERE.cite(),
                compile_command("model.tar.gz", gen.name),
                NEO_TARGETS[gen.name],
            )
        )
    else:
        advice.needs.append(
            "compile the model with the framework's own Neuron package (%s) or SageMaker Neo "
            "(target %s): eikit compile traces PyTorch only"
            % (", ".join(cell.requirements), NEO_TARGETS[gen.name])
        )
    advice.needs.append(
        "serve it with the eikit image %s (Python %s; eikit build --framework %s --target %s)"
        " or AWS's %s" % (advice.image_tag, cell.python, framework, gen.name, cell.aws_image)
    )
    advice.needs.append("uncompiled, the model runs on the instance's CPU, not on the NeuronCores")
    if not gen.guardrails:
        advice.guardrails = (
            "SageMaker's deployment guardrails (canary, linear, auto-rollback) do not apply "
            "to %s endpoints: an update falls back to an all-at-once blue/green switch with "
            "no baking period [%s]" % (gen.name, gen.guardrails_source.cite())
        )
        advice.sources.append(gen.guardrails_source.cite())
    return advice


def target_notes(instance_type: str, framework: str) -> List[str]:
    """The plan's lines for serving ``framework`` on ``instance_type``: the generation and
    its image, and the caution of a frozen or archived stack (or why it is a dead end).
    Empty for a non-Neuron type. Deployment guardrails are the plan's own note."""
    advice = target_advice(instance_type, framework)
    if advice is None:
        return []
    if advice.dead_end:
        return ["%s: %s" % (instance_type, advice.dead_end)]
    notes = [
        "%s is %s (NeuronCore %s): image %s; the model runs on the NeuronCores only once it "
        "is compiled for %s (%s / %s)" % (
            instance_type, advice.generation, advice.neuron_core, advice.image_tag,
            advice.generation, GENERATIONS[advice.generation].package,
            GENERATIONS[advice.generation].compiler,
        )
    ]  # fmt: skip
    if advice.caution:
        notes.append(advice.caution)
    return notes


def how_to_compile(generation: str, model: str = "model.tar.gz") -> str:
    """The ways to compile a model archive for ``generation``, as one line."""
    return "eikit migrate ... --compile (locally, or --neo: SageMaker Neo, target %s), or %s" % (
        NEO_TARGETS[generation],
        compile_command(model, generation),
    )


def migration_notes(
    instance_type: str, framework: str, compiled_for: Optional[Sequence[str]]
) -> List[str]:
    """The lines for moving a model of ``framework`` to ``instance_type``; ``compiled_for``:
    the generations the model archive is compiled for (its manifest), None when unknown.
    Empty for a non-Neuron type."""
    notes = target_notes(instance_type, framework)
    advice = target_advice(instance_type, framework)
    if advice is None or advice.dead_end:
        return notes
    gen = GENERATIONS[advice.generation]
    if compiled_for is not None and advice.generation in compiled_for:
        notes.insert(1, "the model archive is compiled for %s (eikit-neuron.json)" % gen.name)
    else:
        what = (
            "compiled for %s only" % ", ".join(compiled_for)
            if compiled_for
            else "not compiled for Neuron"
        )
        notes.insert(
            1,
            "the model archive is %s: on %s it would run on the CPU. Compile it: %s"
            % (what, instance_type, how_to_compile(gen.name)),
        )
    if advice.guardrails:
        notes.append(advice.guardrails)
    return notes
