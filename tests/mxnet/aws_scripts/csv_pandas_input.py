"""input_fn reading CSV with pandas into an NDArray; default predict_fn and output_fn.

Pattern: ``pd.read_csv(StringIO(input_data), header=None)`` on the CSV body, which
sagemaker-inference hands over as ``str``; ``mx.nd.array(df.values)``.
"""

from io import StringIO

import mxnet as mx
import pandas as pd


def input_fn(input_data, content_type):
    if content_type == "text/csv":
        df = pd.read_csv(StringIO(input_data), header=None)
        return mx.nd.array(df.values)
    raise ValueError("{} not supported by script!".format(content_type))
