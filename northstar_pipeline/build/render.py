"""Render templates to SQL text with Jinja2, in the sandbox.

A metric is rendered once per grain of the project, with ``period(col)`` bound
to that grain, so ratios are recomputed from their parts at every grain.
Jinja ends at text: ``ref`` and ``source`` return quoted names and record the
dependency; sqlglot owns everything after.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import fields, replace
from datetime import datetime
from difflib import get_close_matches
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import exp

from northstar_pipeline.build.cache import CompileCache, cache_key, env_value_hash, environment_matches
from northstar_pipeline.errors import RenderError
from northstar_pipeline.project.to_date import partial_grains, window_placeholders
from northstar_pipeline.project.sandbox import (
    TemplateCallError,
    compile_template,
    env_var_function,
    make_environment,
    render_template,
)
from northstar_pipeline.types import (
    Dimension,
    Direction,
    Edge,
    Grain,
    MetricConfig,
    MetricKind,
    ModelConfig,
    NodeKind,
    Project,
    RenderedNode,
    RenderedQuery,
    TemplateFile,
    Threshold,
)

# ref() renders a placeholder schema; compile swaps in the schema of the node's layer.
REF_SCHEMA = "__ref__"
_MISSING = object()

METRIC_CONFIG_KEYS = {
    "kind", "label", "parent", "edge", "owner", "dimension", "direction", "guard", "formula", "target",
    "unit", "description", "tags", "lint_ignore", "warn_change_pct", "breach_change_pct", "floor", "ceiling",
    "warn_change", "breach_change",
    "dimensions",
}
MODEL_CONFIG_KEYS = {f.name for f in fields(ModelConfig)}
_RENDER_FORMAT = 3  # bumped when a rendering gains a query or field (2: the coverage rendering, uses_period;
#                      3: the to-date window as placeholders)


def render_project(project: Project, environ: Mapping[str, str] | None = None,
                   as_of: datetime | None = None, cache: CompileCache | None = None) -> tuple[RenderedNode, ...]:
    """Render every model once and every metric once per grain (plus a to-date rendering when a period is partial)."""
    environ = os.environ if environ is None else environ
    env = make_environment()
    known = {t.name for t in (*project.models, *project.metrics)} | {s.name for s in project.seeds}
    macros: list | None = None  # compiled on the first cache miss
    shared = {
        "var": _var_function(project.var_map),
        "target": {"name": project.target.name},
        "project_name": project.name,
    }
    sources = {(s.source_name, s.table_name) for s in project.sources}
    # Not the as-of itself: a rendering depends only on which grains are partial (the to-date window's
    # dates are placeholders, bound by the build: project/to_date.py), so a new night reuses every rendering.
    partial = [g.value for g in partial_grains(project.grains, as_of)]
    context_key = (project.vars, project.target.name, project.name, [g.value for g in project.grains],
                   [m.text for m in project.macros], sorted(sources))
    nodes = []
    for template in (*project.models, *project.metrics):
        key = cache_key("render", _RENDER_FORMAT, template.relpath, template.kind, template.text, context_key,
                        partial if template.kind is NodeKind.METRIC else None)  # only metrics render to date
        hit = cache.get(key) if cache else None
        if hit is not None and environment_matches(hit[1], environ) and all(r in known for r, _ in hit[0].refs):
            nodes.append(replace(hit[0], path=template.path))
            continue
        if cache is not None:
            cache.note_miss("render", template.name)
        if macros is None:
            macros = [compile_template(env, m.text, m.relpath, RenderError) for m in project.macros]
        compiled = compile_template(env, template.text, template.relpath, RenderError)
        env_read: dict[str, str | None] = {}
        shared["env_var"] = _recording_env_var(environ, env_read)
        node = _render_node(template, compiled, project, shared, known, sources, macros, as_of)
        if cache is not None:
            cache.put(key, (node, tuple(sorted(env_read.items()))))
        nodes.append(node)
    return tuple(nodes)


def _recording_env_var(environ: Mapping[str, str], read: dict[str, str | None]) -> Callable[..., str]:
    """env_var() that remembers what it read, so a cached rendering is reused only if those values hold."""
    env_var = env_var_function(environ)

    def recording(name: str, default: Any = _MISSING) -> str:
        read[str(name)] = env_value_hash(environ.get(str(name)))  # the cache keeps hashes, not values
        return env_var(name) if default is _MISSING else env_var(name, default)

    return recording


def _render_node(template: TemplateFile, compiled: Any, project: Project, shared: dict, known: set[str],
                 sources: set[tuple[str, str]], macros: list, as_of: datetime | None) -> RenderedNode:
    variants: list[tuple[Grain | None, bool, bool]] = [(None, False, False)]  # (grain, to_date, incremental)
    if template.kind is NodeKind.METRIC:
        variants = [(g, False, False) for g in project.grains]
        variants += [(g, True, False) for g in partial_grains(project.grains, as_of)]
    if template.kind is NodeKind.METRIC:
        variants.append((Grain.DAY, False, False))  # last: the coverage rendering, bucketed by day
    refs: dict[str, int] = {}
    used_sources: dict[tuple[str, str], int] = {}
    configs: list[tuple[dict[str, Any], int]] = []
    queries = []
    period_calls: list[str] = []
    for index, (grain, to_date, incremental) in enumerate(variants):
        coverage = template.kind is NodeKind.METRIC and index == len(variants) - 1
        configs.clear()
        context = dict(shared)
        context.update(
            ref=_ref_function(template, compiled, known, refs),
            source=_source_function(template, compiled, sources, used_sources),
            config=_config_function(template, compiled, configs),
            # The node's own table: only an incremental model's is_incremental() branch may read it.
            this=exp.table_(template.name, db=REF_SCHEMA, quoted=True).sql("duckdb"),
            is_incremental=lambda incremental=incremental: incremental,
        )
        if grain is not None:
            period = _to_date_period_function(grain) if to_date else _period_function(grain)
            context.update(grain=grain.value, period=_recording_period(period, period_calls))
        for macro in macros:
            context.update(_macro_exports(macro, context))
        sql = render_template(compiled, context, template.relpath)
        queries.append(RenderedQuery(grain=grain, sql=sql, line_map=_line_map(template.text, sql), to_date=to_date,
                                     incremental=incremental, coverage=coverage))
        # config() is known once rendered: an incremental model is rendered again with is_incremental() true
        if template.kind is NodeKind.MODEL and not incremental and any(
                kwargs.get("materialized") == "incremental" for kwargs, _ in configs):
            variants.append((None, False, True))
    config = _build_config(template, configs)
    return RenderedNode(
        name=template.name,
        kind=template.kind,
        path=template.path,
        relpath=template.relpath,
        queries=tuple(queries),
        refs=tuple(refs.items()),
        sources=tuple((s, t, line) for (s, t), line in used_sources.items()),
        config=config,
        uses_period=template.kind is not NodeKind.METRIC or bool(period_calls),
    )


def _recording_period(period: Callable[[str], str], calls: list[str]) -> Callable[[str], str]:
    """period() that remembers it was called: a metric that never calls it cannot be bucketed by grain."""

    def recording(expression: str) -> str:
        calls.append(str(expression))
        return period(expression)

    return recording


def _macro_exports(macro: Any, context: dict) -> dict[str, Any]:
    module = macro.make_module(vars=context)
    return {name: getattr(module, name) for name in dir(module) if not name.startswith("_")}


def _caller_line(relpath: Path, compiled: Any) -> int:
    """Template line of the innermost template frame calling us (live frames carry generated-code lines)."""
    name = relpath.as_posix()
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_filename == name:
            return compiled.get_corresponding_lineno(frame.f_lineno)
        frame = frame.f_back
    return 1


def _ref_function(template: TemplateFile, compiled: Any, known: set[str], refs: dict[str, int]) -> Callable[[str], str]:
    def ref(name: str) -> str:
        name = str(name)
        if name not in known:
            close = get_close_matches(name, sorted(known), n=1)
            raise TemplateCallError(
                f"unknown ref '{name}': no model, metric or seed has that name",
                hint=f"did you mean '{close[0]}'?" if close else "models live in models/*.sql, seeds in seeds/*.csv",
            )
        if name == template.name:
            raise TemplateCallError(f"'{name}' refers to itself", hint="a node cannot read its own table")
        refs.setdefault(name, _caller_line(template.relpath, compiled))
        return exp.table_(name, db=REF_SCHEMA, quoted=True).sql("duckdb")

    return ref


def _source_function(template: TemplateFile, compiled: Any, sources: set[tuple[str, str]], used: dict) -> Callable[[str, str], str]:
    def source(source_name: str, table_name: str) -> str:
        key = (str(source_name), str(table_name))
        if key not in sources:
            declared = [f"{s}.{t}" for s, t in sorted(sources)]
            close = get_close_matches(".".join(key), declared, n=1)
            raise TemplateCallError(
                f"unknown source '{key[0]}.{key[1]}'",
                hint=f"did you mean '{close[0]}'?" if close else "declare it in models/sources.yml",
            )
        used.setdefault(key, _caller_line(template.relpath, compiled))
        return exp.table_(key[1], db=key[0], quoted=True).sql("duckdb")

    return source


def _config_function(template: TemplateFile, compiled: Any, configs: list) -> Callable[..., str]:
    def config(**kwargs: Any) -> str:
        configs.append((kwargs, _caller_line(template.relpath, compiled)))
        return ""

    return config


def _var_function(variables: Mapping[str, Any]) -> Callable[..., Any]:
    def var(name: str, default: Any = _MISSING) -> Any:
        if name in variables:
            return variables[name]
        if default is _MISSING:
            close = get_close_matches(name, sorted(variables), n=1)
            raise TemplateCallError(
                f"variable '{name}' is not set",
                hint=(f"did you mean '{close[0]}'? " if close else "")
                + f"set it under vars: in profiles.yml, pass --vars '{{{name}: ...}}', or give a default",
            )
        return default

    return var


def _period_function(grain: Grain) -> Callable[[str], str]:
    """period('o.placed_at') -> CAST(DATE_TRUNC('week', o.placed_at) AS DATE), built with sqlglot."""

    def period(expression: str) -> str:
        try:
            column = sqlglot.parse_one(str(expression), read="duckdb")
        except sqlglot.errors.SqlglotError as exc:  # TokenError too: an unclosed quote
            raise TemplateCallError(f"period() needs a SQL expression, got {expression!r}: {_sqlglot_reason(exc)}") from None
        truncated = exp.TimestampTrunc(this=column, unit=exp.var(grain.value.upper()))
        return exp.cast(truncated, exp.DataType.Type.DATE).sql("duckdb")

    return period


def _to_date_period_function(grain: Grain) -> Callable[[str], str]:
    """period() for the to-date rendering: the previous period's start for rows inside its elapsed span, else NULL.

    Rows outside the span fall into a NULL group that the build drops, so every
    aggregate (distinct counts included) is recomputed over the span itself. The span's bounds are
    placeholders ($to_date_start_<grain>, $to_date_end_<grain>) the build binds to the as-of's dates.
    """
    start, end = window_placeholders(grain)

    def period(expression: str) -> str:
        try:
            column = sqlglot.parse_one(str(expression), read="duckdb")
        except sqlglot.errors.SqlglotError as exc:  # TokenError too: an unclosed quote
            raise TemplateCallError(f"period() needs a SQL expression, got {expression!r}: {_sqlglot_reason(exc)}") from None
        low = exp.cast(start.copy(), exp.DataType.Type.TIMESTAMP)
        high = exp.cast(end.copy(), exp.DataType.Type.TIMESTAMP)
        inside = exp.and_(exp.GTE(this=column.copy(), expression=low), exp.LTE(this=column.copy(), expression=high))
        return exp.Case(ifs=[exp.If(this=inside, true=exp.cast(start.copy(), exp.DataType.Type.DATE))]).sql("duckdb")

    return period


def _sqlglot_reason(exc: sqlglot.errors.SqlglotError) -> str:
    errors = getattr(exc, "errors", None)
    return errors[0]["description"] if errors else "a string or quoted identifier is not closed"


def _line_map(template: str, rendered: str) -> tuple[int, ...]:
    """For each rendered line, the template line it came from (difflib alignment).

    Lines Jinja left alone align exactly; lines it changed map to the template
    line of the same offset in the changed block (clamped to the block).
    """
    source_lines = template.splitlines()
    out_lines = rendered.splitlines()
    mapping = [1] * len(out_lines)
    matcher = difflib.SequenceMatcher(a=source_lines, b=out_lines, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        for j in range(j1, j2):
            if tag == "equal":
                mapping[j] = i1 + (j - j1) + 1
            elif i2 > i1:
                mapping[j] = min(i1 + (j - j1), i2 - 1) + 1
            else:
                mapping[j] = min(i1, max(len(source_lines) - 1, 0)) + 1
    return tuple(mapping)


def _build_config(template: TemplateFile, configs: list[tuple[dict[str, Any], int]]) -> ModelConfig | MetricConfig:
    if len(configs) > 1:
        raise RenderError("config() is called more than once", path=template.relpath, line=configs[1][1],
                          hint="merge the calls into one config(...)")
    kwargs, line = configs[0] if configs else ({}, 1)
    if template.kind is NodeKind.MODEL:
        _check_keys(kwargs, MODEL_CONFIG_KEYS, template, line)
        materialized = str(kwargs.get("materialized", "table"))
        if materialized not in ("table", "view", "incremental"):
            raise RenderError(f"materialized={materialized!r} is not 'table', 'view' or 'incremental'", path=template.relpath,
                              line=line)
        unique_key = _strings(kwargs.get("unique_key", ()))
        if unique_key and materialized != "incremental":
            raise RenderError("unique_key is for materialized='incremental' models", path=template.relpath, line=line,
                              hint="remove unique_key, or make the model incremental")
        return ModelConfig(
            materialized=materialized,
            unique_key=unique_key,
            schema=str(kwargs.get("schema", "staging")),
            tags=_strings(kwargs.get("tags", ())),
            description=str(kwargs.get("description", "")),
        )
    if not configs:
        raise RenderError("metric has no config()", path=template.relpath, line=1,
                          hint="start the file with {{ config(kind='input', parent='...', label='...') }}")
    _check_keys(kwargs, METRIC_CONFIG_KEYS, template, line)
    kind = _enum(MetricKind, kwargs.get("kind"), "kind", template, line)
    threshold = None
    if any(k in kwargs for k in ("warn_change_pct", "breach_change_pct", "floor", "ceiling", "warn_change",
                                 "breach_change")):
        threshold = Threshold(
            warn_change_pct=_number(kwargs.get("warn_change_pct"), "warn_change_pct", template, line),
            breach_change_pct=_number(kwargs.get("breach_change_pct"), "breach_change_pct", template, line),
            floor=_number(kwargs.get("floor"), "floor", template, line),
            ceiling=_number(kwargs.get("ceiling"), "ceiling", template, line),
            warn_change=_number(kwargs.get("warn_change"), "warn_change", template, line),
            breach_change=_number(kwargs.get("breach_change"), "breach_change", template, line),
        )
        for key in ("warn_change_pct", "breach_change_pct", "warn_change", "breach_change"):
            if (getattr(threshold, key) or 0) < 0:
                raise RenderError(f"{key} must be zero or more, got {kwargs[key]!r}", path=template.relpath, line=line,
                                  hint="thresholds are sizes of a move in the bad direction (set by direction=)")
    default_edge = Edge.GUARDRAIL if kind is MetricKind.COUNTER else None
    edge = _enum(Edge, kwargs["edge"], "edge", template, line) if "edge" in kwargs else default_edge
    if kind is MetricKind.INPUT and not kwargs.get("parent"):
        raise RenderError("an input metric needs parent='...'", path=template.relpath, line=line,
                          hint="name the metric this input drives")
    if kind is MetricKind.INPUT and edge is None:
        edge = Edge.HYPOTHESIS
    if kind is MetricKind.OUTCOME and (kwargs.get("parent") or kwargs.get("guard")):
        raise RenderError("an outcome metric sits outside the tree: it takes no parent or guard", path=template.relpath,
                          line=line, hint="drop parent=/guard=; the charter (northstar.yml) names the outcomes "
                                          "the North Star must lead")
    if kind is MetricKind.COUNTER and not kwargs.get("guard"):
        raise RenderError("a counter-metric needs guard='...'", path=template.relpath, line=line,
                          hint="name the metric it guards, e.g. guard='on_time_orders'")
    ignore = kwargs.get("lint_ignore") or {}
    if not isinstance(ignore, Mapping):
        raise RenderError("lint_ignore must map rule ids to reasons", path=template.relpath, line=line,
                          hint="lint_ignore={'NS003': 'why this is fine here'}")
    return MetricConfig(
        kind=kind,
        label=str(kwargs.get("label") or template.name.replace("_", " ").capitalize()),
        parent=str(kwargs["parent"]) if kwargs.get("parent") else None,
        edge=edge,
        owner=str(kwargs["owner"]) if kwargs.get("owner") else None,
        dimension=_enum(Dimension, kwargs["dimension"], "dimension", template, line) if kwargs.get("dimension") else None,
        direction=_enum(Direction, kwargs.get("direction", Direction.HIGHER_IS_BETTER.value), "direction", template, line),
        guard=str(kwargs["guard"]) if kwargs.get("guard") else None,
        threshold=threshold,
        formula=str(kwargs["formula"]) if kwargs.get("formula") else None,
        target=_number(kwargs.get("target"), "target", template, line),
        unit=_unit(kwargs.get("unit", ""), template, line),
        description=str(kwargs.get("description", "")),
        tags=_strings(kwargs.get("tags", ())),
        lint_ignore=tuple((str(k), str(v)) for k, v in ignore.items()),
        line=line,
        dimensions=_strings(kwargs.get("dimensions", ())),
    )


def _check_keys(kwargs: dict, allowed: set[str], template: TemplateFile, line: int) -> None:
    for key in kwargs:
        if key not in allowed:
            close = get_close_matches(key, sorted(allowed), n=1)
            raise RenderError(f"unknown config key '{key}'", path=template.relpath, line=line,
                              hint=f"did you mean '{close[0]}'?" if close else f"keys are: {', '.join(sorted(allowed))}")


def _enum(enum: type, value: Any, key: str, template: TemplateFile, line: int) -> Any:
    try:
        return enum(str(value))
    except ValueError:
        choices = ", ".join(e.value for e in enum)
        raise RenderError(f"{key}={value!r} is not one of: {choices}", path=template.relpath, line=line) from None


def _number(value: Any, key: str, template: TemplateFile, line: int) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise RenderError(f"{key} must be a number, got {value!r}", path=template.relpath, line=line) from None


# How a metric's numbers read (present/formatting.py); 'ratio' is the old name of 'percent'.
UNITS = ("count", "number", "percent", "ratio", "currency", "seconds", "minutes", "hours", "days")


def _unit(value: Any, template: TemplateFile, line: int) -> str:
    """A known unit, or currency:XYZ with an ISO 4217 code; '' (none) reads as a plain number."""
    unit = str(value or "")
    code = unit.partition(":")[2] if unit.startswith("currency:") else None
    if unit == "" or unit in UNITS or (code is not None and len(code) == 3 and code.isalpha() and code.isupper()):
        return unit
    close = get_close_matches(unit, UNITS, n=1)
    raise RenderError(f"unit={unit!r} is not a known unit", path=template.relpath, line=line,
                      hint=(f"did you mean '{close[0]}'? " if close else "")
                      + f"units: {', '.join(UNITS)}, or currency:EUR (an ISO 4217 code)")


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)
