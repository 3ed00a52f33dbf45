"""Default input_fn and predict_fn, user output_fn.

Pattern: ``output_fn(prediction, content_type)`` serialising the tensor the default
predict_fn returns (using_pytorch.rst, "Process Model Output": "The default implementation
expects prediction to be a torch.Tensor"), converted the way
DefaultPytorchInferenceHandler.default_output_fn does it:
``prediction.detach().cpu().numpy().tolist()``.
"""

import json


def output_fn(prediction, content_type):
    if content_type != "application/json":
        raise ValueError("unsupported accept type: %s" % content_type)
    result = prediction.detach().cpu().numpy().tolist()
    return json.dumps({"predictions": result})
