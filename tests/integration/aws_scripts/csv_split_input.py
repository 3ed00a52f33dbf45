"""User input_fn splitting one CSV record by hand: ``input_data.split(",")``.

Pattern: a single ``text/csv`` record (one line, as batch transform sends with
``SplitType=Line``), parsed with ``str.split`` because sagemaker-inference's Transformer
decodes text/csv bodies to ``str`` before input_fn sees them (transformer.py,
``if content_type in content_types.UTF8_TYPES: input_data = input_data.decode("utf-8")``).
"""

import torch


def input_fn(input_data, content_type):
    if content_type != "text/csv":
        raise ValueError(f"expected text/csv, got {content_type}")
    values = [float(value) for value in input_data.strip().split(",")]
    return torch.tensor([values], dtype=torch.float32)
