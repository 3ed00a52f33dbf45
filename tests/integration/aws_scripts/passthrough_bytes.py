"""A non-tensor model and raw bytes through every hook, with context.

Pattern: AWS's test script test/resources/model_gpu_context/code/inference.py
(sagemaker-pytorch-inference-toolkit) verbatim in shape: ``model_fn`` returns the string
``'model'``, ``input_fn`` returns the body as it came, ``predict_fn`` returns ``b'output'``
and ``output_fn`` returns the prediction as is. MMS sends ``bytes`` from a hook unchanged
(mms/protocol/otf_message_handler.py, create_predict_response).
"""


def model_fn(model_dir, context):
    return "model"


def input_fn(data, content_type, context):
    return data


def predict_fn(data, model, context):
    if model != "model":
        raise ValueError("model_fn's return value was not passed on")
    return b"output:" + (data.encode("utf-8") if isinstance(data, str) else data)


def output_fn(prediction, accept, context):
    return prediction
