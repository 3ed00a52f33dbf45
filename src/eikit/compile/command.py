"""The ``eikit compile`` command line for a model, as eikit prints it to users."""

from __future__ import annotations

import shlex
from typing import Optional

EXAMPLE_PLACEHOLDER = "REQUEST.json"


def output_name(generation: str) -> str:
    return "model-%s.tar.gz" % generation


def compile_command(
    model: str,
    generation: str,
    example: Optional[str] = None,
    output: Optional[str] = None,
    batch_sizes: Optional[str] = None,
) -> str:
    """``eikit compile MODEL --generation G --example FILE --output OUT``; without
    ``example``, ``REQUEST.json`` stands for one request body saved to a file (.json, .npy)."""
    words = [
        "eikit",
        "compile",
        model,
        "--generation",
        generation,
        "--example",
        example or EXAMPLE_PLACEHOLDER,
    ]
    if batch_sizes:
        words += ["--batch-sizes", batch_sizes]
    words += ["--output", output or output_name(generation)]
    return " ".join(shlex.quote(word) for word in words)


def not_compiled_message(model: str, generation: str, neuron_core: str) -> str:
    """What the server says of a model on a Neuron host that was not compiled for it."""
    return (
        "the model in %s is not compiled for %s (NeuronCore %s), so it cannot run on the "
        "NeuronCores: eikit serves it on the CPU (or refuses it under "
        "EIKIT_STRICT_ACCELERATOR). Compile it on any x86 machine (with Docker, or "
        "where the Neuron package is installed), then deploy the archive it writes: %s "
        "(%s: one request body saved to a file, .json or .npy)"
        % (
            model,
            generation,
            neuron_core,
            compile_command(model, generation),
            EXAMPLE_PLACEHOLDER,
        )
    )
