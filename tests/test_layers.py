"""The package's layers (DESIGN.md): every import points down, and no two modules import each other."""

import ast
from pathlib import Path

import hrnet

PACKAGE = Path(hrnet.__file__).parent

DESIGN = Path(__file__).resolve().parents[1] / "DESIGN.md"


def _read_layers() -> dict[str, int]:
    """DESIGN.md's layer table: each package or module (``tf_port.model``) → its layer; lower numbers are lower."""
    layers = {}
    for line in DESIGN.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].isdigit():
            for name in cells[1].split(","):
                layers[name.strip().strip("`")] = int(cells[0])
    return layers


LAYERS = _read_layers()


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts)


def _layer(module: str) -> int:
    """The layer of the longest dotted prefix of ``module`` that DESIGN.md places."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in LAYERS:
            return LAYERS[".".join(parts[:n])]
    raise KeyError(module)


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
    unplaced = []
    for module in _graph():
        try:
            _layer(module)
        except KeyError:
            unplaced.append(module)
    assert not unplaced, f"not in DESIGN.md's layer table: {unplaced}"


def test_design_names_every_package():
    packages = {p.parent.relative_to(PACKAGE).as_posix().replace("/", ".") for p in PACKAGE.rglob("__init__.py")}
    top = {p.split(".")[0] for p in packages if p != "."}
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    assert top | modules <= {name.split(".")[0] for name in LAYERS}
    text = DESIGN.read_text(encoding="utf-8")
    assert all(f"`{name}`" in text for name in top)


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


FRONT_ENDS = ("apps.predict", "apps.serve")  # thin: each over the estimator (predict also over video)


def _front_end(module: str) -> str | None:
    return next((f for f in FRONT_ENDS if module == f or module.startswith(f + ".")), None)


def test_front_ends_stand_on_the_estimator_not_on_each_other():
    graph = _graph()
    for module, targets in graph.items():
        front_end = _front_end(module)
        if front_end is None:
            continue
        others = {_front_end(t) for t in targets} - {None, front_end}
        assert not others, f"front end {module} imports {others}"
        assert front_end == "apps.predict" or "apps.video" not in targets, f"{module} imports apps.video"
    for module in ("apps.predict", "apps.serve.app"):
        assert {"pose.estimator", "pose.persons"} <= graph[module], module
