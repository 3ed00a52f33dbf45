"""eikit's MXNet runtime: accelerator probes, model loading and the default hooks.

Importing this package does not import mxnet; mxnet is imported when a probe needs it or a
session opens.
"""

from __future__ import annotations

from eikit_mxnet.runtime import MXNetRuntime

__all__ = ["MXNetRuntime"]
