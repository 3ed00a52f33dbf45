"""The HTTP frontend and the worker processes that hold the model."""
