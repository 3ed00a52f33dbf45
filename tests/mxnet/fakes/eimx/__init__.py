"""Stand-in for AWS's eimx plugin (EI for stock mxnet 1.7): importing it adds ``mx.eia()``.

The context it returns is ``mx.cpu()`` underneath, of its own type, so that a model bound
to it runs here and tests can tell it was bound there; every call is recorded. (Real EI
also runs a Gluon block bound to ``mx.eia()`` on inputs on ``mx.cpu()``, which no CPU
context can stand in for other than ``mx.cpu()`` itself.) ``EIKIT_FAKE_EIA_FAIL`` set:
``mx.eia()`` raises, as when the accelerator cannot be reached.
"""

import os
from typing import List

import mxnet as mx

__version__ = "1.0+fake"
calls: List[int] = []


class EiaContext(mx.Context):
    """mx.cpu() underneath; tests recognise it by its type."""

    def __init__(self, device_id: int = 0) -> None:
        super().__init__("cpu", 0)
        self.eia_id = device_id

    def __repr__(self) -> str:
        return "eia(%d)" % self.eia_id

    __str__ = __repr__


def eia(device_id: int = 0) -> mx.Context:
    calls.append(device_id)
    failure = os.environ.get("EIKIT_FAKE_EIA_FAIL")
    if failure:
        raise mx.base.MXNetError(failure)
    return EiaContext(device_id)


mx.eia = eia
