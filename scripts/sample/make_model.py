"""Build the quick start's sample model: a small TorchScript classifier and its script.

Nothing is downloaded: the weights are made here from a fixed seed.
Usage: python scripts/sample/make_model.py DEST   (creates DEST/model and DEST/code)
"""

import shutil
import sys
from pathlib import Path

import torch


class FlowerNet(torch.nn.Module):
    """4 measurements -> 3 classes; an iris-shaped MLP with random (seeded) weights."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.layers(x), dim=-1)


def main(dest: Path) -> None:
    torch.manual_seed(0)
    model_dir = dest / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    torch.jit.script(FlowerNet().eval()).save(str(model_dir / "model.pt"))
    code_dir = dest / "code"
    code_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(__file__).with_name("inference.py"), code_dir / "inference.py")
    print("sample model written to %s (model/model.pt, code/inference.py)" % dest)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else ".eikit-sample"))
