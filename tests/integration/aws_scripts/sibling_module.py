"""Inference script importing its network from a sibling module in ``code/`` and reading a
file next to itself through ``__file__``.

Pattern: using_pytorch.rst "Model Directory Structure" (inference script "and any other source
files" in ``code/``), as in the SageMaker sentiment-analysis deployment scripts
(``serve/predict.py``: ``from model import LSTMClassifier``); AWS's test script
test/resources/model_gpu_context/code/inference.py locates files with
``SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))``. sagemaker-inference puts
``model_dir/code`` on the path before importing the script (default_handler_service.py).
"""

import json
import os

import torch
from net import Net

SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))

with open(os.path.join(SCRIPT_DIR, "labels.json")) as f:
    LABELS = json.load(f)


def model_fn(model_dir):
    model = Net()
    with open(os.path.join(model_dir, "model.pth"), "rb") as f:
        model.load_state_dict(torch.load(f, map_location="cpu"))
    model.eval()
    return model


def output_fn(prediction, accept):
    rows = prediction.detach().cpu().numpy().tolist()
    return json.dumps([dict(zip(LABELS, row)) for row in rows]), "application/json"
