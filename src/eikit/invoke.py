"""``eikit invoke``: send a file or JSON to a running endpoint and print the answer."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from eikit import codecs

BY_SUFFIX = {
    ".json": codecs.JSON,
    ".jsonl": codecs.JSONLINES,
    ".csv": codecs.CSV,
    ".npy": codecs.NPY,
    ".npz": codecs.NPZ,
}


def guess_content_type(path: Path) -> str:
    return BY_SUFFIX.get(path.suffix.lower(), codecs.OCTET)


def invoke(
    url: str,
    body: bytes,
    content_type: str,
    accept: Optional[str] = None,
    custom_attributes: Optional[str] = None,
    timeout: float = 70.0,
    headers: Optional[Dict[str, str]] = None,
) -> Tuple[int, Dict[str, str], bytes]:
    headers = dict(headers or {})
    headers["Content-Type"] = content_type
    if accept:
        headers["Accept"] = accept
    if custom_attributes:
        headers["X-Amzn-SageMaker-Custom-Attributes"] = custom_attributes
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, _lower(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, _lower(error.headers), error.read()


def _lower(headers: Any) -> Dict[str, str]:
    return {str(name).lower(): str(value) for name, value in headers.items()}


def show(body: bytes, content_type: str) -> str:
    """Readable text for a response body: JSON pretty-printed, binary summarised."""
    kind = codecs.media_type(content_type)
    if kind == codecs.JSON:
        try:
            return json.dumps(json.loads(body), indent=2)
        except ValueError:
            pass
    if kind in (codecs.NPY, codecs.NPZ):
        try:
            decoded = codecs.decode(body, kind)
            return repr(decoded)
        except Exception:
            pass
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return "<%d bytes of %s>" % (len(body), content_type)


def write(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
