"""The ``context`` argument hooks may take.

Compatible with the context AWS's toolkits (MMS / TorchServe) hand to inference scripts:
``system_properties``, ``get_request_header``, ``get_all_request_header``,
``set_response_header``. eikit adds ``accelerator`` and ``device``. One request per call,
so ``idx`` is always 0.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple


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
        self._request: Dict[str, str] = {}
        self._response: Dict[str, str] = {}

    def start_request(self, headers: List[Tuple[str, str]]) -> None:
        """Called by the pipeline before each request; names are kept lower-case."""
        self._request = {name.lower(): value for name, value in headers}
        self._response = {}

    @property
    def request_processor(self) -> List[Context]:
        return [self]

    def get_request_header(self, idx: int, key: str) -> Optional[str]:
        return self._request.get(key.lower())

    def get_all_request_header(self, idx: int) -> Dict[str, str]:
        return dict(self._request)

    def set_response_header(self, idx: int, key: str, value: Any) -> None:
        self._response[str(key)] = str(value)

    def get_response_headers(self, idx: int) -> Dict[str, str]:
        return dict(self._response)

    @property
    def custom_attributes(self) -> Optional[str]:
        return self._request.get("x-amzn-sagemaker-custom-attributes")
