"""eikit's TensorFlow runtime: SavedModels served as AWS's TensorFlow Serving container served
them. Importing this package does not import TensorFlow; a model load does."""

from eikit_tensorflow.runtime import TensorFlowRuntime

__all__ = ["TensorFlowRuntime"]
