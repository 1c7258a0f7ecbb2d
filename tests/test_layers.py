"""The import layers of docs/ARCHITECTURE.md, checked from the source with `ast` (nothing is imported).

Layers, bottom to top; a module may import its own package and the packages below it, never above:

    core   errors, stage records, atomic writes, the safe XML parser   imports nothing of ours
    alto   ALTO/PAGE format I/O (reader, page model, writer, validator)  core
    htr    stages and services (no Prefect, no command line)            core, alto
    flows  Prefect flows and tasks                                       core, alto, htr
    cli    the `htr` command, one module per sub-command                 everything

Every import counts, the ones inside functions too: a lazy import is still a dependency. Also
checked: no import cycle between modules, and no private name (`_x`) taken from another module of
ours, neither by `from m import _x` nor as `m._x` (bench/ and deploy/ scripts included: they are
the library's users too).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("core", "alto", "htr", "flows", "cli")  # bottom to top
RANK = {name: n for n, name in enumerate(LAYERS)}
SCRIPTS = ("bench", "deploy")  # scripts that use the library: checked for private names only

# Known violations, to shrink, never to grow: (importer, imported) for layers, sorted module lists
# for cycles, (importer, "module._name") for private names. Empty: nothing is tolerated today.
ALLOWED_UPWARD: set[tuple[str, str]] = set()
ALLOWED_CYCLES: list[list[str]] = []
ALLOWED_PRIVATE: set[tuple[str, str]] = set()


def _modules() -> dict[str, Path]:
    mods: dict[str, Path] = {}
    for pkg in LAYERS:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(f.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            mods[".".join(parts)] = f
    return mods


MODULES = _modules()


def _ours(name: str) -> str | None:
    """The module of ours that `name` (a module, or a name inside one) belongs to."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(name: str, path: Path) -> list[tuple[str, str, int]]:
    """(module imported, name taken or "", line) for every import of ours in `path`."""
    is_pkg = path.name == "__init__.py"
    out: list[tuple[str, str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, "", node.lineno) for a in node.names if _ours(a.name)]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([node.module] if node.module else []))
            for a in node.names:
                sub = f"{base}.{a.name}"
                if sub in MODULES:  # `from htr import reuse`: the module itself
                    out.append((sub, "", node.lineno))
                elif _ours(base):
                    out.append((base, a.name, node.lineno))
    return out


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in MODULES.items():
        graph[name]
        for mod, _, _ in _imports(name, path):
            target = _ours(mod)
            if target and target != name:
                graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        found.append(sorted(comp))
    return sorted(found)


def test_the_layers_are_the_packages_there_are():
    top = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    assert top == set(LAYERS), "a new top-level package needs a place in LAYERS and docs/ARCHITECTURE.md"


def test_no_upward_import():
    upward = set()
    for name, path in MODULES.items():
        for mod, _, line in _imports(name, path):
            src, dst = name.split(".")[0], mod.split(".")[0]
            if RANK[dst] > RANK[src]:
                upward.add((name, _ours(mod), f"{path.relative_to(ROOT)}:{line}"))
    new = sorted(u for u in upward if u[:2] not in ALLOWED_UPWARD)
    assert not new, "upward imports (a lower layer importing a higher one):\n" + "\n".join(map(str, new))
    stale = ALLOWED_UPWARD - {u[:2] for u in upward}
    assert not stale, f"fixed, now remove from ALLOWED_UPWARD: {sorted(stale)}"


def test_no_import_cycle():
    cycles = _cycles(_graph())
    new = [c for c in cycles if c not in ALLOWED_CYCLES]
    assert not new, "import cycles between modules:\n" + "\n".join(" <-> ".join(c) for c in new)
    stale = [c for c in ALLOWED_CYCLES if c not in cycles]
    assert not stale, f"fixed, now remove from ALLOWED_CYCLES: {stale}"


def _private_uses() -> set[tuple[str, str, str]]:
    files = dict(MODULES)
    for folder in SCRIPTS:
        for f in sorted((ROOT / folder).rglob("*.py")):
            files[f"{folder}/{f.relative_to(ROOT / folder)}"] = f
    uses = set()
    for name, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        aliases: dict[str, str] = {}  # local name -> module of ours
        for mod, taken, line in _imports(name, path) if name in MODULES else _script_imports(tree):
            if taken.startswith("_") and not taken.startswith("__") and _ours(mod) != name:
                uses.add((name, f"{mod}.{taken}", f"{path.relative_to(ROOT)}:{line}"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if _ours(a.name) == a.name:
                        aliases[a.asname or a.name] = a.name
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for a in node.names:
                    if f"{node.module}.{a.name}" in MODULES:
                        aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and aliases[node.value.id] != name
            ):
                uses.add((name, f"{aliases[node.value.id]}.{node.attr}", f"{path.relative_to(ROOT)}:{node.lineno}"))
    return uses


def _script_imports(tree: ast.Module) -> list[tuple[str, str, int]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level and _ours(node.module):
            out += [(node.module, a.name, node.lineno) for a in node.names]
    return out


def test_no_private_name_taken_from_another_module():
    uses = _private_uses()
    new = sorted(u for u in uses if u[:2] not in ALLOWED_PRIVATE)
    assert not new, "private names used across modules (make them public or move them):\n" + "\n".join(map(str, new))
    stale = ALLOWED_PRIVATE - {u[:2] for u in uses}
    assert not stale, f"fixed, now remove from ALLOWED_PRIVATE: {sorted(stale)}"


def test_the_checker_sees_what_it_must():
    """The checks above would catch the faults this project had (a checker that finds nothing proves nothing)."""
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(g) == [["a", "b", "c"]]
    graph = _graph()
    assert "core.errors" in graph["alto.reader"] and "alto.model" in graph["alto.reader"]
    assert any(m.startswith("htr.") for m in graph["flows.enrich"])
