"""Hooks recording custom metrics on ``context.metrics``.

Pattern: MMS's per-request MetricsStore (mms/metrics/metrics_store.py: ``add_time(name,
value, idx=None, unit='ms')``, ``add_counter(name, value, idx=None)``, ``add_size``,
``add_percent``, ``add_metric(name, value, idx=None, unit=None)``), which MMS sets as
``context.metrics`` before each request (mms/service.py, ``Service.predict``) and documents
in docs/metrics.md ("Custom Metrics API").
"""

import json
import time

import torch


def input_fn(request_body, content_type, context):
    start = time.time()
    data = torch.tensor(json.loads(request_body), dtype=torch.float32)
    context.metrics.add_time("InputTime", (time.time() - start) * 1000, idx=0)
    context.metrics.add_size("RequestSize", len(request_body) / 1024.0 / 1024.0)
    return data


def predict_fn(data, model, context):
    start = time.time()
    with torch.no_grad():
        prediction = model(data)
    context.metrics.add_time("ModelTime", (time.time() - start) * 1000)
    context.metrics.add_counter("Rows", len(data))
    context.metrics.add_metric("Batch", len(data), unit="count")
    context.metrics.add_percent("Fill", 100.0)
    return prediction


def output_fn(prediction, accept, context):
    context.metrics.add_counter("Responses", 1, idx=0)
    return json.dumps(prediction.tolist()), "application/json"
