"""The ``context`` argument hooks may take.

The surface of the context AWS's model servers hand to inference scripts (MMS's
``mms.context.Context``, which sagemaker-inference passes on; TorchServe's has the same
methods): ``system_properties``, ``model_name``, ``manifest``, ``request_processor`` (a
list of ``RequestProcessor``), ``get_request_id``, ``get_request_header``,
``get_all_request_header``, ``set_response_header``, ``get_response_headers``,
``set_response_content_type``, ``get_response_content_type``, ``set_response_status``,
``set_all_response_status``, ``get_response_status`` and ``metrics``. eikit adds
``accelerator``, ``device`` and ``custom_attributes``.

What a script sets reaches the client: ``set_response_status`` is the reply's HTTP status
(the body stays what the hooks returned, as on MMS; the reason phrase is kept but HTTP/1.1
servers here send the standard one), ``set_response_content_type`` its Content-Type unless
``output_fn``/``transform_fn`` returned ``(body, content_type)``, and other headers are
sent as set. Request headers are looked up without regard to case (``"Accept"`` and
``"accept"`` both work, as scripts written for either server expect).

One request per call, so ``idx`` is always 0 and ``request_processor`` has one entry.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple, Union

from eikit import __version__

log = logging.getLogger(__name__)

HeaderSource = Union[bytes, Iterable[Tuple[str, str]]]

# RFC 9110 token characters: what a header name may hold.
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Headers the server writes itself; a script's value would contradict the body.
_SERVER_HEADERS = ("content-length", "transfer-encoding", "connection")


class RequestHeaders(Mapping[str, str]):
    """Request headers by name, looked up without regard to case; names iterate in lower case."""

    def __init__(self, items: Dict[str, str]) -> None:
        self._items = items  # lower-case names

    def __getitem__(self, key: str) -> str:
        return self._items[str(key).lower()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return self._items.get(str(key).lower(), default)

    def __repr__(self) -> str:
        return "RequestHeaders(%r)" % self._items


def _parse(source: HeaderSource) -> Dict[str, str]:
    """Request headers with lower-case names, from pairs or the worker's blob."""
    if isinstance(source, bytes):
        headers: Dict[str, str] = {}
        for line in source.split(b"\n") if source else ():
            name, _, value = line.partition(b":")
            headers[name.decode("latin-1").lower()] = value.decode("latin-1")
        return headers
    return {name.lower(): value for name, value in source}


def _header_name(key: Any) -> str:
    name = str(key)
    if not _TOKEN.match(name):
        raise ValueError("invalid response header name %r" % name)
    return name.lower()


def _header_value(value: Any) -> str:
    """MMS strips CR and LF from what a script sets; so do we. Header values travel as
    latin-1, so anything else is refused with the script's error, not a broken reply."""
    text = str(value).replace("\r", " ").replace("\n", " ").replace("\0", " ")
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError("response header value %r is not latin-1 text" % text) from None
    return text


def check_status(code: Any) -> int:
    """A status a script may set: an int from 200 to 599 (1xx cannot answer a request)."""
    if isinstance(code, bool) or not isinstance(code, int) or not 200 <= code <= 599:
        raise ValueError("response status must be an int from 200 to 599, not %r" % (code,))
    return code


class RequestProcessor:
    """One request's headers in, and status and headers out (MMS's ``RequestProcessor``)."""

    def __init__(self) -> None:
        self._source: HeaderSource = b""
        self._request: Optional[RequestHeaders] = None
        self.status = 200
        self.phrase: Optional[str] = None
        self.headers: Dict[str, str] = {}  # lower-case names

    def reset(self, headers: HeaderSource) -> None:
        """A new request. Its headers are parsed only if a hook asks: most never do."""
        self._source = headers
        self._request = None
        self.status = 200
        self.phrase = None
        if self.headers:
            self.headers = {}

    # --- request ---
    def get_request_properties(self) -> RequestHeaders:
        if self._request is None:
            self._request = RequestHeaders(_parse(self._source))
        return self._request

    def get_request_property(self, key: str) -> Optional[str]:
        return self.get_request_properties().get(key)

    # --- response ---
    def report_status(self, code: int, reason_phrase: Optional[str] = None) -> None:
        self.status = check_status(code)
        self.phrase = None if reason_phrase is None else _header_value(reason_phrase)

    def get_response_status_code(self) -> int:
        return self.status

    def get_response_status_phrase(self) -> Optional[str]:
        return self.phrase

    def add_response_property(self, key: str, value: Any) -> None:
        name = _header_name(key)
        if name in _SERVER_HEADERS:
            log.warning("ignoring response header %s set by the script: the server sets it", key)
            return
        self.headers[name] = _header_value(value)

    def get_response_headers(self) -> Dict[str, str]:
        return self.headers

    def get_response_header(self, key: str) -> Optional[str]:
        return self.headers.get(str(key).lower())


class NullMetrics:
    """``context.metrics``: every call a script makes (``add_counter``, ``add_time``,
    ``add_size``, ``add_percent``, ``add_error``, ``add_metric``, TorchServe's
    ``get_metric(...).add_or_update``, ...) is accepted and does nothing. eikit's own
    metrics come from the server, not from scripts."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self._ignore

    def _ignore(self, *args: Any, **kwargs: Any) -> NullMetrics:
        return self

    def __repr__(self) -> str:
        return "NullMetrics()"


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
            "server_version": __version__,
            "accelerator": accelerator,
            "device": device,
        }
        self.manifest: Dict[str, Any] = {"model": {"modelName": model_name}}
        self.metrics = NullMetrics()
        self._processor = RequestProcessor()
        self._processors = [self._processor]
        self._request_id: Optional[str] = None

    def start_request(self, headers: HeaderSource, request_id: str = "") -> None:
        """Called by the pipeline before each request, with the id the server gave it."""
        self._processor.reset(headers)
        self._request_id = request_id or None

    # --- request ---
    @property
    def request_processor(self) -> List[RequestProcessor]:
        return self._processors

    @property
    def request_ids(self) -> Dict[int, str]:
        return {0: self.get_request_id(0)}

    def get_request_id(self, idx: int = 0) -> str:
        """The request's id: the one the server logs and answers in ``X-Request-Id`` (the
        client's ``X-Request-Id`` or ``X-Amzn-RequestId`` when it sent a usable one); else
        the request's ``X-Amzn-RequestId``, else a fresh UUID."""
        if self._request_id is None:
            given = self._processor.get_request_property("x-amzn-requestid")
            self._request_id = given or str(uuid.uuid4())
        return self._request_id

    @property
    def request_headers(self) -> RequestHeaders:
        return self._processor.get_request_properties()

    def get_request_header(self, idx: int, key: str) -> Optional[str]:
        return self._processor.get_request_property(key)

    def get_all_request_header(self, idx: int) -> RequestHeaders:
        return self._processor.get_request_properties()

    @property
    def custom_attributes(self) -> Optional[str]:
        return self._processor.get_request_property("x-amzn-sagemaker-custom-attributes")

    # --- response ---
    def set_response_header(self, idx: int, key: str, value: Any) -> None:
        self._processor.add_response_property(key, value)

    def get_response_headers(self, idx: int) -> Dict[str, str]:
        return self._processor.get_response_headers()

    def set_response_content_type(self, idx: int, value: Any) -> None:
        self._processor.add_response_property("content-type", value)

    def get_response_content_type(self, idx: int) -> Optional[str]:
        return self._processor.get_response_header("content-type")

    def set_response_status(self, code: int = 200, phrase: str = "", idx: int = 0) -> None:
        self._processor.report_status(code, phrase)

    def set_all_response_status(self, code: int = 200, phrase: str = "") -> None:
        self._processor.report_status(code, phrase)

    def get_response_status(self, idx: int) -> Tuple[int, Optional[str]]:
        return self._processor.status, self._processor.phrase

    def response(self) -> Tuple[int, Optional[str], Dict[str, str]]:
        """What the script set: status, Content-Type (None if unset), the other headers."""
        processor = self._processor
        headers = processor.headers
        if "content-type" not in headers:
            return processor.status, None, headers
        others = dict(headers)
        return processor.status, others.pop("content-type"), others
