"""Recipe: a 64 -> 256 -> 256 -> 10 PyTorch MLP on the flattened 8x8 digits (the benchmarks' model).

Served as ``mlp``: input ``features`` FP32 ``[batch, 64]`` (pixels in [0, 1]), output the ten class
probabilities, labelled ``0`` to ``9``. Validation accuracy on the held-out quarter is about 97%. Its size
(~85k parameters, ~0.3 MB) and shape make it the reference model of the batching benchmarks.

Run alone: ``python -m examples.mlp_torch [--repository models]``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from examples import datasets
from examples.publish import KEPT_ROWS, Built, ModelSpec, main_for, publish
from examples.torch_training import fit, predict, save_program

__all__ = ["NAME", "DigitsMLP", "build"]

NAME = "mlp"
SEED = 0
FEATURES = 64


class DigitsMLP(nn.Module):
    """dense(256) -> dropout -> dense(256) -> dropout -> dense(10) -> softmax."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(FEATURES, 256),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.Linear(256, 256),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.Linear(256, 10),
        )

    def scores(self, features: torch.Tensor) -> torch.Tensor:
        """Unnormalised class scores (what the loss trains on)."""
        result: torch.Tensor = self.layers(features)
        return result

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        # A dict names the ONNX output: "probabilities" rather than a positional "output".
        return {"probabilities": torch.softmax(self.scores(features), dim=-1)}


def build(workdir: Path, repository: Path) -> Built:
    """Train on the flattened digits, save ``mlp.pt2`` in ``workdir`` and convert it into ``repository``."""
    split = datasets.digits(seed=SEED)
    train_x = split.train_x.reshape(len(split.train_x), FEATURES)
    validation_x = split.validation_x.reshape(len(split.validation_x), FEATURES)
    torch.manual_seed(SEED)
    model = DigitsMLP()
    loss = nn.CrossEntropyLoss()
    fit(model, lambda x, y: loss(model.scores(x), y), train_x, split.train_y, epochs=20, seed=SEED)
    accuracy = float(
        np.mean(predict(model, validation_x)["probabilities"].argmax(axis=1) == split.validation_y)
    )

    source = save_program(model, train_x[:2], workdir / "mlp.pt2")
    spec = ModelSpec(
        name=NAME, source=source, labels=datasets.DIGIT_LABELS, samples={"features": validation_x[:KEPT_ROWS]}
    )
    return publish(spec, repository, metric="validation accuracy", value=accuracy)


if __name__ == "__main__":
    main_for(NAME, build)
