"""eikit's PyTorch runtime: accelerator probes, model loading and the default hooks.

Importing this package does not import torch; torch is imported when a probe runs or a
session opens.
"""

from __future__ import annotations

from eikit_pytorch.runtime import PyTorchRuntime

__all__ = ["PyTorchRuntime"]
