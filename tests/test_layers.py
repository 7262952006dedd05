"""Design rule 1: `score_core` (the algorithm library) imports no prefect and no docker —
neither at import time nor lazily inside a function."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FORBIDDEN = ("prefect", "docker")

IMPORT_ALL_BLOCKED = f"""
import importlib, pkgutil, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {FORBIDDEN!r}:
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
import score_core
names = [m.name for m in pkgutil.walk_packages(score_core.__path__, "score_core.")]
for name in names:
    importlib.import_module(name)
print(len(names))
"""


def test_every_score_core_module_imports_with_prefect_and_docker_unimportable():
    out = subprocess.run([sys.executable, "-c", IMPORT_ALL_BLOCKED], cwd=REPO, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert int(out.stdout.split()[-1]) >= 20  # the walk found the package's modules


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def test_no_score_core_source_imports_them_anywhere():
    offenders = [f"{p.relative_to(REPO)}:{line}: {name}" for p in sorted((REPO / "score_core").rglob("*.py"))
                 for line, name in _imports(p) if name.split(".")[0] in FORBIDDEN]
    assert not offenders, offenders


def test_the_scan_sees_a_lazy_import(tmp_path):
    # the static check must catch an import hidden inside a function
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from prefect import flow\n    import docker.errors\n")
    assert [n for _, n in _imports(src)] == ["prefect", "docker.errors"]


def _graph_tool():
    import importlib.util

    spec = importlib.util.spec_from_file_location("import_graph", REPO / "scripts" / "import_graph.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_cycle_finder_on_a_hand_made_graph():
    g = _graph_tool()
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e2"}, "e2": {"e"}, "f": {"a"}}
    assert sorted(g.cycles(graph)) == [["a", "b", "c"], ["e", "e2"]]
    assert g.cycles({"x": {"y"}, "y": set()}) == []


def test_score_core_has_no_import_cycle_and_imports_nothing_above_it():
    g = _graph_tool()
    graph = g.edges(REPO)
    assert "score_core.problems.reward_value" in graph["score_core.problems.math_grading"]  # the graph sees imports
    inside = {m: {t for t in ts if t.startswith("score_core")} for m, ts in graph.items() if m.startswith("score_core")}
    assert g.cycles(inside) == []
    upward = sorted(f"{m} -> {t}" for m, ts in graph.items() if m.startswith("score_core")
                    for t in ts if not t.startswith("score_core"))
    assert upward == []


def test_the_whole_project_has_no_import_cycle():
    g = _graph_tool()
    assert g.cycles(g.edges(REPO)) == []


def test_the_sandbox_imports_nothing_from_the_project():
    g = _graph_tool()
    graph = g.edges(REPO)
    outward = sorted(f"{m} -> {t}" for m, ts in graph.items() if m.startswith("sandbox")
                     for t in ts if not t.startswith("sandbox"))
    assert outward == []


# score_core's folders, bottom to top (docs/ARCHITECTURE.md): a layer imports only layers
# before it. `api` is score_core/__init__.py's re-exports.
LAYERS = ("score_core.base", "score_core.problems", "score_core.evaluation", "score_core.generation",
          "score_core.method", "score_core.steps", "score_core.tools", "score_core.api")


def _upward_arrows(graph, layer_of):
    rank = {lay: i for i, lay in enumerate(LAYERS)}
    return sorted(f"{m} -> {t}" for m, ts in graph.items() if m.startswith("score_core")
                  for t in ts if t.startswith("score_core") and rank[layer_of(t)] > rank[layer_of(m)])


def test_score_core_layers_import_only_layers_below_them():
    g = _graph_tool()
    graph = g.edges(REPO)
    assert {g.layer(m) for m in graph if m.startswith("score_core")} == set(LAYERS)  # every folder is placed
    assert _upward_arrows(graph, g.layer) == []


def test_the_layer_check_catches_an_upward_import():
    g = _graph_tool()
    graph = {"score_core.method.trainer": {"score_core.tools.ablation"}, "score_core.tools.ablation": set(),
             "score_core.config": {"score_core.problems.rewards"}, "score_core.problems.rewards": set()}
    assert _upward_arrows(graph, g.layer) == ["score_core.config -> score_core.problems.rewards",
                                              "score_core.method.trainer -> score_core.tools.ablation"]


def _score_metrics(tmp_path, pythonpath):
    env = {**os.environ, "PYTHONPATH": pythonpath}
    return subprocess.run([sys.executable, "-c", "import sys; from score.cli import main; sys.exit(main(sys.argv[1:]))",
                           "metrics", str(tmp_path / "missing.parquet")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


def test_a_shadowing_tasks_package_stops_every_command_with_one_line(tmp_path):
    """Our generic top-level names (docs/ARCHITECTURE.md, "Package names"): another `tasks`
    first on sys.path must be named, not silently imported."""
    fake = tmp_path / "other_site"
    (fake / "tasks").mkdir(parents=True)
    (fake / "tasks" / "__init__.py").write_text("")
    shadowed = _score_metrics(tmp_path, f"{fake}{os.pathsep}{REPO}")
    assert shadowed.returncode == 2
    assert "the `tasks` package Python finds is" in shadowed.stderr and str(fake / "tasks") in shadowed.stderr
    ours = _score_metrics(tmp_path, str(REPO))  # the control: the same command, nothing shadowed
    assert "package Python finds" not in ours.stderr and "missing.parquet" in ours.stderr, ours.stderr[-2000:]
