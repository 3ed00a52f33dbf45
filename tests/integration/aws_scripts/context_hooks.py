"""Every hook taking ``context`` as its last parameter.

Pattern: AWS's test script test/resources/model_gpu_context/code/inference.py
(sagemaker-pytorch-inference-toolkit): ``model_fn(model_dir, context)``,
``input_fn(data, content_type, context)``, ``predict_fn(data, model, context)``,
``output_fn(prediction, accept, context)``, reading
``context.system_properties.get("gpu_id")``. sagemaker-inference's Transformer passes the
context to any hook whose signature has one parameter more (transformer.py,
``_run_handler_function``); MMS's context carries ``model_dir`` and ``gpu_id`` (None on CPU)
in ``system_properties`` (mms/context.py).
"""

import json
import os

import torch


def _device(context):
    gpu_id = context.system_properties.get("gpu_id")
    return torch.device("cpu" if gpu_id is None else "cuda:" + str(gpu_id))


def model_fn(model_dir, context):
    props = context.system_properties
    model = torch.jit.load(
        os.path.join(props["model_dir"], "model.pt"), map_location=_device(context)
    )
    return {"model": model, "model_dir": model_dir}


def input_fn(data, content_type, context):
    if content_type != "application/json":
        raise ValueError(f"unsupported content type {content_type}")
    return torch.tensor(json.loads(data), dtype=torch.float32).to(_device(context))


def predict_fn(data, model, context):
    with torch.no_grad():
        return model["model"](data), model["model_dir"]


def output_fn(prediction, accept, context):
    props = context.system_properties
    output, model_fn_dir = prediction
    return json.dumps(
        {
            "predictions": output.cpu().tolist(),
            "model_fn_dir": model_fn_dir,
            "model_dir": props["model_dir"],
            "has_model_file": os.path.isfile(os.path.join(props["model_dir"], "model.pt")),
            "gpu_id": props.get("gpu_id"),
            "accept": accept,
        }
    )
