"""User input_fn reading ``text/csv`` with pandas; default predict_fn and output_fn.

Pattern: ``pd.read_csv(StringIO(input_data), header=None)`` on the CSV body, which
sagemaker-inference hands over as ``str`` (transformer.py decodes UTF8_TYPES). Used by
amazon-sagemaker-examples' inference-pipeline featurizers (e.g.
sagemaker-python-sdk/scikit_learn_inference_pipeline/sklearn_abalone_featurizer.py).
"""

from io import StringIO

import pandas as pd
import torch


def input_fn(input_data, content_type):
    print(input_data)

    if content_type == "text/csv":
        df = pd.read_csv(StringIO(input_data), header=None)
        return torch.tensor(df.values, dtype=torch.float32)
    raise ValueError(f"{content_type} not supported by script!")
