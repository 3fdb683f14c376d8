"""Print vaekit's module import graph and any import cycle in it.

    python scripts/import_graph.py          # one line per module: the vaekit modules it imports
    python scripts/import_graph.py --dot    # Graphviz

Every ``import`` statement counts, including those inside functions (an import moved into a
function to dodge a cycle is still a cycle). ``from . import x`` counts as importing the submodule
``x`` when one exists, otherwise the package. The package's ``__init__`` resolves its public names
lazily with importlib, which is not an import statement and does not count. Exit status 1 when
there is a cycle. Uses only the standard library, so it runs without the package's dependencies.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = "vaekit"
SRC = Path(__file__).resolve().parent.parent / "src"


def module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(name: str, known: set[str]) -> str | None:
    """The longest known module that ``name`` names or lies in."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    """Module -> the package modules it imports (anywhere in the file)."""
    files = {module_name(p, src): p for p in sorted((src / PACKAGE).rglob("*.py"))}
    known = set(files)
    graph: dict[str, set[str]] = {}
    for mod, path in files.items():
        is_pkg = path.name == "__init__.py"
        here = mod if is_pkg else mod.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here
                    for _ in range(node.level - 1):
                        base = base.rpartition(".")[0]
                    base = f"{base}.{node.module}" if node.module else base
                else:
                    base = node.module or ""
                # `from pkg import sub` imports the submodule; `from mod import name` the module.
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
            else:
                continue
            for name in names:
                target = _resolve(name, known)
                if target and target != mod:
                    targets.add(target)
        graph[mod] = targets
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main(argv: list[str]) -> int:
    graph = import_graph()
    short = lambda m: m[len(PACKAGE) + 1:] or PACKAGE  # noqa: E731 - a one-line display helper
    if "--dot" in argv:
        print("digraph vaekit {")
        for mod, targets in sorted(graph.items()):
            for t in sorted(targets):
                print(f'  "{short(mod)}" -> "{short(t)}";')
        print("}")
    else:
        for mod, targets in sorted(graph.items()):
            print(f"{short(mod):24} -> {', '.join(short(t) for t in sorted(targets)) or '(none)'}")
    cycles = find_cycles(graph)
    for c in cycles:
        print("cycle: " + " <-> ".join(short(m) for m in c), file=sys.stderr)
    if not cycles:
        print("no import cycle", file=sys.stderr)
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
