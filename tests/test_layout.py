"""The code's layout (README "Code map"): imports point down the layers, and no module imports itself round."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("robotest_site", "sensors", "sessions")

# Lowest first. A module may import its own layer or any layer below, never one above.
LAYERS = [
    (
        "models and site plumbing",
        [
            "sessions.models", "sessions.apps", "sensors.models", "sensors.apps", "sensors.rules", "sensors.columnar",
            "sensors.simulators",
            "robotest_site.config", "robotest_site.settings", "robotest_site.apps", "robotest_site.api",
            "robotest_site.roles", "robotest_site.context", "robotest_site.observability", "robotest_site.cache",
            "robotest_site.postgresql",
        ],
    ),
    ("recording, reads, live fan-out, exports", ["sessions.recording", "sessions.reads", "sessions.live", "sessions.exports"]),
    ("services", ["sessions.services", "sensors.services"]),
    (
        "interfaces",
        [
            "sessions.api", "sessions.pages", "sessions.live.consumers", "sessions.live.routing", "sessions.engine", "sessions.admin",
            "sessions.management",
            "sensors.api", "sensors.admin", "sensors.management",
            # A data migration may run the code of its day (0005 sums existing readings into rollups).
            "sessions.migrations", "sensors.migrations",
            "robotest_site.views", "robotest_site.urls", "robotest_site.asgi", "robotest_site.wsgi",
            "robotest_site.management",
        ],
    ),
]


def _layer(module: str) -> int:
    """The layer of the longest prefix that names the module."""
    if module in PACKAGES:  # their __init__ is empty
        return 0
    best, rank = "", None
    for index, (_name, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
                best, rank = prefix, index
    if rank is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in {Path(__file__).name}")
    return rank


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `module` imports at run time (inside functions too; not under TYPE_CHECKING)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                for rest in child.orelse:
                    visit(rest)
                continue
            if isinstance(child, ast.Import):
                found.update(filter(None, (resolve(alias.name) for alias in child.names)))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in child.names:
                    target = resolve(f"{base}.{alias.name}") if f"{base}.{alias.name}" in known else resolve(base)
                    if target:
                        found.add(target)
            visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    found.discard(module)
    return found


GRAPH = {name: _imports(name, path, set(_modules())) for name, path in _modules().items()}


def test_every_module_is_in_a_layer():
    for module in GRAPH:
        _layer(module)


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_point_down_the_layers(module):
    upward = sorted(target for target in GRAPH[module] if _layer(target) > _layer(module))
    assert not upward, f"{module} ({LAYERS[_layer(module)][0]}) imports from a higher layer: {upward}"


def test_there_is_no_import_cycle():
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(GRAPH.get(module, ())):
            # A package's __init__ importing its own modules is not a cycle through them.
            if module.startswith(target + "."):
                continue
            if state.get(target) == 1:
                cycle = path[path.index(target):] + [target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                walk(target)
        path.pop()
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            walk(module)


def test_the_layer_check_sees_an_upward_and_a_lazy_import(tmp_path):
    # The checker itself: a function-level import from a higher layer is found, a TYPE_CHECKING one is not.
    source = tmp_path / "pipeline.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from sessions.api.readings import ReadingsView\n"
        "def f():\n    from sessions import services\n"
    )
    found = _imports("sessions.recording.pipeline", source, set(GRAPH))
    assert found == {"sessions.services"}
    assert _layer("sessions.services") > _layer("sessions.recording.pipeline")


def test_sessions_root_keeps_at_most_eight_modules():
    root_modules = sorted(p.name for p in (ROOT / "sessions").glob("*.py"))
    assert len(root_modules) <= 8, root_modules
