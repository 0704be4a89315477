"""Model size and cost: parameters and multiply-accumulates, counted by forward hooks."""

from __future__ import annotations

import torch
from torch import nn


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (buffers such as BatchNorm statistics are not counted, as in the official tables)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_macs(model: nn.Module, input_size: tuple[int, int], batch_size: int = 1) -> int:
    """Multiply-accumulates of one forward pass over ``batch_size`` images of ``input_size`` (height, width),
    counting conv and linear layers (the official "GFLOPs" tables give this count divided by 2^30).

    A conv contributes output elements × (input channels / groups) × kernel area; a linear layer
    output elements × input features. BatchNorm, activations, upsampling and sums are not counted.
    """
    total = 0

    def conv_hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(module, nn.Conv2d)
        kh, kw = module.kernel_size
        total += output.numel() * (module.in_channels // module.groups) * kh * kw

    def linear_hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(module, nn.Linear)
        total += output.numel() * module.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(batch_size, 3, *input_size, device=next(model.parameters()).device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return total
