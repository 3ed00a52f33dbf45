"""Stand-in for AWS's torcheia plugin (EI for stock torch 1.5.1)."""

from torcheia import jit  # noqa: F401

__version__ = "1.0.0+fake"
