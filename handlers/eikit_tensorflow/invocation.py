"""A SageMaker invocation as AWS's TensorFlow Serving container read it.

- ``X-Amzn-SageMaker-Custom-Attributes``: ``tfs-model-name``, ``tfs-model-version``,
  ``tfs-method``, found with AWS's pattern (``tfs_utils.parse_tfs_custom_attributes``:
  every ``tfs-[a-z-]+=[^,]+`` anywhere in the header, split at ``=``).
- The scripts' ``context``: AWS's ``tfs_utils.Context`` namedtuple, the same fields in the
  same order (``model_name, model_version, method, rest_uri, grpc_port, channel,
  custom_attributes, request_content_type, accept_header, content_length``) and values.
- With no script, the body becomes a TF Serving request as AWS's nginx module
  (``tensorflowServing.js``) made it: JSON that names ``instances``, ``inputs`` or
  ``examples`` goes as it is; JSON lines become ``instances``; other JSON is one instance
  (or a list of them when it starts with ``[[``); CSV rows become ``instances``.
"""

from __future__ import annotations

import json
import re
from collections import namedtuple
from typing import Any, Dict, List, Optional, Tuple, cast

from eikit import jsoncodec
from eikit.errors import BadRequest, NotAcceptable, UnsupportedMediaType

CUSTOM_ATTRIBUTES_HEADER = "X-Amzn-SageMaker-Custom-Attributes"
DEFAULT_CONTENT_TYPE = "application/json"
DEFAULT_ACCEPT_HEADER = "application/json"
JSON_TYPES = ("application/json", "application/jsonlines", "application/jsons")
CSV_TYPE = "text/csv"
ATTRIBUTE = re.compile(r"(tfs-[a-z\-]+=[^,]+)")

Context = namedtuple(
    "Context",
    "model_name, model_version, method, rest_uri, grpc_port, channel, "
    "custom_attributes, request_content_type, accept_header, content_length",
)


def parse_tfs_custom_attributes(header: Optional[str]) -> Dict[str, str]:
    """AWS's parse, except that a match with a second ``=`` (``tfs-a=b=c``), which made
    AWS's ``dict(...)`` raise and the request fail with a 500, is skipped."""
    attributes: Dict[str, str] = {}
    if header:
        for match in ATTRIBUTE.findall(header):
            parts = match.split("=")
            if len(parts) == 2:
                attributes[parts[0]] = parts[1]
    return attributes


class Target:
    """Where a request goes: model, version (None: the highest), method."""

    def __init__(self, model: str, version: Optional[int], method: str, version_text: str) -> None:
        self.model = model
        self.version = version
        self.method = method
        self.version_text = version_text


def target(attributes: Dict[str, str], default_model: str) -> Target:
    model = attributes.get("tfs-model-name", default_model)
    version_text = attributes.get("tfs-model-version", "")
    method = attributes.get("tfs-method", "predict")
    version: Optional[int] = None
    if version_text:
        if not (version_text.isdigit() and version_text.isascii()):
            raise BadRequest(
                "tfs-model-version=%s is not a version number (versions are whole numbers)"
                % version_text
            )
        version = int(version_text)
    return Target(model, version, method, version_text)


def rest_uri(port: Optional[int], attributes: Dict[str, str], default_model: str) -> str:
    """AWS's ``make_tfs_uri``: the TF Serving REST URL a script posts to."""
    model = attributes.get("tfs-model-name", default_model)
    uri = f"http://localhost:{port}/v1/models/{model}"
    version = attributes.get("tfs-model-version")
    if version:
        uri += "/versions/" + version
    return uri + ":" + attributes.get("tfs-method", "predict")


# --- the default handling (no script) -------------------------------------------------


def media_type(content_type: Optional[str]) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def check_accept(accept: Optional[str]) -> str:
    """The answer's Content-Type: TF Serving answers JSON. AWS's module labelled it with the
    first type of an Accept that lists ``application/json`` or ``application/jsonlines``;
    an Accept that admits no JSON at all is a 406 here (AWS sent JSON anyway)."""
    if not accept:
        return DEFAULT_ACCEPT_HEADER
    listed = [part.split(";", 1)[0].strip().lower() for part in accept.split(",")]
    listed = [item for item in listed if item]
    if not listed:
        return DEFAULT_ACCEPT_HEADER
    if "application/jsonlines" in listed or "application/json" in listed:
        first = listed[0]
        return (
            first
            if first in ("application/json", "application/jsonlines")
            else (DEFAULT_ACCEPT_HEADER)
        )
    if any(item in ("*/*", "application/*") for item in listed):
        return DEFAULT_ACCEPT_HEADER
    raise NotAcceptable(
        "Accept %r: TF Serving answers application/json (or application/jsonlines)" % accept
    )


def _text(body: bytes, what: str) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest("%s body is not UTF-8: %s" % (what, exc)) from None


TFS_JSON = re.compile(r'"(instances|inputs|examples)"\s*:')
JSON_LINES = re.compile(r"[}\]]\s*[\[{]")
CSV_NO_QUOTES = re.compile(r"^\s*(\"|[\d.Ee+\-]+.*)")


def json_request(data: str) -> str:
    """AWS's ``json_request``: the TF Serving request text for a JSON (or JSON lines) body."""
    if TFS_JSON.search(data):
        return data
    if JSON_LINES.search(data):
        return json_lines_request(data)
    if not re.match(r"^\s*\[\s*\[", data):
        data = "[" + data + "]"
    return '{"instances":' + data + "}"


def json_lines_request(data: str) -> str:
    lines = re.split(r"\r?\n", data.strip())
    parts = ['{"instances":']
    if len(lines) != 1:
        parts.append("[")
    for index, line in enumerate(lines):
        line = line.strip()
        if line:
            parts.append(("" if index == 0 else ",") + line)
    parts.append("}" if len(lines) == 1 else "]}")
    return "".join(parts)


def csv_request(data: str) -> str:
    """AWS's ``csv_request``: each row an instance (a list when it has several columns);
    cells quoted as strings unless the first cell looks numeric or is already quoted.
    AWS's module replaced only the first comma and quote of a row (JavaScript's
    ``String.replace`` with a string); every one is replaced here, so ``a,b,c`` is
    ``["a","b","c"]``, not ``["a","b,c"]``."""
    needs_quotes = CSV_NO_QUOTES.search(data) is None
    lines = re.split(r"\r?\n", data.strip())
    rows: List[str] = []
    for line in lines:
        line = line.strip()
        if not line:
            continue
        several = "," in line
        cell = '"' + line.replace('"', '\\"').replace(",", '","') + '"' if needs_quotes else line
        rows.append("[" + cell + "]" if several else cell)
    return '{"instances":[' + ",".join(rows) + "]}"


def default_request(body: bytes, content_type: Optional[str]) -> Dict[str, Any]:
    """The TF Serving request body (parsed) for an invocation with no script; 415 for a
    type AWS's container did not take, 400 for a body that is not what its type says."""
    media = media_type(content_type) or DEFAULT_CONTENT_TYPE
    if media in JSON_TYPES:
        text = json_request(_text(body, media))
    elif media == CSV_TYPE:
        text = csv_request(_text(body, media))
    else:
        raise UnsupportedMediaType(
            "Unsupported Media Type: %s (TF Serving takes %s)"
            % (content_type or "Unknown", ", ".join(JSON_TYPES + (CSV_TYPE,)))
        )
    return parse_tfs_json(text)


def parse_tfs_json(text: Any) -> Dict[str, Any]:
    """A TF Serving REST request body: a JSON object (NaN and Infinity allowed, as
    TF Serving's parser allows them)."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadRequest("JSON Parse error: Invalid encoding in string (%s)" % exc) from None
    if not text or str(text).isspace():
        raise BadRequest("JSON Parse error: The document is empty")
    read, parsed = jsoncodec.try_loads(text)  # orjson: 4-6x faster on a 3 MB image
    if not read:
        try:
            parsed = json.loads(text)
        except RecursionError:
            raise BadRequest("JSON Parse error: nested too deeply") from None
        except ValueError as exc:
            raise BadRequest("JSON Parse error: %s" % exc) from None
    if not isinstance(parsed, dict):
        raise BadRequest("JSON Value: %s Is not object" % str(text)[:200])
    return cast(Dict[str, Any], parsed)


def dumps(answer: Any) -> bytes:
    return json.dumps(answer, separators=(",", ":")).encode("utf-8")


def split_tfs_path(path: str) -> Tuple[str, Optional[str], Optional[str]]:
    """``/v1/models/<name>[/versions/<v>][:<method>]`` -> (name, version, method);
    ``BadRequest`` for another path (TF Serving's REST handler answers those too)."""
    match = re.match(r"^/v1/models/([^/:]+)(?:/versions/([^/:]+))?(?::([a-z]+))?/?$", path)
    if match is None:
        raise BadRequest("Malformed request: %s" % path)
    return match.group(1), match.group(2), match.group(3)
