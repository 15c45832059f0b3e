"""What every build pays besides its data: the imports it needs and the work it need not repeat.

The p-values of the hypothesis tests come from tree/student_t.py, held here to scipy's t distribution;
a real build in a fresh interpreter must not import scipy (0.15-0.3 s of every night).
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from scipy import special, stats

from northstar_pipeline.tree.student_t import two_sided_p


@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 7, 10, 17, 30, 52, 99, 156, 365, 1000, 4000])
def test_the_t_tail_equals_scipy_to_1e_12(df: int) -> None:
    for r in [i / 200 for i in range(200)] + [0.999, 0.9999, 0.99999, 0.999999]:
        t = r * math.sqrt(df / (1 - r * r))
        want = float(2 * special.stdtr(df, -t))
        got = two_sided_p(t, df)
        if want < 1e-300:  # below the normal doubles scipy and we may differ in flushing to zero
            assert got < 1e-300, (df, r, got)
        else:
            assert got == pytest.approx(want, rel=1e-13 if df < 1000 else 1e-12, abs=0), (df, r)
    assert two_sided_p(0.0, df) == 1.0 and two_sided_p(-2.0, df) == two_sided_p(2.0, df)
    assert two_sided_p(math.inf, df) == 0.0


def test_the_t_tail_is_a_correlations_p_value_as_scipy_computes_it() -> None:
    x = [0.1, -0.3, 0.25, 0.4, -0.05, 0.12, -0.2, 0.33, 0.07]
    y = [0.05, -0.1, 0.3, 0.2, 0.0, 0.2, -0.3, 0.1, 0.02]
    pearson = stats.pearsonr(x, y)
    n = len(x)
    t = abs(pearson.statistic) * math.sqrt((n - 2) / (1 - pearson.statistic ** 2))
    assert two_sided_p(t, n - 2) == pytest.approx(pearson.pvalue, rel=1e-12)


def _build_in_a_fresh_interpreter(project: Path) -> tuple[subprocess.CompletedProcess, str]:
    """`northstar build` in a new Python; returns the run and which heavy modules it had imported at exit."""
    code = ("import atexit, sys\n"
            "atexit.register(lambda: print('IMPORTED', ','.join(sorted(m for m in ('scipy', 'pandas', 'numpy.f2py') "
            "if m in sys.modules)), file=sys.stderr))\n"
            "sys.argv = ['northstar', 'build', '--project-dir', sys.argv[1], '--log-format', 'json']\n"
            "from northstar_pipeline.cli import main\nmain()\n")
    done = subprocess.run([sys.executable, "-c", code, str(project)], capture_output=True, text=True, timeout=300)
    imported = next(line for line in done.stderr.splitlines() if line.startswith("IMPORTED")).partition(" ")[2]
    return done, imported


def test_a_build_does_not_import_scipy_and_its_p_values_are_scipys(demo_project: Path) -> None:
    done, imported = _build_in_a_fresh_interpreter(demo_project)
    assert done.returncode == 0, done.stderr[-2000:]
    assert imported == "", f"a build imported {imported}"
    rows = duckdb.connect().execute(
        "SELECT r, n, p_value, spearman_r, spearman_p_value FROM read_parquet($p) WHERE validation = 'hypothesis'",
        {"p": str(demo_project / "target" / "tree_validation.parquet")}).fetchall()
    checked = 0
    for r, n, p, rho, rho_p in rows:
        for value, got in ((r, p), (rho, rho_p)):
            if value is None or n < 4 or abs(value) >= 1:
                continue
            t = abs(value) * math.sqrt((n - 2) / (1 - value * value))
            assert got == pytest.approx(float(2 * special.stdtr(n - 2, -t)), rel=1e-12, abs=1e-300)
            checked += 1
    assert checked >= 10  # the demo's tree has hypothesis edges at every grain and lag
