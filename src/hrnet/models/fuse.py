"""The fast inference path: BatchNorm folded into the convolutions, channels-last memory, optionally compiled.

In eval mode a BatchNorm is an affine map per channel, ``y = (x - mean) / sqrt(var + eps) * gamma + beta``, so a
convolution followed by it is one convolution with scaled weights and a new bias (Ioffe & Szegedy 2015; the
folding every deployment tool does, e.g. ``torch.fx.experimental.optimization.fuse``). The folded network gives
the plain eval-mode network's outputs within floating-point reordering (tests pin 1e-4 of the output's range);
it has no BatchNorm left and must not be trained.
"""

from __future__ import annotations

import copy
import itertools
from collections import Counter

import torch
from torch import nn

from hrnet.models.blocks import BasicBlock, Bottleneck
from hrnet.models.hrnet import HRNet
from hrnet.models.litehrnet import ConvUnit
from hrnet.tf_port.model import PortBatchNorm

# Modules whose forward applies ``bnN`` directly to ``convN``'s output (the official stem and residual units,
# Lite-HRNet's conv units).
# Listed by class, not guessed from attribute names, so an unknown module is never folded wrongly.
_CONV_BN_ATTRIBUTES: dict[type[nn.Module], tuple[tuple[str, str], ...]] = {
    HRNet: (("conv1", "bn1"), ("conv2", "bn2")),
    BasicBlock: (("conv1", "bn1"), ("conv2", "bn2")),
    Bottleneck: (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3")),
    ConvUnit: (("conv", "bn"),),
}


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """One convolution computing ``bn(conv(x))`` with ``bn``'s running statistics (eval semantics): a copy of
    ``conv``, which is left as it is (``_fold_into`` gives the arithmetic)."""
    return _fold_into(copy.deepcopy(conv), bn)


def _fold_into(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """``conv`` changed to compute ``bn(conv(x))`` (eval semantics) and returned.

    The weight (C_out, C_in, kh, kw) is scaled per output channel by ``gamma / sqrt(var + eps)``; the bias
    becomes ``(bias - mean) * scale + beta`` (``bias`` 0 for a conv without one).
    """
    mean, var = bn.running_mean, bn.running_var
    if mean is None or var is None:
        raise ValueError("a BatchNorm without running statistics (track_running_stats=False) cannot be folded")
    gamma = bn.weight.detach() if bn.weight is not None else torch.ones_like(mean)
    beta = bn.bias.detach() if bn.bias is not None else torch.zeros_like(mean)
    scale = gamma / torch.sqrt(var + bn.eps)
    bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(mean)
    with torch.no_grad():
        conv.weight.mul_(scale[:, None, None, None])
        folded_bias = (bias - mean) * scale + beta
        if conv.bias is None:
            conv.bias = nn.Parameter(folded_bias.to(conv.weight.dtype))
        else:
            conv.bias.copy_(folded_bias)
    return conv


def fold_batchnorm(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """``model`` in eval mode with every conv → BatchNorm pair folded into one conv (the BatchNorm becomes
    ``nn.Identity``, so module names and indices stay those of the original).

    Pairs are consecutive children of an ``nn.Sequential`` (the official transitions, fuse paths and shortcut
    projections; every conv-BN of the TF port, whose ``ConvBNAct`` is a Sequential; Lite-HRNet's transitions and
    fuse paths, depthwise convs included) and the ``convN`` / ``bnN`` attributes of the official stem and residual
    units and ``conv`` / ``bn`` of Lite-HRNet's conv units. A BatchNorm elsewhere is kept as it is (still correct), and
    so is one that normalises with batch statistics at test time (the TF port's ``batch_norm: batch``).

    Args:
        model: the network; left untouched unless ``inplace``.
        inplace: fold ``model`` itself and return it, for a caller that will not use the unfolded network again
            (``hrnet.runtime.backends.open_backend`` on the network it loaded): a copy of the whole network costs
            more than the folding.

    Returns:
        The folded network: a copy of ``model``, or ``model`` itself with ``inplace``.
    """
    folded = (model if inplace else copy.deepcopy(model)).eval()
    # A conv that sits in two places is folded as a copy in each, as changing it would change it in both.
    uses = Counter(id(m) for _, m in folded.named_modules(remove_duplicate=False))
    for module in list(folded.modules()):
        for conv_name, bn_name in _candidate_pairs(module):
            conv, bn = module._modules.get(conv_name), module._modules.get(bn_name)
            batch_statistics = isinstance(bn, PortBatchNorm) and bn.batch_statistics
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and not batch_statistics:
                module._modules[conv_name] = _fold_into(conv, bn) if uses[id(conv)] == 1 else fold_conv_bn(conv, bn)
                module._modules[bn_name] = nn.Identity()
    return folded


def _candidate_pairs(module: nn.Module) -> list[tuple[str, str]]:
    """Names of (conv, BatchNorm) children of ``module`` where the BatchNorm is applied to the conv's output."""
    if isinstance(module, nn.Sequential):
        return list(itertools.pairwise(module._modules))
    for cls, names in _CONV_BN_ATTRIBUTES.items():
        if isinstance(module, cls):
            return list(names)
    return []


class FastModel(nn.Module):
    """Runs a prepared network under ``torch.inference_mode`` on channels-last inputs.

    (N, 3, H, W) images in any memory format → the network's output (heatmaps (N, K, h, w)) as an ordinary
    contiguous tensor. Outputs are inference tensors: they take no part in autograd.
    """

    def __init__(self, model: nn.Module, channels_last: bool = True):
        super().__init__()
        self.model = model
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.model(images.contiguous(memory_format=self.memory_format)).contiguous()


def prepare_for_inference(
    model: nn.Module, *, channels_last: bool = True, compile: bool = False, inplace: bool = False
) -> FastModel:
    """``model`` made fast for inference (the caller's model is left untouched unless ``inplace``, see
    ``fold_batchnorm``): BatchNorm folded, eval mode, channels-last weights and inputs, run under
    ``torch.inference_mode`` (speeds in ``docs/speed.md``).

    On the CPU, ``hrnet.system.keep_freed_memory`` (process-wide, so the caller's choice) adds the largest single
    gain: freed buffers reused instead of faulted in afresh on every call. ``compile=True`` adds ``torch.compile``
    with Inductor's *freezing* (weights become graph constants); the first call for each batch size compiles, which
    needs a C++ compiler.
    """
    fast = fold_batchnorm(model, inplace=inplace)
    if channels_last:
        fast = fast.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    if compile:
        # Static shapes: each batch size gets its own specialised graph, faster to compile and to run.
        fast = torch.compile(fast, dynamic=False, options={"freezing": True})  # type: ignore[assignment]
    return FastModel(fast, channels_last)
