"""Check rewardlab's import graph: no import circles, and no arrow from a lower layer back up.

Every ``import`` in ``rewardlab/`` counts, at module level or inside a function (a lazy import is still
a dependency). ``from package import name`` points at the submodule ``name`` when there is one, else at
the package. Layers, lowest first: ``models/`` must import nothing from ``audit/``, ``eval/``,
``serve/``, ``bon/``, ``cli/`` or ``train/``.

    python scripts/check_imports.py        # prints what is wrong; exit status 1 when anything is
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "rewardlab"
UPPER = {"models": ("audit", "eval", "serve", "bon", "cli", "train")}
"""Package -> the packages it must not import."""


def modules(root: Path = ROOT) -> dict[str, Path]:
    out = {}
    for f in sorted(root.rglob("*.py")):
        parts = list(f.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the rewardlab modules it imports."""
    mods = modules(root)

    def owner(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                subs = [f"{base}.{a.name}" for a in node.names]
                targets = [t for t in subs if t in mods]
                if len(targets) < len(subs):
                    targets.append(base)
            else:
                continue
            for t in targets:
                target = owner(t) if t.split(".")[0] == "rewardlab" else None
                if target and target != mod:
                    graph[mod].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    component.append(m)
                    if m == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def upward_arrows(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Imports from a package into one it must not import (:data:`UPPER`)."""
    bad = []
    for mod, targets in graph.items():
        parts = mod.split(".")
        if len(parts) < 2 or parts[1] not in UPPER:
            continue
        for t in sorted(targets):
            tp = t.split(".")
            if len(tp) > 1 and tp[1] in UPPER[parts[1]]:
                bad.append((mod, t))
    return bad


def main() -> int:
    graph = import_graph()
    problems = [f"import circle: {' -> '.join(c)}" for c in cycles(graph)]
    problems += [f"arrow back up: {a} imports {b}" for a, b in upward_arrows(graph)]
    for p in problems:
        print(p)
    print(f"{len(graph)} modules, {sum(map(len, graph.values()))} imports: "
          + ("no circles, no arrows back up" if not problems else f"{len(problems)} problems"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
