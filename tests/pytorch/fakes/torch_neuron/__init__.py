"""Stand-in for AWS's torch-neuron (Inf1): see ``neuron_standin``."""

from typing import Any

import neuron_standin

__version__ = "1.13.1.0+standin"
compiler_version = "1.24.0.0+standin"

neuron_standin.record_import("torch_neuron")


def trace(model: Any, example_inputs: Any, **kwargs: Any) -> Any:
    return neuron_standin.trace("torch_neuron", model, example_inputs, **kwargs)
