"""Immutable values passed between the steps of a build."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlglot import exp


class Grain(StrEnum):
    DAY = "day"
    WEEK = "week"  # ISO week, starting Monday
    MONTH = "month"
    QUARTER = "quarter"


class NodeKind(StrEnum):
    SEED = "seed"
    MODEL = "model"
    METRIC = "metric"


class MetricKind(StrEnum):
    NORTH_STAR = "north_star"
    INPUT = "input"
    COUNTER = "counter"
    OUTCOME = "outcome"  # revenue, retention: built and scored, outside the tree; what the North Star must lead


class Edge(StrEnum):
    FORMULA = "formula"  # solid line: proven arithmetic
    HYPOTHESIS = "hypothesis"  # dotted line: to be validated on data
    GUARDRAIL = "guardrail"  # a counter-metric's link to what it guards


class Dimension(StrEnum):
    BREADTH = "breadth"
    DEPTH = "depth"
    FREQUENCY = "frequency"
    EFFICIENCY = "efficiency"


class Direction(StrEnum):
    HIGHER_IS_BETTER = "higher_is_better"
    LOWER_IS_BETTER = "lower_is_better"


@dataclass(frozen=True, slots=True)
class SparkTarget:
    """A `type: spark` output: a local SparkSession (master) or a Spark Connect server (remote)."""

    master: str | None  # local[N], spark://host:port, yarn...
    remote: str | None  # sc://host:port (Spark Connect)
    warehouse: str  # where the tables' Parquet files are written: a path or a URI the cluster can write
    conf: tuple[tuple[str, str], ...] = ()  # passed to the session builder


@dataclass(frozen=True, slots=True)
class Target:
    """One output of profiles.yml: where and how DuckDB (or Spark) runs."""

    name: str
    database: Path  # duckdb: the database file; spark: the catalog file naming the committed tables
    threads: int | None = None
    memory_limit: str | None = None
    temp_directory: Path | None = None
    spark: SparkTarget | None = None
    line: int | None = None  # of its path in profiles.yml, for errors about the database file

    @property
    def engine(self) -> str:
        return "spark" if self.spark else "duckdb"


@dataclass(frozen=True, slots=True)
class Freshness:
    """A source's freshness rule, as in dbt: (count, period) after which its newest row warns / errors."""

    warn_after: tuple[int, str] | None = None  # period: minute | hour | day
    error_after: tuple[int, str] | None = None


@dataclass(frozen=True, slots=True)
class Source:
    """A raw table declared in models/sources.yml, read from Parquet."""

    source_name: str
    table_name: str
    location: str  # absolute glob
    hive_partitioning: bool
    path: Path  # the yml that declares it
    line: int
    loaded_at_field: str | None = None  # its max is the data's as-of time (freshness, as in dbt)
    freshness: Freshness | None = None  # project/freshness.py checks it


@dataclass(frozen=True, slots=True)
class Seed:
    name: str
    path: Path


@dataclass(frozen=True, slots=True)
class TemplateFile:
    """A models/*.sql or metrics/*.sql file as written by the user."""

    name: str
    kind: NodeKind
    path: Path  # absolute
    relpath: Path  # relative to the project root, used in messages
    text: str


@dataclass(frozen=True, slots=True)
class Project:
    root: Path
    name: str
    profiles_path: Path
    target: Target
    grains: tuple[Grain, ...]
    vars: tuple[tuple[str, Any], ...]
    sources: tuple[Source, ...]
    seeds: tuple[Seed, ...]
    models: tuple[TemplateFile, ...]
    metrics: tuple[TemplateFile, ...]
    macros: tuple[TemplateFile, ...]
    target_dir: Path
    scorecard_path: Path
    history_path: Path | None = None  # None: <target_dir>/history (build/history.py)
    history_keep_days: int | None = None  # None: keep every build's scorecard
    bi_path: Path | None = None  # None: <target_dir>/bi.duckdb (build/bi.py)
    max_shrink: float = 0.5  # the share of its rows a built table may lose before the build stops

    @property
    def var_map(self) -> dict[str, Any]:
        return dict(self.vars)

    def relative(self, path: Path) -> Path:
        try:
            return path.resolve().relative_to(self.root)
        except ValueError:
            return path


@dataclass(frozen=True, slots=True)
class ModelConfig:
    schema: str = "staging"
    tags: tuple[str, ...] = ()
    description: str = ""
    materialized: str = "table"  # "view": computed where it is read; "incremental": see execute.py
    unique_key: tuple[str, ...] = ()  # incremental: rows of a new batch replace stored rows with the same key


@dataclass(frozen=True, slots=True)
class Threshold:
    """A counter-metric's guardrail: relative moves vs the previous period and/or bounds."""

    warn_change_pct: float | None = None
    breach_change_pct: float | None = None
    floor: float | None = None
    ceiling: float | None = None
    warn_change: float | None = None  # absolute move (in the metric's unit) in the bad direction that warns
    breach_change: float | None = None  # ... and that breaches


@dataclass(frozen=True, slots=True)
class MetricConfig:
    kind: MetricKind
    label: str
    parent: str | None = None
    edge: Edge | None = None
    owner: str | None = None
    dimension: Dimension | None = None
    direction: Direction = Direction.HIGHER_IS_BETTER
    guard: str | None = None
    threshold: Threshold | None = None
    formula: str | None = None
    target: float | None = None
    unit: str = ""
    description: str = ""
    tags: tuple[str, ...] = ()
    lint_ignore: tuple[tuple[str, str], ...] = ()  # (rule id, reason)
    line: int = 1  # line of config() in the template
    dimensions: tuple[str, ...] = ()  # names of project dimensions (dimensions.yml) this metric is cut by


@dataclass(frozen=True, slots=True)
class RenderedQuery:
    """One rendering of a template, with a map from rendered lines to template lines."""

    grain: Grain | None
    sql: str
    line_map: tuple[int, ...]  # line_map[i] = template line of rendered line i + 1
    to_date: bool = False  # the previous period cut to the elapsed span of the current partial one
    incremental: bool = False  # an incremental model's rendering with is_incremental() true
    coverage: bool = False  # a metric's day rendering: the days its period() expressions cover

    def template_line(self, rendered_line: int) -> int:
        if not self.line_map:
            return rendered_line
        index = min(max(rendered_line, 1), len(self.line_map)) - 1
        return self.line_map[index]


@dataclass(frozen=True, slots=True)
class RenderedNode:
    name: str
    kind: NodeKind
    path: Path
    relpath: Path
    queries: tuple[RenderedQuery, ...]  # one per grain for metrics, one for models
    refs: tuple[tuple[str, int], ...]  # (name, template line)
    sources: tuple[tuple[str, str, int], ...]  # (source, table, template line)
    config: ModelConfig | MetricConfig
    uses_period: bool = True  # a metric called period(): its rows are bucketed by the grain being rendered


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str


@dataclass(frozen=True, slots=True)
class DimensionDef:
    """A dimension declared in dimensions.yml: a column or expression metrics can be cut by."""

    name: str
    expression: str  # SQL over the columns of a metric's FROM
    label: str
    max_segments: int  # the cardinality guard: top N values by volume, the rest as '(other)'
    path: Path
    line: int


@dataclass(frozen=True, slots=True)
class SegmentQuery:
    """One metric cut by one dimension: its volume per value, and its rows per grain, period and value."""

    dimension: str
    volume_sql: str  # dimension value -> row count of the metric's FROM (ranks values for the guard)
    sql: str  # grain, period_start, value, numerator, denominator, is_to_date, segment
    # A night's cut: only periods on or after $since_<grain> (and the to-date spans); "" = always cut in full.
    since_sql: str = ""  # its to-date window stays $to_date_... placeholders too, bound with $since_ (segment_store)
    grains: tuple[str, ...] = ()  # the full renderings' grains (since_sql's placeholders)
    fingerprint: str = ""  # the full renderings' SQL: stored rows are reused while it holds


@dataclass(frozen=True, slots=True)
class SegmentCut:
    """A metric cut by all its dimensions, grains and to-date spans in one scan (GROUPING SETS).

    ``since_sql`` and ``volume_since_sql`` read only the rows of periods on or after ``$since_<grain>``
    (and the to-date spans): a nightly build recomputes those and keeps the stored earlier ones.
    """

    dimensions: tuple[str, ...]
    grains: tuple[str, ...]  # the grains cut (their to-date spans too)
    sql: str  # grain, period_start, value, numerator, denominator, is_to_date, dimension, segment
    since_sql: str  # with the to-date window's placeholders, as SegmentQuery.since_sql
    partials_sql: str  # the same rows as ``sql`` from the metric's one-scan partials (engines/metric_scan.py)
    value_sql: tuple[str, ...]  # each dimension's expression: its raw value is kept in those partials (_ns_v<j>)
    volume_grain: str  # volumes are counted per period of this grain (the coarsest), so they can be kept
    volume_sql: str  # period_start, dimension, segment (unguarded), volume: ranks values for the guard
    volume_since_sql: str  # the same for periods on or after $since (and rows with no period)
    fingerprint: str  # the definition without the as-of dates: stored cuts are reused while it holds


METRIC_PARTIALS = "_ns_metric_partials"  # the partials' table in SQL that reads them (engines/metric_scan.py)


@dataclass(frozen=True, slots=True)
class CompiledNode:
    name: str
    kind: NodeKind
    path: Path
    relpath: Path
    schema: str
    depends_on: tuple[str, ...]
    sql: str  # DuckDB SELECT exactly as executed (a metric's: or in one scan, engines/metric_scan.py)
    columns: tuple[Column, ...]
    config: ModelConfig | MetricConfig | None
    definition_hash: str
    line: int = 1  # template line of the query's projection, for errors found at run time
    is_ratio: bool = False  # a metric returning numerator/denominator: an empty period is NULL, not 0
    grain_sql: tuple[tuple[Grain, str], ...] = ()  # per-grain SELECTs of a metric
    incremental_sql: str = ""  # an incremental model's batch query (reads its own table)
    coverage_sql: str = ""  # a metric's day rendering: min/max of its period_start is the span its data covers
    uses_period: bool = True  # a metric that never calls period() (lint NS012)
    segment_sql: tuple[SegmentQuery, ...] = ()  # a metric cut by each of its dimensions
    segment_cut: SegmentCut | None = None  # the same cuts in one scan, when its renderings allow it
    ast: exp.Expression | None = field(default=None, compare=False, repr=False)

    @property
    def relation(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def tags(self) -> tuple[str, ...]:
        return getattr(self.config, "tags", ()) if self.config else ()

    @property
    def materialized(self) -> str:
        return getattr(self.config, "materialized", "table") if self.config else "table"


@dataclass(frozen=True, slots=True)
class Manifest:
    project: Project
    nodes: tuple[CompiledNode, ...]  # in topological order
    as_of: datetime | None = None  # the data's as-of time; its period is partial
    dimensions: tuple[DimensionDef, ...] = ()  # declared in dimensions.yml

    def node(self, name: str) -> CompiledNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class NodeResult:
    name: str
    relation: str
    status: str  # success | error | skipped
    seconds: float
    rows: int | None
    message: str = ""
    mode: str | None = None  # incremental models: "full" or "incremental" (how this run built it)
    # Metrics built by DuckDB: grain -> first period_start recomputed (ISO date; None: every period); a grain
    # absent from an incremental build was not recomputed (README "Incremental metrics").
    recomputed_from: dict[str, str | None] | None = None
    fallback: str = ""  # why a node that can be built incrementally was rebuilt in full


@dataclass(frozen=True, slots=True)
class RunResult:
    run_id: str
    built_at: str
    results: tuple[NodeResult, ...]
    scorecard_path: Path | None
    scorecard_rows: int
    seconds: float
    error: str | None = None
    tests: tuple[dict, ...] = ()  # data tests' results (build/datatests.py), as in dbt's run_results.json
