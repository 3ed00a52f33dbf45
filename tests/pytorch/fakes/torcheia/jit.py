"""Records every attach_eia call and returns the model unchanged."""

from typing import Any, List, Tuple

calls: List[Tuple[Any, int]] = []


def attach_eia(model: Any, device_ordinal: int) -> Any:
    calls.append((model, device_ordinal))
    return model
