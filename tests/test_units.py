"""Units: one way to read each kind of number, in every view; an unknown unit is a compile error at its line."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_errors import edit, run_cli

from northstar_pipeline.present.formatting import format_change, format_value


@pytest.mark.parametrize(("value", "unit", "expected"), [
    (1234.0, "count", "1,234"),
    (5622, "count", "5,622"),
    (0.91694, "percent", "91.7%"),
    (0.91694, "ratio", "91.7%"),  # the old name of percent
    (1234.5, "currency", "1,234.50"),
    (1234.5, "currency:EUR", "\u20ac1,234.50"),
    (-12.5, "currency:USD", "-$12.50"),
    (123456.0, "currency:CHF", "CHF 123,456"),
    (4.2512, "minutes", "4.251 min"),
    (30.0, "seconds", "30 s"),
    (0.03295, "number", "0.03295"),
    (0.03295, "", "0.03295"),
    (None, "count", "-"),
])
def test_format_value(value, unit: str, expected: str) -> None:
    assert format_value(value, unit) == expected


@pytest.mark.parametrize(("value", "unit", "expected"), [
    (2149.0, "count", "+2,149"),
    (0.0094, "percent", "+0.9 pp"),
    (-0.22, "minutes", "-0.22 min"),
    (-1191.0, "", "-1,191"),
])
def test_format_change(value, unit: str, expected: str) -> None:
    assert format_change(value, unit) == expected


def test_unknown_unit_is_a_compile_error_at_its_line(demo_project: Path) -> None:
    path = demo_project / "metrics" / "on_time_orders.sql"
    edit(path, "unit='count',", "unit='cnt',")
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "config(" in text)
    before = (demo_project / "target" / "scorecard.parquet").read_bytes()
    result = run_cli(demo_project, "build")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"metrics/on_time_orders.sql:{line}" in result.stderr and "unit='cnt' is not a known unit" in result.stderr
    assert "did you mean 'count'?" in result.stderr
    assert (demo_project / "target" / "scorecard.parquet").read_bytes() == before
