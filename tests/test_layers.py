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
    "frames": 4,  # video files, cameras, streams in; H.264 out (OpenCV, PyAV): beside the data readers
    "inputs": 1,  # which paths are files to read, and the one rule for numbers in names
    "outputs": 1,  # the one "would this output replace something not ours" check, over fileio
    "download": 1,  # downloads whole and checked, and the checksums kept beside them
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
    "detect": 5,  # person detectors
    "track": 5,
    "backends": 6,  # the one place that opens a network: above the precision helpers, below the estimator
    "persons": 6,  # box source, box checks, results JSON, drawing: over the detector they use
    "inference": 7,  # the estimator: a backend and the person pipeline
    "engine": 8,
    "export": 8,
    "speed": 8,
    "draw": 8,
    "video": 8,  # frames → tracked persons → JSON lines and H.264: the engine of predict's videos and cameras
    "predict": 9,  # a front end: files, folders, videos, cameras
    "serve": 9,  # a front end: HTTP (a package: request, batcher, guards, app)
    "demo": 10,
    "cli": 11,
    "__main__": 12,
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


FRONT_ENDS = ("predict", "serve")  # thin: each over the estimator (and predict over video), never over another


def test_front_ends_stand_on_the_estimator_not_on_each_other():
    graph = _graph()
    for module, targets in graph.items():
        top = module.split(".")[0]
        if top in FRONT_ENDS:
            tops = {t.split(".")[0] for t in targets}
            assert not tops & (set(FRONT_ENDS) - {top}), f"front end {module} imports another front end"
            assert top == "predict" or "video" not in tops, f"{module} imports video"
    for front_end in ("predict", "serve.app"):
        assert "inference" in graph[front_end] and "persons" in graph[front_end], front_end
