"""Default request hooks on single-record CSV, as batch transform sends it.

Pattern: a user model_fn (using_pytorch.rst "Load a Model": TorchScript loaded with
``torch.jit.load(..., map_location=torch.device('cpu'))``) and the toolkit's defaults for the
rest, serving a batch transform job with ``SplitType=Line`` and ``BatchStrategy=SingleRecord``:
one CSV line per request. DefaultPytorchInferenceHandler.default_input_fn decodes it with
sagemaker_inference/decoder.py ``np.genfromtxt(StringIO(s), delimiter=",")``, which returns a
1-D array for a single line, so the model sees a 1-D tensor and default_output_fn answers a
1-D list (JSON ``[y0, y1]``; CSV through ``np.savetxt``: one value per line).
"""

import os

import torch


def model_fn(model_dir):
    return torch.jit.load(os.path.join(model_dir, "model.pt"), map_location=torch.device("cpu"))
