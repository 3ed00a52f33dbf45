"""Stand-in for AWS's torch-neuronx (Inf2/Trn1): see ``neuron_standin``."""

from typing import Any

import neuron_standin

__version__ = "2.9.0.0+standin"
compiler_version = "2.26.0.0+standin"

neuron_standin.record_import("torch_neuronx")


def trace(model: Any, example_inputs: Any, **kwargs: Any) -> Any:
    return neuron_standin.trace("torch_neuronx", model, example_inputs, **kwargs)
