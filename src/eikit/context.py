"""The ``context`` argument hooks may take.

Compatible with the context AWS's toolkits (MMS / TorchServe) hand to inference scripts:
``system_properties``, ``get_request_header``, ``get_all_request_header``,
``set_response_header``. eikit adds ``accelerator`` and ``device``. One request per call,
so ``idx`` is always 0.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

HeaderSource = Union[bytes, Iterable[Tuple[str, str]]]


def _parse(source: HeaderSource) -> Dict[str, str]:
    """Request headers as a dict with lower-case names, from pairs or the worker's blob."""
    if isinstance(source, bytes):
        headers: Dict[str, str] = {}
        for line in source.split(b"\n") if source else ():
            name, _, value = line.partition(b":")
            headers[name.decode("latin-1").lower()] = value.decode("latin-1")
        return headers
    return {name.lower(): value for name, value in source}


class Context:
    def __init__(
        self,
        model_dir: str,
        accelerator: str,
        device: str,
        gpu_id: Optional[int] = None,
        model_name: str = "model",
    ) -> None:
        self.model_dir = model_dir
        self.accelerator = accelerator
        self.device = device
        self.model_name = model_name
        self.system_properties: Dict[str, Any] = {
            "model_dir": model_dir,
            "gpu_id": gpu_id,
            "batch_size": 1,
            "server_name": "eikit",
            "accelerator": accelerator,
            "device": device,
        }
        self.manifest: Dict[str, Any] = {"model": {"modelName": model_name}}
        self._source: HeaderSource = b""
        self._request: Optional[Dict[str, str]] = None
        self._response: Dict[str, str] = {}

    def start_request(self, headers: HeaderSource) -> None:
        """Called by the pipeline before each request. Headers are parsed only if a hook
        asks for them: most requests never do."""
        self._source = headers
        self._request = None
        if self._response:
            self._response = {}

    @property
    def request_headers(self) -> Dict[str, str]:
        if self._request is None:
            self._request = _parse(self._source)
        return self._request

    @property
    def request_processor(self) -> List[Context]:
        return [self]

    def get_request_header(self, idx: int, key: str) -> Optional[str]:
        return self.request_headers.get(key.lower())

    def get_all_request_header(self, idx: int) -> Dict[str, str]:
        return dict(self.request_headers)

    def set_response_header(self, idx: int, key: str, value: Any) -> None:
        self._response[str(key)] = str(value)

    def get_response_headers(self, idx: int) -> Dict[str, str]:
        return dict(self._response)

    @property
    def custom_attributes(self) -> Optional[str]:
        return self.request_headers.get("x-amzn-sagemaker-custom-attributes")
