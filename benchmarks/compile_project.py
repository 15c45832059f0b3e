"""Generate the 1,000-metric projects of the compile experiment: one for northstar, one for dbt.

The northstar project is the demo project (its models, seeds and ten metrics: one North Star with
a formula over three formula children, hypothesis inputs and a counter-metric) plus generated
hypothesis inputs under the three formula children, 1,000 metrics in all. Each generated metric is
a variation of a demo metric: a count, a distinct count or a ratio over one staging model with a
filter whose constants vary. The dbt project has the same staging models and the same 1,000 metrics
as dbt models, each computing both grains as ``benchmarks/dbt_project`` does. Both are written
fresh every time, so the experiment always starts from the same text.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DBT_TEMPLATE = Path(__file__).resolve().parent / "dbt_project"
FORMULA_CHILDREN = ("ordering_customers", "orders_per_customer", "on_time_rate")
EDITED_METRIC = "gen_0010"  # the metric the warm compile changes


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str
    parent: str
    model: str
    period_column: str
    value: str  # SQL of the value
    ratio: tuple[str, str] | None = None  # (numerator, denominator) SQL, for ratio metrics
    where: str | None = None


def generated_specs(count: int) -> tuple[MetricSpec, ...]:
    """``count`` generated metrics, numbered from 10 (the demo has ten)."""
    return tuple(_spec(i) for i in range(10, 10 + count))


def _spec(i: int) -> MetricSpec:
    name = f"gen_{i:04d}"
    parent = FORMULA_CHILDREN[i % len(FORMULA_CHILDREN)]
    k = 1 + (i // 10) % 15  # a basket-size threshold
    h = (i // 10) % 24  # an hour of day
    m = -40 + (i // 10) % 80  # minutes late
    family = i % 10
    if family == 0:
        return MetricSpec(name, parent, "stg_orders", "placed_at", f"count(*) filter (where items >= {k})")
    if family == 1:
        num, den = f"count(*) filter (where items >= {k})", "count(*)"
        return MetricSpec(name, parent, "stg_orders", "placed_at", f"{num} / {den}", (num, den))
    if family == 2:
        return MetricSpec(name, parent, "stg_pushes", "occurred_at",
                          f"count(*) filter (where event_type = 'push_sent' and hour(occurred_at) = {h})")
    if family == 3:
        num = f"count(*) filter (where is_on_time and items >= {k})"
        den = f"count(*) filter (where items >= {k})"
        return MetricSpec(name, parent, "orders_enriched", "placed_at", f"{num} / nullif({den}, 0)", (num, den))
    if family == 4:
        return MetricSpec(name, parent, "stg_deliveries", "delivered_at",
                          f"count(*) filter (where minutes_late > {m})")
    if family == 5:
        return MetricSpec(name, parent, "stg_orders", "placed_at", f"count(distinct user_id) filter (where items >= {k})")
    if family == 6:
        return MetricSpec(name, parent, "stg_sessions", "occurred_at",
                          f"count(*) filter (where event_type = 'search' and isodow(occurred_at) = {1 + i % 7})",
                          where="event_type in ('search', 'add_to_cart')")
    if family == 7:
        return MetricSpec(name, parent, "stg_tickets", "opened_at", f"count(*) filter (where hour(opened_at) >= {h})")
    if family == 8:
        num = f"sum(minutes_late) filter (where items >= {k})"
        den = f"count(minutes_late) filter (where items >= {k})"
        return MetricSpec(name, parent, "orders_enriched", "placed_at", f"{num} / nullif({den}, 0)", (num, den))
    return MetricSpec(name, parent, "stg_signups", "signed_up_at", f"count(*) filter (where hour(signed_up_at) < {1 + h})")


def write_northstar_project(dest: Path, metrics: int = 1000) -> Path:
    """The demo project plus ``metrics - 10`` generated metrics under ``dest`` (replaced; the demo now has 12)."""
    _fresh(dest)
    for part in ("profiles.yml", "dimensions.yml", "northstar.yml", "models", "metrics", "seeds", "macros",
                 "data_tests"):  # the demo project as it is: its metrics are cut by dimensions.yml's
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, dest / part)
        elif source.is_file():
            shutil.copy(source, dest / part)
    for spec in generated_specs(metrics - 10):
        (dest / "metrics" / f"{spec.name}.sql").write_text(_northstar_metric(spec))
    return dest


def write_dbt_project(dest: Path, metrics: int = 1000) -> Path:
    """benchmarks/dbt_project's staging models and demo metrics plus the same generated metrics."""
    _fresh(dest)
    shutil.copytree(DBT_TEMPLATE, dest, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("target", "logs", "*.duckdb", "final"))
    for spec in generated_specs(metrics - 10):
        (dest / "models" / "metrics" / f"{spec.name}.sql").write_text(_dbt_metric(spec))
    return dest


def edit_metric(project: Path, flavour: str, run: int) -> Path:
    """Change one generated metric's SQL (a different threshold on every run); return its path."""
    folder = project / ("metrics" if flavour == "northstar" else "models/metrics")
    path = folder / f"{EDITED_METRIC}.sql"
    text = path.read_text()
    marker = "items >= "
    start = text.index(marker) + len(marker)
    end = start + len(text[start:].split(")")[0])
    path.write_text(text[:start] + str(100 + run) + text[end:])
    return path


def _northstar_metric(spec: MetricSpec) -> str:
    label = spec.name.replace("_", " ")
    columns = [f"    {{{{ period('{spec.period_column}') }}}} as period_start", f"    {spec.value} as value"]
    if spec.ratio:
        columns += [f"    {spec.ratio[0]} as numerator", f"    {spec.ratio[1]} as denominator"]
    where = f"\nwhere {spec.where}" if spec.where else ""
    return (f"{{{{ config(kind='input', parent='{spec.parent}', edge='hypothesis', owner='Bench', "
            f"label='{label}') }}}}\nselect\n" + ",\n".join(columns)
            + f"\nfrom {{{{ ref('{spec.model}') }}}}{where}\ngroup by 1\n")


def _dbt_metric(spec: MetricSpec) -> str:
    columns = ["    '{{ grain }}' as grain", f"    {{{{ period('{spec.period_column}', grain) }}}} as period_start",
               f"    {spec.value} as value"]
    if spec.ratio:
        columns += [f"    {spec.ratio[0]} as numerator", f"    {spec.ratio[1]} as denominator"]
    where = f"\nwhere {spec.where}" if spec.where else ""
    return ("{% for grain in var('grains') %}\n{% if not loop.first %}union all{% endif %}\nselect\n"
            + ",\n".join(columns) + f"\nfrom {{{{ ref('{spec.model}') }}}}{where}\ngroup by all\n{{% endfor %}}\n")


def _fresh(dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
