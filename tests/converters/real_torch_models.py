"""Real PyTorch architectures at small widths, random weights (imported only by framework tests): a residual
CNN with batch norm, a MobileNetV3-style inverted-residual CNN, a transformer encoder with a padding mask, and
a GRU/LSTM encoder-decoder with two inputs and a dict output."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

__all__ = ["TORCH_REAL_CASES", "TorchRealCase", "padding_mask_samples", "save_padding_mask_samples"]

SIDE, CLASSES, STEPS, MODEL_DIM, VOCAB = 16, 5, 6, 16, 11


class BasicBlock(nn.Module):
    """ResNet's basic block: two 3x3 conv + batch norm, a projection shortcut when the shape changes."""

    def __init__(self, channels_in: int, channels_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or channels_in != channels_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(channels_in, channels_out, 1, stride, bias=False), nn.BatchNorm2d(channels_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.blocks = nn.Sequential(BasicBlock(8, 8, 1), BasicBlock(8, 16, 2))
        self.head = nn.Linear(16, CLASSES)
        _randomise_batch_norm(self)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.head(self.blocks(self.stem(image)).mean(dim=(2, 3)))
        return logits


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, max(channels // 4, 4), 1)
        self.expand = nn.Conv2d(max(channels // 4, 4), channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = nn.functional.adaptive_avg_pool2d(x, 1)
        return x * nn.functional.hardsigmoid(self.expand(torch.relu(self.reduce(scale))))


class InvertedResidual(nn.Module):
    """MobileNetV3's bneck: 1x1 expand, depthwise 3x3, squeeze-excite, hard-swish, 1x1 project."""

    def __init__(self, channels_in: int, expanded: int, channels_out: int, stride: int) -> None:
        super().__init__()
        self.residual = stride == 1 and channels_in == channels_out
        self.body = nn.Sequential(
            nn.Conv2d(channels_in, expanded, 1, bias=False),
            nn.BatchNorm2d(expanded),
            nn.Hardswish(),
            nn.Conv2d(expanded, expanded, 3, stride, 1, groups=expanded, bias=False),
            nn.BatchNorm2d(expanded),
            SqueezeExcite(expanded),
            nn.Hardswish(),
            nn.Conv2d(expanded, channels_out, 1, bias=False),
            nn.BatchNorm2d(channels_out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.body(x)
        return x + y if self.residual else y


class MobileNetV3Style(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.Hardswish())
        self.blocks = nn.Sequential(InvertedResidual(8, 16, 8, 1), InvertedResidual(8, 24, 12, 2))
        self.head = nn.Linear(12, CLASSES)
        _randomise_batch_norm(self)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        pooled = nn.functional.adaptive_avg_pool2d(self.blocks(self.stem(image)), 1).flatten(1)
        logits: torch.Tensor = self.head(pooled)
        return logits


class MaskedEncoder(nn.Module):
    """``nn.TransformerEncoder`` over embedded sequences; ``padding`` is True (or 1, as an int64 mask) where a
    step is padding."""

    def __init__(self) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(MODEL_DIM, 2, 32, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(MODEL_DIM, CLASSES)

    def forward(self, sequence: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        padding = padding.bool()  # an int mask (1 = padding) works too
        encoded = self.encoder(sequence, src_key_padding_mask=padding)
        keep = (~padding).unsqueeze(-1).to(encoded.dtype)
        pooled = (encoded * keep).sum(dim=1) / keep.sum(dim=1)
        scores: torch.Tensor = self.head(pooled)
        return scores


class Seq2Seq(nn.Module):
    """A GRU encoder over source tokens, an LSTM decoder over target tokens started from the encoder's state;
    returns per-step logits and the final hidden state by name."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 8)
        self.encoder = nn.GRU(8, 12, batch_first=True)
        self.decoder = nn.LSTM(8, 12, batch_first=True)
        self.project = nn.Linear(12, VOCAB)

    def forward(self, source: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        _, state = self.encoder(self.embed(source))
        steps, (hidden, _) = self.decoder(self.embed(target), (state, torch.zeros_like(state)))
        return {"logits": self.project(steps), "state": hidden[0]}


def _randomise_batch_norm(module: nn.Module) -> None:
    """Give every batch norm non-trivial running statistics and affine weights (fresh ones are 0/1)."""
    generator = torch.Generator().manual_seed(3)
    for norm in module.modules():
        if isinstance(norm, nn.BatchNorm2d):
            size = norm.num_features
            assert norm.running_mean is not None and norm.running_var is not None
            norm.running_mean.copy_(torch.randn(size, generator=generator) * 0.1)
            norm.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
            norm.weight.data.copy_(torch.rand(size, generator=generator) + 0.5)
            norm.bias.data.copy_(torch.randn(size, generator=generator) * 0.1)


def padding_mask_samples(
    rows: int, seed: int = 0, mask_dtype: type[np.generic] = np.bool_
) -> dict[str, npt.NDArray[np.generic]]:
    """Sequences with a random length each (at least one real step), padding True (1) after it."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, STEPS + 1, size=rows)
    return {
        "sequence": rng.standard_normal((rows, STEPS, MODEL_DIM)).astype(np.float32),
        "padding": (np.arange(STEPS)[None, :] >= lengths[:, None]).astype(mask_dtype),
    }


def save_padding_mask_samples(path: Path, rows: int = 16, mask_dtype: type[np.generic] = np.bool_) -> Path:
    """:func:`padding_mask_samples` as an ``.npz`` for ``VerifyOptions(samples=...)``."""
    arrays = padding_mask_samples(rows, mask_dtype=mask_dtype)
    np.savez(path, sequence=arrays["sequence"], padding=arrays["padding"])
    return path


def _examples_image() -> tuple[torch.Tensor, ...]:
    return (torch.randn(2, 3, SIDE, SIDE),)


def _examples_masked() -> tuple[torch.Tensor, ...]:
    arrays = padding_mask_samples(2, seed=1)
    return (torch.from_numpy(arrays["sequence"]), torch.from_numpy(arrays["padding"]))


def _examples_int_masked() -> tuple[torch.Tensor, ...]:
    arrays = padding_mask_samples(2, seed=1, mask_dtype=np.int64)
    return (torch.from_numpy(arrays["sequence"]), torch.from_numpy(arrays["padding"]))


def _examples_tokens() -> tuple[torch.Tensor, ...]:
    return (torch.randint(0, VOCAB, (2, STEPS)), torch.randint(0, VOCAB, (2, STEPS - 1)))


# factory, example inputs (batch 2), input names, output names
TorchRealCase = tuple[
    Callable[[], nn.Module], Callable[[], tuple[torch.Tensor, ...]], tuple[str, ...], tuple[str, ...]
]

TORCH_REAL_CASES: dict[str, TorchRealCase] = {
    "resnet_basic_blocks": (ResNet, _examples_image, ("image",), ("output",)),
    "mobilenetv3_bneck": (MobileNetV3Style, _examples_image, ("image",), ("output",)),
    "transformer_encoder_masked": (MaskedEncoder, _examples_masked, ("sequence", "padding"), ("output",)),
    "transformer_encoder_int_mask": (
        MaskedEncoder,
        _examples_int_masked,
        ("sequence", "padding"),
        ("output",),
    ),
    "gru_lstm_seq2seq": (Seq2Seq, _examples_tokens, ("source", "target"), ("logits", "state")),
}
