"""The two benchmark models, built from code (nothing is downloaded), and their request bodies.

* ``mlp``: 64 -> 256 -> 10 with a ReLU; request = one JSON row ``[[64 floats]]``.
* ``resnet18``: ResNet-18 written out by hand (torchvision does not import beside the torch
  we use), random weights; request = a 1x3x224x224 float32 array as NPY.

Both are saved as TorchScript (``torch.jit.script``) so the server's default ``model_fn``
(``torch.jit.load``) and the in-process loop load the very same file.
"""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Tuple

import numpy as np
import torch
from torch import nn

JSON = "application/json"
NPY = "application/x-npy"


class MLP(nn.Module):
    def __init__(self, n_in: int = 64, hidden: int = 256, n_out: int = 10) -> None:
        super().__init__()
        self.fc1 = nn.Linear(n_in, hidden)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.relu(self.fc1(x)))


def _conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """The ResNet-18/34 block: two 3x3 convs, identity (or 1x1 projection) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3x3(c_in, c_out, stride)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(c_out, c_out)
        self.bn2 = nn.BatchNorm2d(c_out)
        if stride != 1 or c_in != c_out:
            self.downsample: nn.Module = nn.Sequential(
                nn.Conv2d(c_in, c_out, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(c_out),
            )
        else:
            self.downsample = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """Same layers, shapes and parameter count (11,689,512) as torchvision's resnet18."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = nn.Sequential(BasicBlock(64, 64), BasicBlock(64, 64))
        self.layer2 = nn.Sequential(BasicBlock(64, 128, 2), BasicBlock(128, 128))
        self.layer3 = nn.Sequential(BasicBlock(128, 256, 2), BasicBlock(256, 256))
        self.layer4 = nn.Sequential(BasicBlock(256, 512, 2), BasicBlock(512, 512))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    build: Callable[[], nn.Module]
    input_shape: Tuple[int, ...]
    output_shape: Tuple[int, ...]
    content_type: str
    accept: str = JSON
    framework: str = "torch"  # "mxnet": built and run by the mxnet environment (mxnet_bench.py)


MODELS: Dict[str, ModelSpec] = {
    "mlp": ModelSpec(
        name="mlp",
        description="tiny MLP 64-256-10 (ReLU), JSON row in, JSON out",
        build=MLP,
        input_shape=(1, 64),
        output_shape=(1, 10),
        content_type=JSON,
    ),
    "resnet18": ModelSpec(
        name="resnet18",
        description="ResNet-18 (random weights), 1x3x224x224 float32 NPY in, JSON out",
        build=ResNet18,
        input_shape=(1, 3, 224, 224),
        output_shape=(1, 1000),
        content_type=NPY,
    ),
    "mxnet-resnet18": ModelSpec(
        name="mxnet-resnet18",
        description="MXNet ResNet-18 v1 (gluon model zoo, random weights, Gluon export), "
        "1x3x224x224 float32 NPY in, JSON out",
        build=ResNet18,  # unused: mxnet_bench.py builds it
        input_shape=(1, 3, 224, 224),
        output_shape=(1, 1000),
        content_type=NPY,
        framework="mxnet",
    ),
}


def get(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}") from None


def request_body(spec: ModelSpec, seed: int = 0) -> bytes:
    """The exact bytes POSTed to /invocations (and fed to the in-process loop)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(spec.input_shape)
    if spec.content_type == JSON:
        # Rounded like a typical client payload (short decimals, not 17-digit reprs).
        return json.dumps(np.round(x, 6).tolist()).encode()
    if spec.content_type == NPY:
        buf = io.BytesIO()
        np.save(buf, x.astype(np.float32), allow_pickle=False)
        return buf.getvalue()
    raise ValueError(f"no encoder for {spec.content_type}")


def json_body(spec: ModelSpec, seed: int = 0) -> bytes:
    """The request as JSON: the same values as ``request_body`` would send as NPY, float32,
    each written in full as ``json.dumps`` writes it (what a client posting a tensor as a
    JSON list sends). ResNet-18's 1x3x224x224 is about 3.1 MB this way."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(spec.input_shape).astype(np.float32)
    return json.dumps(x.tolist()).encode()


def save_torchscript(spec: ModelSpec, path: Path, seed: int = 0) -> Path:
    """Build the model with seeded random weights, script it in eval mode and save it."""
    torch.manual_seed(seed)
    model = spec.build().eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.* says "deprecated"
        torch.jit.script(model).save(str(path))
    return path


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
