"""The project's import graph (every `import`, lazy ones inside functions included): module
and package counts, package-level arrows, and import cycles (strongly connected components).

    python scripts/import_graph.py            # from the repository root

Also prints the arrows between score_core's layer folders (`score_core.method`, …; the
modules directly in score_core/ — config, schema, progress, timing — are `score_core.base`,
score_core/__init__.py's re-exports `score_core.api`)
and the number of files per folder.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGES = ("score_core", "tasks", "flows", "score", "sandbox", "score_vllm")


def modules(root: Path) -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for p in sorted((root / pkg).rglob("*.py")):
            name = ".".join(p.relative_to(root).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = p
    return out


def _targets(mods: dict[str, Path], cur: str, node: ast.AST) -> set[str]:
    if isinstance(node, ast.ImportFrom):
        package = cur if mods[cur].name == "__init__.py" else cur.rpartition(".")[0]
        base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
        mod = ".".join(base + ([node.module] if node.module else [])) if node.level else node.module or ""
        names = [mod] + [f"{mod}.{a.name}" for a in node.names]
    else:
        names = [a.name for a in node.names]
    found = set()
    for name in names:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        if name:
            found.add(name)
    return found


def edges(root: Path) -> dict[str, set[str]]:
    """module → the project modules it imports."""
    mods = modules(root)
    out = {m: set() for m in mods}
    for m, p in mods.items():
        for node in ast.walk(ast.parse(p.read_text(), str(p))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                out[m] |= _targets(mods, m, node) - {m}
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def layer(module: str) -> str:
    """score_core.method.losses → score_core.method; score_core.config → score_core.base."""
    parts = module.split(".")
    if parts[0] != "score_core":
        return parts[0]
    if len(parts) == 1:
        return "score_core.api"  # the package's re-exports (score_core/__init__.py)
    return f"score_core.{parts[1]}" if parts[1] in FOLDERS else "score_core.base"


FOLDERS = ("method", "generation", "problems", "evaluation", "steps", "tools")


def main() -> int:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd()
    graph = edges(root)
    per_pkg: dict[str, int] = {}
    for m in graph:
        per_pkg[m.split(".")[0]] = per_pkg.get(m.split(".")[0], 0) + 1
    print(f"{len(graph)} modules, {sum(map(len, graph.values()))} imports; per package: {per_pkg}")
    arrows: dict[str, set[str]] = {}
    for m, targets in graph.items():
        arrows.setdefault(m.split(".")[0], set()).update(t.split(".")[0] for t in targets)
    for pkg, targets in sorted(arrows.items()):
        print(f"  {pkg} -> {sorted(targets - {pkg})}")
    print("score_core layers (files):")
    layer_arrows: dict[str, set[str]] = {}
    files: dict[str, int] = {}
    for m, targets in graph.items():
        if m.startswith("score_core"):
            files[layer(m)] = files.get(layer(m), 0) + 1
            layer_arrows.setdefault(layer(m), set()).update(layer(t) for t in targets if t.startswith("score_core"))
    for lay, targets in sorted(layer_arrows.items()):
        print(f"  {lay} ({files[lay]}) -> {sorted(targets - {lay})}")
    for comp in cycles(graph):
        print("cycle:", " ↔ ".join(comp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
