"""Recipe: a PyTorch CNN for scikit-learn's 8x8 handwritten digits, saved as a ``torch.export`` program.

Served as ``digits``: input ``images`` FP32 ``[batch, 1, 8, 8]`` (pixels in [0, 1]), output the ten class
probabilities, labelled ``0`` to ``9``. Validation accuracy on the held-out quarter is about 97%.

Run alone: ``python -m examples.digits_torch [--repository models]``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from examples import datasets
from examples.publish import KEPT_ROWS, Built, ModelSpec, main_for, publish
from examples.torch_training import fit, predict, save_program

__all__ = ["NAME", "DigitsCNN", "build"]

NAME = "digits"
SEED = 0


class DigitsCNN(nn.Module):
    """conv(16) -> max-pool -> conv(32) -> max-pool -> dense(64) -> dropout -> dense(10) -> softmax."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 8x8 -> 4x4
            nn.Conv2d(16, 32, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 4x4 -> 2x2
            nn.Flatten(),
        )
        self.classifier = nn.Sequential(
            nn.Linear(32 * 2 * 2, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 10)
        )

    def scores(self, images: torch.Tensor) -> torch.Tensor:
        """Unnormalised class scores (what the loss trains on)."""
        result: torch.Tensor = self.classifier(self.features(images))
        return result

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        # A dict names the ONNX output: "probabilities" rather than a positional "output".
        return {"probabilities": torch.softmax(self.scores(images), dim=-1)}


def build(workdir: Path, repository: Path) -> Built:
    """Train on the digits, save ``digits.pt2`` in ``workdir`` and convert it into ``repository``."""
    split = datasets.digits(seed=SEED)
    torch.manual_seed(SEED)
    model = DigitsCNN()
    loss = nn.CrossEntropyLoss()
    fit(model, lambda x, y: loss(model.scores(x), y), split.train_x, split.train_y, epochs=30, seed=SEED)
    accuracy = float(
        np.mean(predict(model, split.validation_x)["probabilities"].argmax(axis=1) == split.validation_y)
    )

    source = save_program(model, split.train_x[:2], workdir / "digits.pt2")
    held_out = {"images": split.validation_x[:KEPT_ROWS]}
    spec = ModelSpec(name=NAME, source=source, labels=datasets.DIGIT_LABELS, samples=held_out)
    return publish(spec, repository, metric="validation accuracy", value=accuracy)


if __name__ == "__main__":
    main_for(NAME, build)
