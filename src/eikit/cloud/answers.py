"""An endpoint's answer as a baseline keeps it, and the comparison of two answers: numbers
within ``rtol``/``atol`` (JSON, JSON lines, CSV, NPY, NPZ), anything else byte for byte, the
content type and any error exactly. The differences say where, first few only.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from typing import Any, Dict, List

import numpy as np

from eikit import codecs

NUMERIC = (codecs.JSON, codecs.JSONLINES, codecs.CSV, codecs.NPY, codecs.NPZ)
SHOWN = 5  # differences quoted per sample


@dataclass
class Answer:
    body: bytes = b""
    content_type: str = ""
    error: str = ""
    ms: float = 0.0

    def to_json(self) -> Dict[str, Any]:
        if self.error:
            return {"error": self.error}
        return {
            "content_type": self.content_type,
            "body": base64.b64encode(self.body).decode("ascii"),
        }

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> Answer:
        if data.get("error"):
            return cls(error=str(data["error"]))
        return cls(base64.b64decode(data["body"]), str(data.get("content_type", "")))


def _decode(answer: Answer) -> Any:
    kind = codecs.media_type(answer.content_type)
    if kind == codecs.JSON:
        return json.loads(answer.body)
    if kind == codecs.JSONLINES:
        return [json.loads(line) for line in answer.body.splitlines() if line.strip()]
    return codecs.decode(answer.body, kind)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_))


class _Walk:
    def __init__(self, rtol: float, atol: float) -> None:
        self.rtol, self.atol = rtol, atol
        self.found: List[str] = []

    def close(self, a: float, b: float) -> bool:
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return abs(a - b) <= self.atol + self.rtol * abs(a)

    def differ(self, where: str, text: str) -> None:
        self.found.append("%s: %s" % (where or "$", text))

    def __call__(self, a: Any, b: Any, where: str = "$") -> None:
        if len(self.found) > SHOWN:
            return
        if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
            self.arrays(np.asarray(a), np.asarray(b), where)
        elif _number(a) and _number(b):
            if not self.close(float(a), float(b)):
                self.differ(where, "%r, expected %r" % (b, a))
        elif isinstance(a, dict) and isinstance(b, dict):
            if sorted(a) != sorted(b):
                self.differ(where, "keys %s, expected %s" % (sorted(b), sorted(a)))
                return
            for key in sorted(a):
                self(a[key], b[key], "%s.%s" % (where, key))
        elif isinstance(a, list) and isinstance(b, list):
            if len(a) != len(b):
                self.differ(where, "%d items, expected %d" % (len(b), len(a)))
                return
            for i, (x, y) in enumerate(zip(a, b)):
                self(x, y, "%s[%d]" % (where, i))
        elif a != b or type(a) is not type(b):
            self.differ(where, "%s, expected %s" % (_short(b), _short(a)))

    def arrays(self, a: np.ndarray, b: np.ndarray, where: str) -> None:
        if a.shape != b.shape:
            self.differ(where, "shape %s, expected %s" % (b.shape, a.shape))
            return
        if a.dtype.kind in "biuf" and b.dtype.kind in "biuf":
            x, y = a.astype(float), b.astype(float)
            bad = ~np.isclose(y, x, rtol=self.rtol, atol=self.atol, equal_nan=True)
            for index in list(zip(*np.nonzero(bad)))[: SHOWN - len(self.found) + 1]:
                at = "%s[%s]" % (where, ",".join(str(int(i)) for i in index))
                self.differ(at, "%r, expected %r" % (float(y[index]), float(x[index])))
        elif not np.array_equal(a, b):
            self.differ(where, "arrays differ")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def compare(expected: Answer, got: Answer, rtol: float, atol: float) -> List[str]:
    """Where ``got`` differs from ``expected`` (empty: the same within the tolerance)."""
    if expected.error or got.error:
        if expected.error == got.error:
            return []
        return ["error %r, expected %r" % (got.error or "none", expected.error or "none")]
    if codecs.media_type(expected.content_type) != codecs.media_type(got.content_type):
        return ["content type %s, expected %s" % (got.content_type, expected.content_type)]
    if codecs.media_type(expected.content_type) in NUMERIC:
        try:
            a, b = _decode(expected), _decode(got)
        except Exception as exc:  # not the format it says: compare bytes
            if expected.body == got.body:
                return []
            return ["answers differ and do not decode as %s (%s)" % (got.content_type, exc)]
        walk = _Walk(rtol, atol)
        if isinstance(a, dict) and all(isinstance(v, np.ndarray) for v in a.values()):
            walk({k: v for k, v in a.items()}, b)  # NPZ: arrays by name
        else:
            walk(a, b)
        return walk.found[:SHOWN]
    if expected.body == got.body:
        return []
    return ["%d bytes differ from the expected %d bytes" % (len(got.body), len(expected.body))]
