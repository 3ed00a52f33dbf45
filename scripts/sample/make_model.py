"""Build the quick start's sample model: a small TorchScript classifier and its script.

Nothing is downloaded: the model is trained here, in about a second, on flowers drawn
around the three iris species' mean measurements (fixed seed).
Usage: python scripts/sample/make_model.py DEST   (creates DEST/model and DEST/code)
"""

import shutil
import sys
from pathlib import Path

import torch


class FlowerNet(torch.nn.Module):
    """4 measurements (sepal length/width, petal length/width, cm) -> 3 species."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.layers(x), dim=-1)


# Mean measurements of setosa, versicolor and virginica (Fisher's iris data).
MEANS = [[5.0, 3.4, 1.5, 0.2], [5.9, 2.8, 4.3, 1.3], [6.6, 3.0, 5.6, 2.0]]


def train() -> FlowerNet:
    torch.manual_seed(0)
    centres = torch.tensor(MEANS).repeat_interleave(200, dim=0)
    inputs = centres + 0.3 * torch.randn_like(centres)
    labels = torch.arange(3).repeat_interleave(200)
    model = FlowerNet()
    optimiser = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(300):
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(model.layers(inputs), labels)
        loss.backward()
        optimiser.step()
    return model.eval()


def main(dest: Path) -> None:
    model_dir = dest / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    torch.jit.script(train()).save(str(model_dir / "model.pt"))
    code_dir = dest / "code"
    code_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(__file__).with_name("inference.py"), code_dir / "inference.py")
    print("sample model written to %s (model/model.pt, code/inference.py)" % dest)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else ".eikit-sample"))
