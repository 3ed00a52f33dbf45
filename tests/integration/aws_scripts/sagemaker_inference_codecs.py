"""input_fn and output_fn built on sagemaker-inference's own decoder and encoder modules.

Pattern: the SageMaker developer guide, "Adapting your own inference container" (step 1, "The
output_fn Function": ``from sagemaker_inference import encoder`` ...
``return encoder.encode(prediction, accept)``), and DefaultPytorchInferenceHandler's
default_input_fn (``decoder.decode`` then ``torch.FloatTensor`` for UTF8_TYPES, else
``torch.from_numpy``). AWS's PyTorch serving container always has ``sagemaker_inference``
installed: sagemaker-pytorch-inference-toolkit is built on it.
"""

import torch
from sagemaker_inference import content_types, decoder, encoder


def input_fn(input_data, content_type):
    np_array = decoder.decode(input_data, content_type)
    if content_type in content_types.UTF8_TYPES:
        return torch.FloatTensor(np_array)
    return torch.from_numpy(np_array)


def output_fn(prediction, accept):
    return encoder.encode(prediction, accept)
