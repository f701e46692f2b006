"""A torch model whose layer calls a custom operator that has no ONNX translation."""

from __future__ import annotations

import torch

__all__ = ["with_custom_operator"]


@torch.library.custom_op("modelport_test::wiggle", mutates_args=())
def wiggle(x: torch.Tensor) -> torch.Tensor:
    """sin(x), as an opaque custom operator."""
    return x.sin()


@wiggle.register_fake
def _(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


class Wiggle(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result: torch.Tensor = wiggle(x)
        return result


def with_custom_operator() -> torch.nn.Module:
    """Linear -> Wiggle (the custom operator), in a submodule called ``activation``."""
    model = torch.nn.Sequential()
    model.add_module("dense", torch.nn.Linear(4, 4))
    model.add_module("activation", Wiggle())
    return model
