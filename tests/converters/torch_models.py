"""The seed's seven architectures as small PyTorch modules (imported only by framework tests)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = ["TORCH_ARCHITECTURES", "TorchCase"]

FEATURES, CLASSES, STEPS, CHANNELS, SIDE = 12, 3, 6, 4, 8


class MLP(nn.Module):
    """Dense layers with dropout and a softmax head."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(FEATURES, 16)
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(16, CLASSES)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.head(self.dropout(torch.relu(self.hidden(features)))), dim=-1)


class CNN(nn.Module):
    """Convolution, max-pooling, dense head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, kernel_size=3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Linear(4 * (SIDE // 2) ** 2, CLASSES)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.head(torch.flatten(self.pool(torch.relu(self.conv(image))), 1))
        return logits


class Recurrent(nn.Module):
    """A recurrent layer over a sequence, classified from its last step."""

    def __init__(self, kind: type[nn.RNN | nn.LSTM | nn.GRU], *, bidirectional: bool = False) -> None:
        super().__init__()
        self.rnn = kind(CHANNELS, 8, batch_first=True, bidirectional=bidirectional)
        self.head = nn.Linear(16 if bidirectional else 8, 2)

    def forward(self, sequence: torch.Tensor) -> torch.Tensor:
        steps, _ = self.rnn(sequence)
        scores: torch.Tensor = self.head(steps[:, -1])
        return scores


class ConvAutoencoder(nn.Module):
    """Encoder (conv + pool) and decoder (transposed conv) back to the input's shape."""

    def __init__(self) -> None:
        super().__init__()
        self.encode = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.decode = nn.Sequential(
            nn.ConvTranspose2d(4, 4, 2, stride=2), nn.ReLU(), nn.Conv2d(4, 1, 3, padding=1)
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decode(self.encode(image)))


TorchCase = tuple[Callable[[], nn.Module], str, tuple[int, ...]]  # factory, input name, one row's shape

TORCH_ARCHITECTURES: dict[str, TorchCase] = {
    "mlp": (MLP, "features", (FEATURES,)),
    "cnn": (CNN, "image", (1, SIDE, SIDE)),
    "rnn": (lambda: Recurrent(nn.RNN), "sequence", (STEPS, CHANNELS)),
    "lstm": (lambda: Recurrent(nn.LSTM), "sequence", (STEPS, CHANNELS)),
    "gru": (lambda: Recurrent(nn.GRU), "sequence", (STEPS, CHANNELS)),
    "bilstm": (lambda: Recurrent(nn.LSTM, bidirectional=True), "sequence", (STEPS, CHANNELS)),
    "autoencoder": (ConvAutoencoder, "image", (1, SIDE, SIDE)),
}
