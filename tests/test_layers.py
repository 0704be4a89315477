"""The package's layers (DESIGN.md): every import points down, and no two modules import each other."""

import ast
from pathlib import Path

import hrnet

PACKAGE = Path(hrnet.__file__).parent

# Lower numbers are lower layers; a module may import modules of its own layer or below, never above.
LAYERS: dict[str, int] = {
    "errors": 0,
    "runtime": 0,
    "fileio": 1,
    "stream": 1,  # read ahead, write behind, the newest frame: threads only, no hrnet imports
    "inputs": 1,  # which paths are files to read, and the one rule for numbers in names
    "outputs": 1,  # the one "would this output replace something not ours" check, over fileio
    "weights": 1,  # the registry and cache of named weights files: below everything that loads weights
    "config": 1,
    "tf_port_pipeline": 1,  # the TF port's pure data-side functions, below the crop that uses them
    "keypoints": 2,
    "crop": 3,
    "data": 4,
    "codec": 4,
    "models": 4,
    "metrics": 4,
    "visualize": 4,
    "precision": 5,
    "backends": 5,  # the one place that opens a network: above the precision helpers, below the estimator
    "persons": 5,  # box source, box checks, results JSON, drawing: beside the detector they use
    "inference": 5,
    "detect": 5,  # person detectors, beside the estimator that uses them
    "track": 5,
    "engine": 6,
    "export": 6,
    "speed": 6,
    "draw": 6,
    "predict": 6,
    "video": 6,
    "serve": 6,  # a package (request, batcher, guards, app): each of its modules is in this layer
    "demo": 7,
    "cli": 8,
    "__main__": 9,
    "__init__": 0,
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts)


def _layer(module: str) -> int:
    return LAYERS[module.split(".")[0]]


def _imports(path: Path) -> set[str]:
    """Every ``hrnet.*`` module imported anywhere in the file (function-level imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hrnet"):
            found.add(node.module.removeprefix("hrnet").lstrip(".") or "__init__")
        elif isinstance(node, ast.Import):
            found.update(a.name.removeprefix("hrnet.") for a in node.names if a.name.startswith("hrnet."))
    return {m for m in found if m}


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}


def test_every_module_has_a_layer():
    assert {m.split(".")[0] for m in _graph()} <= set(LAYERS)


def test_no_import_points_up():
    upward = [
        f"{source} (layer {_layer(source)}) imports {target} (layer {_layer(target)})"
        for source, targets in _graph().items()
        for target in targets
        if _layer(target) > _layer(source)
    ]
    assert not upward, "\n".join(upward)


def test_no_import_cycles():
    graph = _graph()
    modules = {m for m in graph if not m.endswith("__init__")}
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, set()) & modules):
            if state.get(target) == 1:
                raise AssertionError("import cycle: " + " → ".join([*path[path.index(target) :], target]))
            if target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(modules):
        if module not in state:
            visit(module, [module])
