"""What a network is made of, read from the network that would run: stages, branches, the exchange modules
between them, the steps of every path, and the tensor shapes, parameters and multiply-adds of each part.

Nothing here is typed in: the network (official HRNet or HRNetV2, the TF port, Lite-HRNet) is built from its
``ModelConfig`` on the meta device and run once with hooks (``hrnet.models.complexity.trace_modules``); the module
tree gives the structure, the recorded calls the shapes and costs. What a module does between its layers (a sum, a
split, an interpolation) is read off its class, whose ``forward`` it restates. ``hrnet.drawing.network`` draws what
this module returns.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from hrnet.config import LiteHRNetConfig, ModelConfig
from hrnet.errors import ConfigError
from hrnet.models.complexity import ModuleCall, blocks, describe_layer, trace_modules
from hrnet.models.hrnet import ExchangeModule, HRNet, UpsampleConcat, build_model
from hrnet.models.litehrnet import ConditionalChannelWeighting, LiteHRModule, LiteHRNet, NaiveBlocks
from hrnet.tf_port.model import BetweenStages, ExchangeBlock, TFPortHRNet, TFSamePadding

Shape = tuple[int, ...]

HEAD_PARTS = ("neck", "conv_layers", "final_layer")  # HRNet's head modules, in forward order


@dataclass(frozen=True)
class Step:
    """One step of a path: a convolution with the BatchNorm and activation that follow it, or an upsampling."""

    title: str  # "3×3 conv /2, 32→64", "1×1 conv, 64→32", "nearest ×2", "bilinear to branch 1, concat"
    extras: tuple[str, ...]  # what follows inside the step: ("BN", "ReLU")
    shape: Shape  # (N, C, H, W) output of the convolution or upsampling

    @property
    def text(self) -> str:
        """The step on one line: "3×3 conv /2, 3→64, BN, ReLU"."""
        return ", ".join((self.title, *self.extras))


@dataclass(frozen=True)
class Branch:
    """One branch of one module: its residual units and their output."""

    shape: Shape  # (N, C, H, W) output of the last unit
    units: int
    unit: str  # class name of the residual unit


@dataclass(frozen=True)
class Module:
    """One exchange module (or stage 1's single stack): residual units per branch, then a fusion."""

    branches: tuple[Branch, ...]
    fused_outputs: int  # branches the fusion produces (0: no fusion; 1: only the highest resolution)
    # The units take all branches at once (Lite-HRNet's conditional channel weighting), not one stack a branch.
    spans_branches: bool = False
    # Lite-HRNet's fusion as MMPose sums it in place: branch 1 counts twice in output 1's sum, and every other output
    # takes that sum (before its ReLU), twice, where it would take branch 1.
    from_first_sum: bool = False


@dataclass(frozen=True)
class Opening:
    """How a stage starts from the previous one's branches."""

    kept: tuple[tuple[Step, ...], ...]  # per existing branch: the convs it passes through (none: unchanged)
    new: tuple[Step, ...]  # the chain that makes the new branch from the lowest-resolution one
    fuses: bool  # the existing branches are first fused with each other (TF port's exchange between stages)


@dataclass(frozen=True)
class Cost:
    """Trainable parameters and multiply-adds (``count_parameters``, ``count_macs``) of one part."""

    params: int
    macs: int


@dataclass(frozen=True)
class Stage:
    number: int
    opening: Opening | None  # None for stage 1
    modules: tuple[Module, ...]
    after: tuple[Step, ...]  # steps on branch 0 after the modules (the TF port's stage-1 output conv)
    cost: Cost  # including the opening


@dataclass(frozen=True)
class Network:
    """A whole network, read from the built network and one hooked forward pass."""

    variant: str
    head_name: str  # ModelConfig.head: "simple", or "hrnetv2" (all branches concatenated)
    input_shape: Shape  # (N, 3, H, W)
    stem: tuple[Step, ...]  # empty for the TF port, which has none
    stem_cost: Cost
    stages: tuple[Stage, ...]
    # Per branch (highest resolution first), the head's steps on it before ``head``: Lite-HRNet's iterative head,
    # which runs them from the lowest branch up, each branch's first step adding the result of the one below it.
    # Empty where the head takes the branches as they are.
    head_branches: tuple[tuple[Step, ...], ...]
    head_inputs: int  # branches the head reads (1: only the highest resolution)
    head: tuple[Step, ...]
    head_note: str  # what the head does after its convolution
    head_cost: Cost  # including head_branches
    heatmap_shape: Shape  # (N, K, H, W)
    total: Cost
    activation: str  # the activation the network uses
    up_path: str  # the order of an upward fusion path
    down_path: str  # the convolutions of one factor of 2 of a downward fusion path


@dataclass(frozen=True)
class Exchange:
    """One exchange module's fusion, read from the built network."""

    units: Branch  # the residual units of branch 1 (every branch has as many, of one type)
    inputs: tuple[Shape, ...]  # (N, C, H, W) of each branch after its residual units
    paths: tuple[tuple[tuple[Step, ...] | None, ...], ...]  # [output][input]: steps, None for the identity
    after_sum: str | None  # the activation applied to each sum; None where there is none
    num_modules: int  # in the stage
    from_first_sum: bool  # as Module.from_first_sum: paths[o][0] for o ≥ 1 start from output 1's sum, twice


def _leaves(module: nn.Module | None, name: str) -> list[tuple[str, nn.Module]]:
    if module is None:
        return []
    return [(n, m) for n, m in module.named_modules(prefix=name) if not list(m.children())]


def _steps(leaves: Iterable[tuple[str, nn.Module]], shapes: dict[str, Shape]) -> tuple[Step, ...]:
    """Group leaves (in forward order) into steps: each conv or upsampling opens one; the rest join it. The TF
    port's explicit 'same' padding belongs to the conv that follows it."""
    steps: list[Step] = []
    padded = False
    for name, leaf in leaves:
        if isinstance(leaf, nn.Identity):
            continue
        if isinstance(leaf, TFSamePadding):
            padded = True
            continue
        if isinstance(leaf, (nn.Conv2d, nn.Upsample, UpsampleConcat)) or not steps:
            extras = ("TF 'same' padding",) if padded else ()
            steps.append(Step(describe_layer(leaf), extras, shapes[name]))
            padded = False
        else:
            last = steps[-1]
            steps[-1] = Step(last.title, (*last.extras, describe_layer(leaf)), last.shape)
    return tuple(steps)


def _first_shapes(calls: Sequence[ModuleCall]) -> dict[str, Shape]:
    """Shapes at each module's first call: its output ("name"), branch b of an output that is a list of branches
    ("name[b]"), its input ("name:in")."""
    shapes: dict[str, Shape] = {}
    for call in calls:
        if call.output_shape is not None:
            shapes.setdefault(call.name, call.output_shape)
        for b, shape in enumerate(call.branch_shapes):
            shapes.setdefault(f"{call.name}[{b}]", shape)
        if call.input_shape is not None:
            shapes.setdefault(f"{call.name}:in", call.input_shape)
    return shapes


def _labelled(label: str, steps: Iterable[Step]) -> tuple[Step, ...]:
    return tuple(Step(f"{label}: {step.title}", step.extras, step.shape) for step in steps)


def _branch(stack: nn.Sequential, name: str, shapes: dict[str, Shape]) -> Branch:
    """The residual units ``stack`` (module ``name``): its output shape, how many, of which class."""
    return Branch(shapes[f"{name}.{len(stack) - 1}"], len(stack), type(stack[0]).__name__)


def _branches(stacks: nn.ModuleList, prefix: str, shapes: dict[str, Shape]) -> tuple[Branch, ...]:
    return tuple(
        _branch(stack, f"{prefix}.{b}", shapes) for b, stack in enumerate(cast(Sequence[nn.Sequential], stacks))
    )


def _stage_key(name: str, variant: str) -> str:
    """Which part a block belongs to: "stem", "1".."4" (a stage, with the transition that opens it) or "head".
    Lite-HRNet's stages are numbered from 2 as in its paper (MMPose's ``transition0`` and ``stage0`` open stage 2)."""
    top, _, rest = name.partition(".")
    if variant == "litehrnet":
        if top == "stem":
            return "stem"
        for prefix in ("transition", "stage"):
            if top.startswith(prefix):
                return str(int(top.removeprefix(prefix)) + 2)
        if top in ("head_layer", "final_layer"):
            return "head"
    elif variant == "hrnet":
        if top in ("conv1", "bn1", "conv2", "bn2", "relu"):
            return "stem"
        if top == "layer1":
            return "1"
        if top.startswith("transition"):
            return str(int(top.removeprefix("transition")) + 1)
        if top.startswith("stage"):
            return top.removeprefix("stage")
        if top in HEAD_PARTS:
            return "head"
    else:
        if top in ("stage1", "stage1_out"):
            return "1"
        if top == "stages":
            return str(int(rest.partition(".")[0]) + 2)
        if top == "head":
            return "head"
    raise ValueError(f"block {name!r} belongs to no part of a {variant} network")


def _costs(model: nn.Module, calls: list[ModuleCall], variant: str) -> dict[str, Cost]:
    params: dict[str, int] = {}
    macs: dict[str, int] = {}
    for call in blocks(model, calls):
        key = _stage_key(call.name, variant)
        params[key] = params.get(key, 0) + call.params
        macs[key] = macs.get(key, 0) + call.macs
    return {key: Cost(params[key], macs[key]) for key in params}


def _hrnet_parts(
    model: HRNet, shapes: dict[str, Shape], costs: dict[str, Cost]
) -> tuple[tuple[Step, ...], list[Stage], tuple[Step, ...]]:
    stem_leaves = [("conv1", model.conv1), ("bn1", model.bn1), ("relu", model.relu)]
    stem_leaves += [("conv2", model.conv2), ("bn2", model.bn2), ("relu", model.relu)]
    stem = _steps(stem_leaves, shapes)
    stages = [Stage(1, None, (Module((_branch(model.layer1, "layer1", shapes),), 0),), (), costs["1"])]
    for s in (2, 3, 4):
        transition = cast(Sequence[nn.Module | None], getattr(model, f"transition{s - 1}"))
        kept = tuple(_steps(_leaves(layer, f"transition{s - 1}.{i}"), shapes) for i, layer in enumerate(transition))
        opening = Opening(kept[:-1], kept[-1], fuses=False)
        modules = []
        for m, module in enumerate(cast(Sequence[ExchangeModule], getattr(model, f"stage{s}"))):
            fused = len(module.fuse_layers or ())
            modules.append(Module(_branches(module.branches, f"stage{s}.{m}.branches", shapes), fused))
        stages.append(Stage(s, opening, tuple(modules), (), costs[str(s)]))
    head = _steps([leaf for name in HEAD_PARTS for leaf in _leaves(getattr(model, name), name)], shapes)
    if model.neck is not None:  # UpsampleConcat: every branch resized to branch 1's size, then concatenated
        channels = "+".join(str(branch.shape[1]) for branch in stages[-1].modules[-1].branches)
        _, _, h, w = head[0].shape
        head = (Step(f"bilinear to {h}×{w}, concat {channels}", (), head[0].shape), *head[1:])
    return stem, stages, head


def _lite_branches(module: LiteHRModule, name: str, shapes: dict[str, Shape]) -> tuple[Branch, ...]:
    """The branches of Lite-HRNet's module ``name`` after its blocks: shuffle units a branch, or weighting blocks
    over all branches (which keep each branch's shape)."""
    if isinstance(module.layers, NaiveBlocks):
        return _branches(module.layers, f"{name}.layers", shapes)
    weighting = cast(nn.Sequential, module.layers)
    unit = type(weighting[0]).__name__
    num_branches = len(cast(ConditionalChannelWeighting, weighting[0]).depthwise_convs)
    return tuple(Branch(shapes[f"{name}.layers[{b}]"], len(weighting), unit) for b in range(num_branches))


def _litehrnet_parts(
    model: LiteHRNet, shapes: dict[str, Shape], costs: dict[str, Cost]
) -> tuple[tuple[Step, ...], list[Stage], tuple[tuple[Step, ...], ...], tuple[Step, ...]]:
    """Stem, stages (numbered from 2), the iterative head's steps per branch and the final conv, as
    ``LiteHRNet.forward`` runs them."""
    stem = model.stem
    half2 = [*_leaves(stem.expand_conv, "stem.expand_conv"), *_leaves(stem.depthwise_conv, "stem.depthwise_conv")]
    half2 += _leaves(stem.linear_conv, "stem.linear_conv")
    stem_steps = (
        *_steps(_leaves(stem.conv1, "stem.conv1"), shapes),
        *_labelled("half 1", _steps(_leaves(stem.branch1, "stem.branch1"), shapes)),
        *_labelled("half 2", _steps(half2, shapes)),
        Step("concat, channel shuffle", (), shapes["stem"]),
    )
    stages = []
    for s in range(model.num_stages):
        transition = cast(Sequence[nn.Module | None], getattr(model, f"transition{s}"))
        kept = tuple(_steps(_leaves(layer, f"transition{s}.{i}"), shapes) for i, layer in enumerate(transition))
        modules = []
        for m, module in enumerate(cast(Sequence[LiteHRModule], getattr(model, f"stage{s}"))):
            fused = len(module.fuse_layers or ())
            spans = not isinstance(module.layers, NaiveBlocks)
            branches = _lite_branches(module, f"stage{s}.{m}", shapes)
            modules.append(Module(branches, fused, spans_branches=spans, from_first_sum=fused > 0))
        stages.append(Stage(s + 2, Opening(kept[:-1], kept[-1], fuses=False), tuple(modules), (), costs[str(s + 2)]))
    head_branches: tuple[tuple[Step, ...], ...] = ()
    if model.head_layer is not None:
        projects = model.head_layer.projects
        per_branch: dict[int, tuple[Step, ...]] = {}
        for k, project in enumerate(projects):  # IterativeHead: the lowest branch first
            b, name = len(projects) - 1 - k, f"head_layer.projects.{k}"
            added = (Step(f"+ branch {b + 2}'s result, bilinear (corners aligned)", (), shapes[f"{name}:in"]),)
            per_branch[b] = (*(added if k else ()), *_steps(_leaves(project, name), shapes))
        head_branches = tuple(per_branch[b] for b in range(len(projects)))
    return stem_steps, stages, head_branches, _steps(_leaves(model.final_layer, "final_layer"), shapes)


def _tf_port_parts(
    model: TFPortHRNet, shapes: dict[str, Shape], costs: dict[str, Cost]
) -> tuple[tuple[Step, ...], list[Stage], tuple[Step, ...]]:
    after = _steps(_leaves(model.stage1_out, "stage1_out"), shapes)
    stages = [Stage(1, None, (Module((_branch(model.stage1, "stage1", shapes),), 0),), after, costs["1"])]
    for k, stage in enumerate(cast(Sequence[nn.Sequential], model.stages)):
        between = cast(BetweenStages, stage[0])
        exchange_blocks = cast(Sequence[ExchangeBlock], stage[1:])
        new = _steps(_leaves(between.new_branch, f"stages.{k}.0.new_branch"), shapes)
        opening = Opening(tuple(() for _ in between.fusion.paths), new, fuses=True)
        modules = tuple(
            Module(_branches(block.branches, f"stages.{k}.{m}.branches", shapes), len(block.fusion.paths))
            for m, block in enumerate(exchange_blocks, start=1)
        )
        stages.append(Stage(k + 2, opening, modules, (), costs[str(k + 2)]))
    return (), stages, _steps(_leaves(model.head, "head"), shapes)


def _build(cfg: ModelConfig, batch_size: int) -> tuple[nn.Module, list[ModuleCall]]:
    with torch.device("meta"):  # shapes only: no memory is allocated and no arithmetic is done
        model = build_model(cfg)
    return model, trace_modules(model, cfg.input_size, batch_size)


def _activation(model: nn.Module) -> str:
    for module in model.modules():
        if isinstance(module, (nn.ReLU, nn.LeakyReLU)):
            return describe_layer(module)
    return "none"


def _up_path(model: nn.Module) -> str:
    """The order of the first upward fusion path: its leaves from the upsampling or the 1×1 conv on."""
    for module in model.modules():
        if isinstance(module, nn.Sequential) and any(isinstance(m, nn.Upsample) for m in module.children()):
            return " → ".join(describe_layer(m).split(",")[0] for m in module.modules() if not list(m.children()))
    return "none"


def _down_path(model: nn.Module) -> str:
    """The convolutions of the first stride-2 step of a fusion path ("3×3 conv /2"): one such step halves the
    resolution once."""
    for name, module in model.named_modules():
        children = list(module.children())
        if not isinstance(module, nn.Sequential) or not ("fuse_layers" in name or "fusion" in name):
            continue
        convs = [m for m in children if isinstance(m, nn.Conv2d)]
        if all(not list(m.children()) for m in children) and any(m.stride[0] == 2 for m in convs):
            return " → ".join(describe_layer(m).split(",")[0] for m in convs)
    return "none"


def describe_network(cfg: ModelConfig, batch_size: int = 1) -> Network:
    """Build ``cfg``'s network on the meta device, run it once with hooks over ``batch_size`` zero images of
    ``cfg.input_size`` and read off its parts, their shapes and their costs."""
    model, calls = _build(cfg, batch_size)
    shapes = _first_shapes(calls)
    costs = _costs(model, calls, cfg.variant)
    head_branches: tuple[tuple[Step, ...], ...] = ()
    head_note = ""
    if cfg.variant == "hrnet":
        stem, stages, head = _hrnet_parts(cast(HRNet, model), shapes, costs)
        head_inputs = len(stages[-1].modules[-1].branches) if cast(HRNet, model).neck is not None else 1
    elif cfg.variant == "litehrnet":
        stem, stages, head_branches, head = _litehrnet_parts(cast(LiteHRNet, model), shapes, costs)
        head_inputs = len(head_branches) or 1
    else:
        stem, stages, head = _tf_port_parts(cast(TFPortHRNet, model), shapes, costs)
        head_note = "then ReLU, each map ÷ its sum"
        head_inputs = 1
    return Network(
        variant=cfg.variant,
        head_name=cfg.head,
        input_shape=cast(Shape, calls[0].input_shape),
        stem=stem,
        stem_cost=costs.get("stem", Cost(0, 0)),
        stages=tuple(stages),
        head_branches=head_branches,
        head_inputs=head_inputs,
        head=head,
        head_note=head_note,
        head_cost=costs["head"],
        heatmap_shape=cast(Shape, calls[0].output_shape),
        total=Cost(calls[0].params, calls[0].macs),
        activation=_activation(model),
        up_path=_up_path(model),
        down_path=_down_path(model),
    )


def describe_exchange(cfg: ModelConfig, stage: int, module: int = 1) -> Exchange:
    """Module ``module`` (from 1) of ``stage`` (2 to 4; Lite-HRNet's from 2) of ``cfg``'s network, read off the
    built network."""
    model, calls = _build(cfg, 1)
    shapes = _first_shapes(calls)
    if cfg.variant == "litehrnet":
        spec = cast(LiteHRNetConfig, cfg.litehrnet)
        last = len(spec.num_modules) + 1
        if not 2 <= stage <= last:
            raise ConfigError(f"--detail stage{stage}: this Lite-HRNet has stages 2 to {last} (1 is its stem)")
        if not spec.with_fuse[stage - 2]:
            raise ConfigError(f"--detail stage{stage}: its modules have no fusion (litehrnet.with_fuse)")
        modules = cast(nn.Sequential, getattr(model, f"stage{stage - 2}"))
        num_modules, index = len(modules), module - 1
        prefix, paths_name = f"stage{stage - 2}.{index}", "fuse_layers"
    elif cfg.variant == "hrnet":
        modules = cast(nn.Sequential, getattr(model, f"stage{stage}"))
        num_modules, index = len(modules), module - 1
        prefix, paths_name = f"stage{stage}.{index}", "fuse_layers"
    else:
        # The port's stage opens with an exchange between stages; its exchange blocks follow.
        modules = cast(nn.Sequential, cast(TFPortHRNet, model).stages[stage - 2])
        num_modules, index = len(modules) - 1, module
        prefix, paths_name = f"stages.{stage - 2}.{index}", "fusion.paths"
    if not 1 <= module <= num_modules:
        raise ConfigError(f"--detail stage{stage}.{module}: stage {stage} has modules 1 to {num_modules}")
    exchange = cast(ExchangeModule | ExchangeBlock | LiteHRModule, modules[index])
    paths = cast(nn.ModuleList, exchange.get_submodule(paths_name))
    if isinstance(exchange, LiteHRModule):
        branches = _lite_branches(exchange, prefix, shapes)
    else:
        branches = _branches(exchange.branches, f"{prefix}.branches", shapes)
    relu = None if isinstance(exchange, ExchangeBlock) else exchange.relu
    after_sum = None if relu is None else describe_layer(relu)
    return Exchange(
        units=branches[0],
        inputs=tuple(b.shape for b in branches),
        paths=tuple(
            tuple(
                None if path is None or isinstance(path, nn.Identity) else _steps(_leaves(path, name), shapes)
                for name, path in ((f"{prefix}.{paths_name}.{o}.{i}", p) for i, p in enumerate(row))
            )
            for o, row in enumerate(cast(Sequence[nn.ModuleList], paths))
        ),
        after_sum=after_sum,
        num_modules=num_modules,
        from_first_sum=isinstance(exchange, LiteHRModule),
    )
