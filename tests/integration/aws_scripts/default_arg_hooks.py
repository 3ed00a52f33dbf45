"""Hooks whose content-type parameters have defaults, and a ``(model, vocabulary)`` tuple.

Pattern: ``input_fn(serialized_input_data, content_type=JSON_CONTENT_TYPE)`` and
``output_fn(prediction_output, accept=JSON_CONTENT_TYPE)`` returning ``json.dumps(...),
accept``, from amazon-sagemaker-examples' PyTorch serving scripts (e.g. the fairseq
translation example's predictor.py) and SageMaker multi-model-endpoint blog posts, with
``model_fn`` returning a ``(model, tokenizer)`` tuple. sagemaker-inference counts the
parameters (transformer.py ``_run_handler_function``): two parameters, so no context is passed.
"""

import json
import logging
import os

import torch

logger = logging.getLogger(__name__)

JSON_CONTENT_TYPE = "application/json"
VOCABULARY = {"one": [1, 2, 3, 4], "two": [5, 6, 7, 8]}


def model_fn(model_dir):
    model = torch.jit.load(os.path.join(model_dir, "model.pt"), map_location="cpu")
    return model, VOCABULARY


def input_fn(serialized_input_data, content_type=JSON_CONTENT_TYPE):
    logger.info("Deserializing the input data.")
    if content_type == JSON_CONTENT_TYPE:
        return json.loads(serialized_input_data)
    raise Exception("Requested unsupported ContentType in content_type: " + content_type)


def predict_fn(input_data, model_vocabulary):
    model, vocabulary = model_vocabulary
    rows = torch.tensor([vocabulary[word] for word in input_data["words"]], dtype=torch.float32)
    with torch.no_grad():
        scores = model(rows)
    return {"words": input_data["words"], "scores": scores.tolist()}


def output_fn(prediction_output, accept=JSON_CONTENT_TYPE):
    logger.info("Serializing the generated output.")
    if accept == JSON_CONTENT_TYPE:
        return json.dumps(prediction_output), accept
    raise Exception("Requested unsupported ContentType in Accept: " + accept)
