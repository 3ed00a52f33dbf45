"""model_fn building an eager ``nn.Module`` defined in the script and loading its state dict.

Pattern: using_pytorch.rst "Load a Model" (``model = Your_Model()``, then
``model.load_state_dict(torch.load(f))`` from ``model.pth`` in ``model_dir``), wrapped in
``torch.nn.DataParallel`` exactly as AWS's own test script
test/resources/mnist/model_cpu/code/mnist.py (sagemaker-pytorch-inference-toolkit) does.
The training code sits under a main guard, as the page asks of a script that is both the
training and the inference script. Default input_fn, predict_fn and output_fn.
"""

import argparse
import os

import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x)


def model_fn(model_dir):
    model = torch.nn.DataParallel(Net())
    with open(os.path.join(model_dir, "model.pth"), "rb") as f:
        model.load_state_dict(torch.load(f))
    return model


def train(args):
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=args.learning_rate)
    for _ in range(args.epochs):
        optimizer.zero_grad()
        loss = model(torch.randn(8, 4)).pow(2).mean()
        loss.backward()
        optimizer.step()
    with open(os.path.join(args.model_dir, "model.pth"), "wb") as f:
        torch.save(torch.nn.DataParallel(model).state_dict(), f)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--learning-rate", type=float, default=0.05)
    parser.add_argument("--model-dir", type=str, default=os.environ["SM_MODEL_DIR"])
    train(parser.parse_known_args()[0])
