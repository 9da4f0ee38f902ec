"""The package's layout: one subpackage per stage, imports only from a stage to an earlier one
(or to the glue), no import cycle, and no torch in the data stage."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

PACKAGE = REPO / "src" / "htweather"
# tail_metrics: the key tail metrics that training (steps: auto) and evaluation both read
GLUE = {"__init__", "artifacts", "cli", "config", "errors", "runtime", "tail_metrics", "workflow"}
# A module may import from its own stage, an earlier one, or the glue (rank 0).
STAGES = {"data": 1, "models": 2, "training": 3, "generation": 4, "evaluation": 5, "report": 6}
ENTRY_POINTS = {"htweather.cli"}  # the command line calls the stages


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """The package's modules that `path` imports (at any depth: lazy imports count too)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = ".".join(base[:len(base) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            candidates = [target] + [f"{target}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        found |= {c for c in candidates if c in modules}
    return found - {name}


def graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: imported_modules(path, set(paths)) for name, path in paths.items()}


def rank(module: str) -> int:
    parts = module.split(".")
    return STAGES.get(parts[1], 0) if len(parts) > 1 else 0


def test_top_level_holds_only_the_glue():
    top = {p.stem for p in PACKAGE.glob("*.py")}
    assert top == GLUE
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()} == set(STAGES)


def test_imports_run_from_later_stages_to_earlier_ones():
    backwards = [(a, b) for a, targets in graph().items() if a not in ENTRY_POINTS
                 for b in targets if rank(b) > rank(a)]
    assert not backwards, f"imports against the stage order: {backwards}"


def test_no_import_cycle():
    edges = graph()
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join(path[path.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])


def test_the_data_stage_and_the_evaluation_imports_no_torch():
    code = ("import sys, htweather.data.ingest, htweather.data.store, htweather.data.synthetic, "
            "htweather.evaluation.tails, htweather.evaluation.extremes, htweather.evaluation.forecasts, "
            "htweather.generation.truth, htweather.report.page; print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_the_graph_sees_imports():  # the checks above would pass on a graph with no arrows
    edges = graph()
    assert "htweather.data.store" in edges["htweather.training.train"]
    assert "htweather.errors" in edges["htweather.data.sources"]
    assert "htweather.models.assemble" in edges["htweather.generation.sample"]
