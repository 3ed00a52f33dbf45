"""eikit: serve SageMaker models on whatever accelerator is attached."""

from eikit.errors import InferenceError

__version__ = "0.1.0"
__all__ = ["InferenceError", "__version__"]
