"""The fast inference path: BatchNorm folded into the convolutions, channels-last memory, optionally compiled.

Outputs equal the plain eval-mode network's within floating-point reordering (tests pin 1e-4 of the output's
range); a folded network has no BatchNorm left and must not be trained.
"""

from __future__ import annotations

import copy
import itertools

import torch
from torch import nn


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """One convolution computing ``bn(conv(x))`` with ``bn``'s running statistics (eval semantics)."""
    mean, var = bn.running_mean, bn.running_var
    if mean is None or var is None:
        raise ValueError("a BatchNorm without running statistics cannot be folded")
    scale = bn.weight.detach() / torch.sqrt(var + bn.eps)
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,  # type: ignore[arg-type]
        stride=conv.stride,  # type: ignore[arg-type]
        padding=conv.padding,  # type: ignore[arg-type]
        dilation=conv.dilation,  # type: ignore[arg-type]
        groups=conv.groups,
        bias=True,
        padding_mode=conv.padding_mode,
    ).to(conv.weight.device, conv.weight.dtype)
    bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(mean)
    with torch.no_grad():
        fused.weight.copy_(conv.weight.detach() * scale[:, None, None, None])
        fused.bias.copy_((bias - mean) * scale + bn.bias.detach())  # type: ignore[union-attr]
    return fused


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (eval mode) with every conv → BatchNorm pair folded into one conv.

    Pairs are found two ways, which together cover both HRNet variants: consecutive children of an
    ``nn.Sequential`` (transitions, fuse paths, downsamples, the TF port's conv-BN-activation) and sibling
    attributes ``convN`` / ``bnN`` of any module (the stem, basic blocks and bottlenecks). A folded BatchNorm
    becomes ``nn.Identity``. The caller's model is left untouched.
    """
    folded = copy.deepcopy(model).eval()
    for module in list(folded.modules()):
        if isinstance(module, nn.Sequential):
            for (name, conv), (bn_name, norm) in itertools.pairwise(list(module._modules.items())):
                if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                    module._modules[name] = fold_conv_bn(conv, norm)
                    module._modules[bn_name] = nn.Identity()
        for name, child in list(module._modules.items()):
            if isinstance(child, nn.Conv2d) and name.startswith("conv"):
                sibling = module._modules.get("bn" + name[len("conv") :])
                if isinstance(sibling, nn.BatchNorm2d):
                    module._modules[name] = fold_conv_bn(child, sibling)
                    module._modules["bn" + name[len("conv") :]] = nn.Identity()
    return folded


class FastModel(nn.Module):
    """Runs a prepared network on channels-last inputs; returns ordinary (contiguous) heatmaps."""

    def __init__(self, model: nn.Module, channels_last: bool = True):
        super().__init__()
        self.model = model
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images.contiguous(memory_format=self.memory_format)).contiguous()


def prepare_for_inference(model: nn.Module, *, channels_last: bool = True, compile: bool = False) -> nn.Module:
    """``model`` made fast for inference: BatchNorm folded, eval mode, channels-last weights, optionally
    ``torch.compile``d. Run it under ``torch.inference_mode()``."""
    fast = fold_batchnorm(model)
    if channels_last:
        fast = fast.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    wrapped: nn.Module = FastModel(fast, channels_last)
    if compile:
        wrapped = torch.compile(wrapped)  # type: ignore[assignment]
    return wrapped
