"""hub/ keeps its architecture: no area imports another area, no import cycles, small files.

Areas (quota, jobs, uploads, monitor, fleet, teams) meet only through the interfaces of
astrago.hub.service.interfaces, handed over at setup (service/contract.py). The shared
parts (service, db, auth, realm, cli, client and the top-level modules) are not areas.
"""
import ast
from pathlib import Path

import pytest

HUB = Path(__file__).resolve().parents[2] / "hub"
SHARED = {"service", "db", "auth", "cli", "client", "templates", "static", "realm", "web"}
AREAS = sorted(p.name for p in HUB.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")) and
               p.name not in SHARED and any(p.glob("*.py")))


def _module_of(path: Path) -> str:
    rel = path.relative_to(HUB).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["astrago", "hub", *parts])


def _is_module(name: str) -> bool:
    rel = Path(*name.split(".")[2:])
    return (HUB / rel).with_suffix(".py").is_file() or (HUB / rel / "__init__.py").is_file()


def _imports(path: Path) -> set[str]:
    """Absolute names of the astrago.hub modules `path` imports (at any depth in the file)."""
    module = _module_of(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("astrago.hub")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name.startswith("astrago.hub"):
                # `from pkg import mod` imports the module mod; `from pkg import name` what pkg defines
                submodules = {f"{name}.{a.name}" for a in node.names if _is_module(f"{name}.{a.name}")}
                found |= submodules
                if len(submodules) < len(node.names):
                    found.add(name)
    return found


def _area_of(name: str) -> str | None:
    parts = name.split(".")
    return parts[2] if len(parts) > 2 and parts[2] in AREAS else None


def test_the_areas_are_found():
    assert {"quota", "jobs", "uploads", "monitor", "fleet", "teams"} <= set(AREAS)


@pytest.mark.parametrize("area", AREAS)
def test_no_area_imports_another(area):
    crossings = []
    for path in sorted((HUB / area).rglob("*.py")):
        for name in sorted(_imports(path)):
            other = _area_of(name)
            if other and other != area:
                crossings.append(f"{path.relative_to(HUB.parent)} imports {name}")
    assert crossings == []


def test_shared_parts_import_no_area_except_the_composition_root():
    """service/areas.py names the areas (by string); nothing else shared imports one."""
    crossings = []
    for part in SHARED:
        for path in sorted((HUB / part).rglob("*.py")) if (HUB / part).is_dir() else ():
            for name in sorted(_imports(path)):
                if _area_of(name):
                    crossings.append(f"{path.relative_to(HUB.parent)} imports {name}")
    assert crossings == []


def _graph() -> dict[str, set[str]]:
    modules = {_module_of(p): p for p in HUB.rglob("*.py") if "__pycache__" not in p.parts}
    graph = {}
    for name, path in modules.items():
        graph[name] = {m for m in _imports(path) if m in modules and m != name}
    return graph


def test_no_import_cycles_in_hub():
    graph = _graph()
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_no_file_in_hub_over_500_lines():
    long = {str(p.relative_to(HUB.parent)): n for p in HUB.rglob("*.py") if "__pycache__" not in p.parts
            and (n := len(p.read_text().splitlines())) > 500}
    assert long == {}
