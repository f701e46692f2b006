"""What the PyTorch recipes share: the training loop (mini-batch Adam on in-memory tensors, seeded) and the
``torch.export`` program they save."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

__all__ = ["Objective", "fit", "predict", "save_program"]

# Loss of one mini-batch (inputs, targets) -> scalar tensor.
Objective = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def fit(
    model: torch.nn.Module,
    objective: Objective,
    inputs: npt.NDArray[np.generic],
    targets: npt.NDArray[np.generic],
    *,
    epochs: int,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    seed: int = 0,
) -> float:
    """Train ``model`` in place and return the last epoch's mean loss; the same seed gives the same model."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    x, y = torch.from_numpy(inputs), torch.from_numpy(targets)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    model.train()
    mean_loss = float("nan")
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        total = 0.0
        for start in range(0, len(x), batch_size):
            batch = order[start : start + batch_size]
            optimizer.zero_grad()
            loss = objective(x[batch], y[batch])
            loss.backward()  # type: ignore[no-untyped-call]  # torch's backward() is not annotated
            optimizer.step()
            total += float(loss.detach()) * len(batch)
        mean_loss = total / len(x)
    model.eval()
    return mean_loss


def predict(model: torch.nn.Module, inputs: npt.NDArray[np.float32]) -> dict[str, npt.NDArray[np.float32]]:
    """``model(inputs)`` in evaluation mode for a model whose ``forward()`` returns named tensors."""
    model.eval()
    with torch.no_grad():
        outputs = model(torch.from_numpy(inputs))
    assert isinstance(outputs, dict), "the recipes' models return {output name: tensor}"
    return {name: tensor.numpy().astype(np.float32) for name, tensor in outputs.items()}


def save_program(model: torch.nn.Module, example: npt.NDArray[np.generic], path: Path) -> Path:
    """Export ``model`` with a dynamic batch axis, traced on ``example`` rows (two or more), to ``path``."""
    program = torch.export.export(
        model, (torch.from_numpy(example),), dynamic_shapes=({0: torch.export.Dim("batch")},)
    )
    torch.export.save(program, path)
    return path
