"""Model size and cost: parameters and multiply-accumulates, counted by forward hooks.

``trace_modules`` runs one hooked forward pass and records every module call (output shape, parameters,
multiply-accumulates); ``blocks`` picks from it the residual units, convolution units and fusion paths that make
up the network, whose figures add up to ``count_parameters`` and ``count_macs``; ``layer_table`` lists them
(``hrnet info --layers``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hrnet.config import ModelConfig
from hrnet.errors import ConfigError
from hrnet.models.hrnet import UpsampleConcat
from hrnet.models.litehrnet import ConvUnit
from hrnet.system import available_memory


@dataclass(frozen=True)
class ModuleCall:
    """One call of one module in a forward pass."""

    name: str  # qualified module name, as in ``named_modules()``; "" is the model itself
    module: nn.Module
    input_shape: tuple[int, ...] | None  # of the first argument; None when it is not a tensor (a list of branches)
    output_shape: tuple[int, ...] | None  # None when the output is not a tensor (a list of branches)
    params: int  # trainable parameters of the module and its children, counted at its first call only
    macs: int  # multiply-accumulates of the conv and linear layers that ran during this call
    branch_shapes: tuple[tuple[int, ...], ...] = ()  # of each tensor of an output that is a list of branches


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (buffers such as BatchNorm statistics are not counted, as in the official tables)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _layer_macs(module: nn.Module, output: torch.Tensor) -> int:
    """A conv contributes output elements × (input channels / groups) × kernel area; a linear layer output
    elements × input features; nothing else is counted."""
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return output.numel() * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    return 0


def _shape(value: object) -> tuple[int, ...] | None:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else None


def _branch_shapes(value: object) -> tuple[tuple[int, ...], ...]:
    if isinstance(value, list | tuple) and all(isinstance(v, torch.Tensor) for v in value):
        return tuple(tuple(v.shape) for v in value)
    return ()


def trace_modules(model: nn.Module, input_size: tuple[int, int], batch_size: int = 1) -> list[ModuleCall]:
    """Every module call of one forward pass over ``batch_size`` zero images of ``input_size`` (height, width),
    in the order the calls start (the model itself first). Runs on the model's device: on the meta device only
    shapes are computed. A module called twice (a shared activation) gives two calls; its parameters count once.
    """
    names = {id(m): name for name, m in model.named_modules()}
    calls: list[ModuleCall | None] = []
    open_calls: list[tuple[int, int, tuple[int, ...] | None]] = []  # (index in calls, MACs so far, input shape)
    seen: set[str] = set()
    total = 0

    def pre_hook(module: nn.Module, inputs: tuple[object, ...]) -> None:
        open_calls.append((len(calls), total, _shape(inputs[0]) if inputs else None))
        calls.append(None)  # filled when the call returns, keeping the order in which calls start

    def hook(module: nn.Module, inputs: tuple[object, ...], output: object) -> None:
        nonlocal total
        if isinstance(output, torch.Tensor):
            total += _layer_macs(module, output)
        index, start, input_shape = open_calls.pop()
        name = names[id(module)]
        params = 0 if name in seen else count_parameters(module)
        seen.add(name)
        calls[index] = ModuleCall(
            name, module, input_shape, _shape(output), params, total - start, _branch_shapes(output)
        )

    handles = []
    for m in model.modules():
        handles.append(m.register_forward_pre_hook(pre_hook))
        handles.append(m.register_forward_hook(hook))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(batch_size, 3, *input_size, device=next(model.parameters()).device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return [call for call in calls if call is not None]


def blocks(model: nn.Module, calls: list[ModuleCall]) -> list[ModuleCall]:
    """The calls of the network's building blocks, in forward order: residual units, conv(-BN-activation) units,
    upsampling, single layers outside any unit. Every parameter and multiply-accumulate of the pass lies in
    exactly one of them, so their sums are ``count_parameters`` and ``count_macs``.

    The model is opened down to them through containers: ``ModuleList``, a ``Sequential`` none of whose direct
    children is a layer with parameters (a stack of units, a chain of convs), and any module that takes or
    returns a list of branches (an exchange module, a fusion) and has children. Parameter-free calls that keep
    their input's shape (activations, identities) are left out.
    """
    takes_lists = {c.name for c in calls if c.input_shape is None or c.output_shape is None}

    def is_container(name: str, module: nn.Module) -> bool:
        if name == "" or isinstance(module, nn.ModuleList) or (name in takes_lists and list(module.children())):
            return True
        if isinstance(module, nn.Sequential):
            return not any(not list(c.children()) and count_parameters(c) for c in module.children())
        return False

    selected: set[str] = set()

    def visit(name: str, module: nn.Module) -> None:
        if not is_container(name, module):
            selected.add(name)
            return
        for child_name, child in module.named_children():
            visit(f"{name}.{child_name}" if name else child_name, child)

    visit("", model)
    return [
        c
        for c in calls
        if c.name in selected and (c.params or c.macs or c.input_shape is None or c.input_shape != c.output_shape)
    ]


def describe_layer(module: nn.Module) -> str:
    """One layer in a few words: "3×3 conv /2, 32→64", "3×3 depthwise conv, 40→40", "nearest ×2", "BN", "leaky ReLU
    0.1", "bilinear to branch 1, concat", else its class."""
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        stride = f" /{module.stride[0]}" if module.stride[0] > 1 else ""
        depthwise = " depthwise" if module.groups > 1 and module.groups == module.in_channels else ""
        return f"{kh}×{kw}{depthwise} conv{stride}, {module.in_channels}→{module.out_channels}"
    if isinstance(module, nn.Upsample):
        scale = module.scale_factor
        factor = scale[0] if isinstance(scale, tuple) else scale
        return f"{module.mode} ×{float(factor or 0):g}"
    if isinstance(module, UpsampleConcat):
        return "bilinear to branch 1, concat"
    if isinstance(module, nn.BatchNorm2d):
        return "BN"
    if isinstance(module, nn.LeakyReLU):
        return f"leaky ReLU {module.negative_slope:g}"
    return type(module).__name__


def _what(module: nn.Module) -> str:
    """A residual unit by its class, a conv unit or path by its layers, a layer by itself."""
    children = list(module.children())
    if not children:
        return describe_layer(module)
    if isinstance(module, nn.Sequential | ConvUnit) and all(not list(c.children()) for c in children):
        return ", ".join(describe_layer(c) for c in children)
    return type(module).__name__


def layer_table(model: nn.Module, input_size: tuple[int, int], batch_size: int = 1) -> str:
    """Every block of ``model`` in forward order (residual units, conv units, fusion path steps, single layers)
    with its output shape (N, C, H, W), parameters and multiply-adds for ``batch_size`` images of ``input_size``
    (height, width), and their totals, as a text table."""
    calls = blocks(model, trace_modules(model, input_size, batch_size))
    header = ("block", "what", "output (N, C, H, W)", "parameters", "multiply-adds")
    rows = [(c.name, _what(c.module), str(c.output_shape), f"{c.params:,}", f"{c.macs:,}") for c in calls]
    rows.append(("total", "", "", f"{sum(c.params for c in calls):,}", f"{sum(c.macs for c in calls):,}"))
    widths = [max(len(row[k]) for row in [header, *rows]) for k in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        left = "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=False))
        right = "  ".join(cell.rjust(width) for cell, width in zip(row[3:], widths[3:], strict=True))
        return f"{left}  {right}"

    h, w = input_size
    title = f"{len(calls)} blocks in forward order, batch {batch_size}, input {h}×{w}"
    return "\n".join([title, line(header), *(line(row) for row in rows)])


def count_macs(model: nn.Module, input_size: tuple[int, int], batch_size: int = 1) -> int:
    """Multiply-accumulates of one forward pass over ``batch_size`` images of ``input_size`` (height, width),
    of the conv and linear layers only (``_layer_macs``; the official "GFLOPs" tables give this count / 2^30)."""
    return trace_modules(model, input_size, batch_size)[0].macs


BYTES_PER_VALUE = 4  # float32 activations


def activation_bytes(model: nn.Module, config: ModelConfig, batch_size: int, *, training: bool) -> int:
    """Estimated activation memory of one forward pass at ``config.input_size`` over ``batch_size`` crops, bytes.

    Traced once at the smallest input the network takes (32 × 32 pixels; 8 × 8 for the TF port) and scaled by
    area and batch: every feature map of HRNet is a fixed fraction of the input, so the count is exact for the
    module outputs. Training keeps every module's output for the backward pass (their sum); inference holds about
    a layer's input and output at a time (twice the largest). A lower bound: the allocator, gradients and the
    optimizer's state add to it. The model runs once in eval mode, unchanged; on the meta device the estimate is 0.
    """
    step = config.input_step
    sizes = _layer_output_sizes(model, (step, step))
    per_probe = sum(sizes) if training else 2 * max(sizes, default=0)
    height, width = config.input_size
    return per_probe * (height * width) // (step * step) * batch_size * BYTES_PER_VALUE


def _layer_output_sizes(model: nn.Module, input_size: tuple[int, int]) -> list[int]:
    """Elements of each tensor that a layer (a module without children) returns in one eval-mode forward pass over
    one zero image of ``input_size`` (height, width), in the order the layers return; a layer called twice counts
    twice: ``trace_modules``'s layer outputs, for a fraction of its cost (one hook a layer, nothing else recorded),
    as every ``hrnet predict`` pays it at start. Empty on the meta device."""
    device = next(model.parameters()).device
    if device.type == "meta":
        return []
    sizes: list[int] = []

    def hook(module: nn.Module, inputs: tuple[object, ...], output: object) -> None:
        if isinstance(output, torch.Tensor) and output.dim():
            sizes.append(output.numel())

    handles = [m.register_forward_hook(hook) for m in model.modules() if next(m.children(), None) is None]
    was_training = model.training
    switch = any(m.training for m in model.modules())  # setting every module's mode costs more than looking
    try:
        if switch:
            model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, *input_size, device=device))
    finally:
        if switch:
            model.train(was_training)
        for h in handles:
            h.remove()
    return sizes


def check_memory(
    model: nn.Module, config: ModelConfig, batch_size: int, device: torch.device, *, training: bool, what: str
) -> int:
    """``ConfigError`` before anything is allocated when the activations of one batch (``activation_bytes``) cannot
    fit in the memory ``device`` has free; returns the estimate. ``what`` names the batch-size setting in the
    message (``train.batch_size``, ``test.batch_size``). Nothing is checked where the free memory is unknown."""
    needed = activation_bytes(model, config, batch_size, training=training)
    free = available_memory(device)
    if free is not None and needed > free:
        height, width = config.input_size
        raise ConfigError(
            f"model.input_size {height} × {width} with {what} {batch_size} needs about {_gib(needed)} of "
            f"activations for {'training' if training else 'inference'} (estimated), but {device} has "
            f"{_gib(free)} free: lower model.input_size or {what}"
        )
    return needed


def _gib(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB"
