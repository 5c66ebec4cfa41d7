"""The package's layers (docs/design.md, "Layout"): no import cycles, and no layer imports one
above it. Checked on the source with ast, so a lazy import inside a function counts too; only
imports under `if TYPE_CHECKING:` (annotations) are left out."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "fleetgit"

# Lowest first. A module may import its own layer and the ones below it.
LAYERS = [
    ("ledger", "the format on disk"),
    ("git", "git plumbing"),
    ("guard", "the hooks' light path"),
    ("domain.model", "each concept's event types and pure fold; the catalogue of them all"),
    ("index", "the SQLite index"),
    ("domain", "each concept's commands"),
    ("fleet", "the Python API"),
    ("interfaces", "cli, demo and the other front ends"),
]
RANK = {name: i for i, (name, _) in enumerate(LAYERS)}

# The hook's slow path: when the index is behind, the hook catches up through the whole package.
# These imports happen inside functions, only then.
UPWARD = {
    ("guard.hook", "fleet"),
    ("guard.hook", "domain.reservations.commands"),
    ("guard.hookindex", "fleet"),
}


def module_names() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = module_names()


def _under_type_checking(parents: list[ast.AST]) -> bool:
    return any(isinstance(p, ast.If) and "TYPE_CHECKING" in ast.unparse(p.test) for p in parents)


def imports(name: str) -> set[str]:
    """The fleetgit modules `name` imports, as names relative to the package."""
    tree = ast.parse(MODULES[name].read_text())
    out: set[str] = set()
    stack: list[tuple[ast.AST, list[ast.AST]]] = [(tree, [])]
    while stack:
        node, parents = stack.pop()
        stack.extend((child, [*parents, node]) for child in ast.iter_child_nodes(node))
        if _under_type_checking(parents):
            continue
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fleetgit"):
            base = node.module.removeprefix("fleetgit").lstrip(".")
            for alias in node.names:
                sub = f"{base}.{alias.name}".lstrip(".")
                out.add(sub if sub in MODULES else base)
        elif isinstance(node, ast.Import):
            out |= {
                a.name.removeprefix("fleetgit.")
                for a in node.names
                if a.name.startswith("fleetgit.")
            }
    return out - {name}


GRAPH = {name: imports(name) for name in MODULES}


def layer(name: str) -> str:
    top = name.split(".")[0]
    if top in ("ledger", "git", "guard", "index", "fleet"):
        return top
    if top == "domain":
        last = name.split(".")[-1]
        return "domain.model" if last in ("fold", "events", "catalogue") else "domain"
    return "interfaces"


def test_every_module_has_a_layer_and_the_layers_are_folders() -> None:
    tops = {p.name for p in ROOT.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert {"ledger", "git", "guard", "domain", "index", "cli"} <= tops
    loose = {p.stem for p in ROOT.glob("*.py")}
    assert loose <= {"__init__", "__main__", "fleet", "demo"}, "a module outside the layers"


def test_no_layer_imports_one_above_it() -> None:
    wrong = [
        f"{a} ({layer(a)}) imports {b} ({layer(b)})"
        for a, targets in GRAPH.items()
        for b in targets
        if b in MODULES and RANK[layer(b)] > RANK[layer(a)] and (a, b) not in UPWARD
    ]
    assert wrong == []


def test_there_are_no_import_cycles() -> None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(GRAPH[node] & MODULES.keys()):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in sorted(MODULES):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_the_checks_see_a_cycle_and_a_layer_break() -> None:
    """The checks above are only as good as the graph: it has the edges it must have."""
    assert "fleet" in GRAPH["cli.common"]
    assert "ledger.clock" in GRAPH["guard.rules"]
    assert "fleet" in GRAPH["guard.hookindex"]  # a lazy import, inside a function
    assert not any(b == "fleet" for b in GRAPH["domain.pilots.commands"])  # TYPE_CHECKING only
