"""The package's layering (pyproject.toml [tool.importlinter]) holds, and breaking it fails the tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(cwd)})


def test_the_layers_contract_is_kept():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_an_upward_import_breaks_the_contract_naming_both_modules(tmp_path):
    shutil.copytree(ROOT / "northstar_pipeline", tmp_path / "northstar_pipeline",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    plan = tmp_path / "northstar_pipeline" / "build" / "plan.py"
    plan.write_text(plan.read_text() + "\nfrom northstar_pipeline.present import report  # noqa: upward on purpose\n")
    result = _lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout
    assert "BROKEN" in result.stdout
    assert "northstar_pipeline.build.plan -> northstar_pipeline.present.report" in result.stdout


def test_no_module_imports_itself_through_a_circle():
    graph = grimp.build_graph("northstar_pipeline", include_external_packages=False)
    edges = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for imported in sorted(edges[module]):
            if imported == "northstar_pipeline":  # the root only holds __version__
                continue
            if state.get(imported) == 1:
                cycle = path[path.index(imported):] + [imported]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if imported not in state:
                visit(imported)
        path.pop()
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module)
