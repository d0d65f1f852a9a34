"""The package's import graph: no cycle, and no private name imported across modules.

Edges are every ``import``/``from ... import`` of a ``kit`` module found anywhere in a module's
source, at module level or inside functions (a lazy import hides a dependency, it does not remove
it). ``from kit.pkg import name`` points at ``kit.pkg.name`` when that is a module, else at
``kit.pkg``.
"""

from __future__ import annotations

import ast
from pathlib import Path

KIT = Path(__file__).resolve().parent.parent / "kit"


def _modules() -> dict[str, Path]:
    out = {}
    for f in KIT.rglob("*.py"):
        parts = f.relative_to(KIT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = f
    return out


def _imports(mods: dict[str, Path]):
    """(module, target module, imported names) for every kit import."""
    for name, f in mods.items():
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("kit"):
                        yield name, a.name, []
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                    and node.module.startswith("kit"):
                for a in node.names:
                    sub = f"{node.module}.{a.name}"
                    yield (name, sub, []) if sub in mods else (name, node.module, [a.name])


def test_no_import_cycle():
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for src, dst, _ in _imports(mods):
        if dst in mods and dst != src:
            graph[src].add(dst)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                cycle = stack[stack.index(d):] + [d]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_no_private_names_across_modules():
    mods = _modules()
    bad = [f"{src} imports {n} from {dst}" for src, dst, names in _imports(mods)
           for n in names if n.startswith("_") and dst != src]
    assert not bad, bad


def test_attributor_package_exports_every_attributor():
    import kit.attributors as a

    assert {f.__name__ for f in a.ATTRIBUTORS.values()} <= set(a.__all__)
    assert all(hasattr(a, n) for n in a.__all__)
