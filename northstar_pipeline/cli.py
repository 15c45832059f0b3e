"""The northstar command: parses options, calls one api function, prints the result."""

from __future__ import annotations

import functools
import json
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

import click

from northstar_pipeline import api
from northstar_pipeline.build.plan import load_state, parse_selectors, plan_layers
from northstar_pipeline.errors import (
    EXIT_DATA,
    EXIT_HEAD_BROKEN,
    EXIT_PROJECT,
    EXIT_USAGE,
    NorthstarError,
)
from northstar_pipeline.project.load import parse_cli_vars


def _project_options(func: Callable) -> Callable:
    @click.option("--project-dir", default=".", type=click.Path(file_okay=False), help="Project root (default: .).")
    @click.option("--profiles-dir", default=None, type=click.Path(file_okay=False),
                  help="Directory holding profiles.yml (default: the project dir).")
    @click.option("--target", "-t", default=None, help="Target in profiles.yml outputs (default: its 'target').")
    @click.option("--vars", "vars_text", default=None, help="YAML mapping overriding vars, e.g. '{events_path: x}'.")
    @functools.wraps(func)
    def wrapper(project_dir: str, profiles_dir: str | None, target: str | None, vars_text: str | None, **kwargs: Any) -> Any:
        project = api.load(project_dir, profiles_dir=profiles_dir, target=target, vars=parse_cli_vars(vars_text))
        return func(project, **kwargs)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="northstar-pipeline", prog_name="northstar", message="%(prog)s %(version)s")
@click.option("--debug", is_flag=True, help="Show Python tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """northstar: the North Star metric tree as code, built in DuckDB, published as a Parquet scorecard."""
    ctx.obj = {"debug": debug}


@cli.command()
@_project_options
@click.option("--dialect", default="duckdb", show_default=True, help="Also write the SQL in this sqlglot dialect.")
def compile(project: Any, dialect: str) -> None:
    """Render and compile every model and metric; write target/compiled/<dialect>/."""
    manifest = api.compile_project(project, dialect=dialect)
    click.echo(f"compiled {len(manifest.nodes)} nodes to {project.target_dir / 'compiled' / dialect}")


@cli.command()
@_project_options
@click.option("--select", "-s", multiple=True, help="Selectors (dbt's syntax): name, stg_*, +name, name+1, @name, tag:x, kind:metric, path:metrics/, source:raw, config.owner:X; a comma intersects.")
@click.option("--exclude", multiple=True, help="Selectors to leave out.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: one JSON object per line, for schedulers.")
@click.option("--state", "state_dir", default=None, type=click.Path(file_okay=False),
              help="target/ of an earlier run, for state:modified and state:new selectors.")
@click.option("--full-refresh", is_flag=True, help="Rebuild incremental models from scratch.")
@click.option("--store-failures", is_flag=True, help="Keep every data test's failing rows as test_failures.<test>.")
@click.option("--fail-on", "fail_on", multiple=True, type=click.Choice(["breach", "red"]),
              help="After publishing, exit 5 when a guardrail is breached (breach) or the North Star is red (red) "
                   "in the last complete period.")
@click.option("--fail-on-stale", is_flag=True,
              help="Refuse to build (exit 3) when a source's newest data is older than its freshness error_after.")
@click.option("--defer", is_flag=True,
              help="Read unselected upstream tables this database lacks from the --state run's database.")
@click.option("--keep-orphans", is_flag=True,
              help="Keep (and list) relations of nodes the project no longer has, instead of dropping them.")
@click.option("--allow-shrink", is_flag=True,
              help="Commit tables that lost more than max_shrink (profiles.yml) of their rows.")
def build(project: Any, select: tuple[str, ...], exclude: tuple[str, ...], log_format: str,
          state_dir: str | None, full_refresh: bool, store_failures: bool, fail_on: tuple[str, ...],
          fail_on_stale: bool, defer: bool = False, keep_orphans: bool = False, allow_shrink: bool = False) -> None:
    """Build the selected nodes into DuckDB and publish the scorecard."""
    from northstar_pipeline.present.progress import Reporter

    if defer and not state_dir:
        raise click.UsageError("--defer needs --state DIR (the target/ of the run to defer to)")
    reporter = Reporter(log_format)
    if fail_on_stale:
        _refuse_stale(project, reporter)
    try:
        result = api.build(project, select=parse_selectors(select), exclude=parse_selectors(exclude), report=reporter,
                           state=load_state(state_dir) if state_dir else None, full_refresh=full_refresh,
                           store_failures=store_failures,
                           defer=api.state_database(state_dir) if defer else None, keep_orphans=keep_orphans,
                           allow_shrink=allow_shrink)
    finally:
        reporter.close()  # a failed build must not leave the live bar drawn over the error
    if log_format == "text" and result.scorecard_path:
        _print_scorecard(project, grain=project.grains[0].value, fmt="table", period=None)
    if fail_on and result.scorecard_path:
        _exit_on_alerts(project, fail_on, reporter)


@cli.command("test")
@_project_options
@click.option("--select", "-s", multiple=True, help="Run the tests of these nodes (selectors as in build).")
@click.option("--exclude", multiple=True, help="Selectors to leave out.")
@click.option("--store-failures", is_flag=True, help="Keep every test's failing rows as test_failures.<test>.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def test(project: Any, select: tuple[str, ...], exclude: tuple[str, ...], store_failures: bool, fmt: str) -> None:
    """Run the data tests on the built tables (exit 7 when a test of severity error fails)."""
    from northstar_pipeline.errors import EXIT_TEST
    from northstar_pipeline.present.progress import Reporter

    results = api.run_tests(project, select=parse_selectors(select), exclude=parse_selectors(exclude),
                            report=Reporter("text", stream=sys.stdout) if fmt == "text" else None,
                            store=store_failures)
    counts = {s: sum(r.status == s for r in results) for s in ("pass", "warn", "error", "skipped")}
    if fmt == "json":
        click.echo(json.dumps({"results": [r.payload() for r in results], "counts": counts}, indent=2, default=str))
    else:
        click.echo(f"{len(results)} tests: {counts['pass']} passed, {counts['warn']} warned, {counts['error']} failed")
    if counts["error"]:
        sys.exit(EXIT_TEST)


@cli.command()
@_project_options
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def freshness(project: Any, fmt: str) -> None:
    """Report each source's newest data and its freshness status (exit 3 when one is past error_after)."""
    from northstar_pipeline.errors import EXIT_DATA
    from northstar_pipeline.project.freshness import check_freshness

    results = check_freshness(project)
    if fmt == "json":
        click.echo(json.dumps({"sources": [r.payload() for r in results]}, indent=2))
    else:
        if not results:
            click.echo("no source declares a loaded_at_field: nothing to check (models/sources.yml)")
        for r in results:
            p = r.payload()
            rule = ", ".join(f"{k} {v}" for k, v in (("warn_after", r.warn_after), ("error_after", r.error_after)) if v)
            click.echo(f"{r.status.upper():<7} {r.source:<24} newest {r.loaded_at_field} = {p['max_loaded_at']}  "
                       f"age {p['age']}" + (f"  ({rule})" if rule else "  (no freshness rule)"))
    if any(r.status == "error" for r in results):
        sys.exit(EXIT_DATA)


@cli.command()
@_project_options
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--runs", "last", default=5, show_default=True, type=click.IntRange(min=1), help="How many runs to show.")
def status(project: Any, fmt: str, last: int) -> None:
    """Last runs, data as-of and freshness, periods covered, the lock holder, tables vs scorecard."""
    from northstar_pipeline.build.status import project_status

    state = project_status(project, last=last)
    if fmt == "json":
        click.echo(json.dumps(state.payload(), indent=2, default=str))
        return
    click.echo(f"project {state.project}  target {state.target}")
    lock = state.lock
    click.echo(f"lock: held by pid {lock['pid']} ({lock['command']}) since {lock['since']}" if lock else "lock: free")
    for run in state.runs:
        failed = ", ".join(run.get("failed_tests") or run.get("failed_nodes") or [])
        click.echo(f"  run {run['run_id']}  {run['started_at']}  {run['seconds']:.1f}s  {run['status']}"
                   + (f"  failed: {failed}" if failed else "") + (f"  {run['error']}" if run.get("error") else ""))
    if not state.runs:
        click.echo("  no runs recorded yet")
    click.echo(f"as of: {state.as_of}  scorecard: {state.scorecard} (run {state.scorecard_run_id})")
    for p in state.periods:
        click.echo(f"  {p['grain']:<8} {p['periods']} periods {p['first']} .. {p['last']} "
                   f"(last complete {p['last_complete']})")
    for f in state.freshness:
        click.echo(f"freshness: {f.get('source', '')} {f['status']}"
                   + (f" newest {f['max_loaded_at']} ({f['age']} old)" if f.get("max_loaded_at") else "")
                   + (f" {f['error']}" if f.get("error") else ""))
    verdict = {True: "match", False: "DO NOT match", None: "unknown"}[state.tables_match_scorecard]
    click.echo(f"tables vs the published scorecard: {verdict} ({state.tables_note})")


@cli.command("ls")
@_project_options
@click.option("--select", "-s", multiple=True, help="Selectors (dbt's syntax): name, stg_*, +name, name+1, @name, tag:x, kind:metric, path:metrics/, source:raw, config.owner:X; a comma intersects.")
@click.option("--exclude", multiple=True, help="Selectors to leave out.")
@click.option("--output", type=click.Choice(["table", "name", "path", "json"]), default="table", show_default=True,
              help="table: kind and relation; name: names that --select accepts back; path; json.")
@click.option("--state", "state_dir", default=None, type=click.Path(file_okay=False),
              help="target/ of an earlier run, for state:modified and state:new selectors.")
def ls(project: Any, select: tuple[str, ...], output: str, state_dir: str | None,
       exclude: tuple[str, ...] = ()) -> None:
    """List nodes in build order."""
    state = load_state(state_dir) if state_dir else None  # read before compiling rewrites target/manifest.json
    manifest = api.compile_project(project)
    for node in plan_layers(manifest, parse_selectors(select), parse_selectors(exclude), state=state).nodes:
        if output == "name":
            click.echo(node.name)
        elif output == "json":
            click.echo(json.dumps({"name": node.name, "kind": node.kind.value, "relation": node.relation,
                                   "path": node.relpath.as_posix(), "depends_on": list(node.depends_on)}))
        else:
            click.echo(node.relpath.as_posix() if output == "path" else f"{node.kind.value:<7} {node.relation}")


@cli.command()
@_project_options
@click.option("--grain", default=None, help="Grain to show (default: the project's first).")
@click.option("--period", default=None, help="Period start (YYYY-MM-DD) to show (default: the latest complete period).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv", "markdown", "html"]), default="table",
              show_default=True)
@click.option("--segment", default=None, help="Show one segment's tree, e.g. platform=ios (see dimensions.yml).")
def scorecard(project: Any, grain: str | None, period: str | None, fmt: str, segment: str | None) -> None:
    """Show the published scorecard."""
    _print_scorecard(project, grain=grain or project.grains[0].value, fmt=fmt, period=period, segment=segment)


@cli.command()
@_project_options
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def lint(project: Any, fmt: str) -> None:
    """Check the tree against the North Star Framework's anti-patterns (exit 1 on an error)."""
    from northstar_pipeline.analysis.lint import (
        format_findings,
        has_errors,
        lint_project,
    )

    from northstar_pipeline.analysis.charter_report import checklist_findings, with_checklist

    findings = lint_project(project)
    click.echo(with_checklist(format_findings(findings, fmt), checklist_findings(project), fmt))  # never the exit code
    if has_errors(findings):
        sys.exit(EXIT_PROJECT)
    if findings.skipped:  # the data rules could not run: not a pass
        click.echo(click.style("error: ", fg="red", bold=True) + f"data rules could not run: {findings.skipped}",
                   err=True)
        sys.exit(findings.skipped_code)


@cli.command()
@_project_options
@click.option("--format", "fmt", type=click.Choice(["rich", "mermaid", "dot", "svg"]), default="rich",
              show_default=True)
@click.option("--grain", default=None, help="Grain whose values are shown (default: the project's first).")
@click.option("--period", default=None, help="Period start (YYYY-MM-DD); default: the latest complete period.")
@click.option("--segment", default=None, help="The tree of one segment, e.g. platform=ios.")
def tree(project: Any, fmt: str, grain: str | None, period: str | None, segment: str | None) -> None:
    """Draw the metric tree: formula edges solid, hypothesis edges dotted, guardrails marked."""
    from northstar_pipeline.present.views import render_tree

    card = _segment_card(project, segment) if segment else None
    click.echo(render_tree(project, fmt=fmt, grain=grain or project.grains[0].value, period=period, card=card))


@cli.command()
@_project_options
@click.option("--grain", default=None, help="Grain to explain (default: the project's first).")
@click.option("--period", default=None, help="Period start (YYYY-MM-DD); default: the latest complete period.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--segment", default=None, help="Explain inside one segment, e.g. region=north.")
@click.option("--metric", default=None, help="Metric whose segments are ranked (default: the North Star).")
def explain(project: Any, grain: str | None, period: str | None, fmt: str, segment: str | None,
            metric: str | None) -> None:
    """Explain the North Star's change: each input's contribution, biggest movers, guardrails in breach."""
    from northstar_pipeline.analysis.explain import explain_change
    from northstar_pipeline.analysis.segments import format_segment_report, read_segments, segment_report
    from northstar_pipeline.tree.tree import build_tree

    tree = build_tree(api.compile_project(project))  # units and thresholds are in the definitions
    grain = grain or project.grains[0].value
    card = _segment_card(project, segment) if segment else api.read_scorecard(project)
    text = explain_change(card, grain=grain, period=period, tree=tree, color=None).rstrip("\n")
    segments = read_segments(project) if not segment else None
    report = segment_report(card, segments, grain=grain, period=period, metric=metric, tree=tree) \
        if segments is not None else None
    if fmt == "json":
        click.echo(json.dumps({"segment": segment, "text": text, "segments": report}, indent=2, default=str))
        return
    units = {m.name: m.config.unit for m in tree.metrics}
    click.echo(text + ("\n" + format_segment_report(report, units) if report else ""))


@cli.command()
@_project_options
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def checklist(project: Any, fmt: str) -> None:
    """Check the North Star against the seven criteria, from northstar.yml and the last build."""
    from northstar_pipeline.analysis.charter_report import checklist as run_checklist, format_checklist

    charter, verdicts = run_checklist(project)
    click.echo(format_checklist(charter, verdicts, fmt))
    if any(v.verdict == "fail" for v in verdicts):
        sys.exit(EXIT_PROJECT)


@cli.command()
@_project_options
@click.argument("changes", nargs=-1)
@click.option("--goal", default=None, help="A move of the North Star to reach, e.g. +10%; says what each input needs.")
@click.option("--mix", default=None, help="With --goal: inputs that move together by the same relative amount (a,b).")
@click.option("--grain", default=None, help="Grain (default: the charter's cadence, else the project's first).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def whatif(project: Any, changes: tuple[str, ...], goal: str | None, mix: str | None, grain: str | None,
           fmt: str) -> None:
    """Project the North Star if inputs moved (METRIC=+3% or METRIC=+2pt); --goal solves for the moves."""
    from northstar_pipeline.analysis.charter_report import format_whatif, whatif as run_whatif

    pairs = {}
    for item in changes:
        name, sep, change = item.partition("=")
        if not sep:
            raise click.BadParameter(f"'{item}' is not METRIC=CHANGE", param_hint="CHANGES")
        pairs[name.strip()] = change
    if goal and goal.partition("=")[1]:
        goal = goal.partition("=")[2]  # --goal on_time_orders=+10%: the North Star is implied
    result = run_whatif(project, pairs, goal=goal, mix=tuple(m for m in (mix or "").split(",") if m), grain=grain)
    click.echo(format_whatif(result, fmt))


@cli.command("demo-data")
@click.option("--events", default=2_000_000, show_default=True, type=click.IntRange(min=1000))
@click.option("--seed", default=42, show_default=True, type=int)
@click.option("--out", "out_dir", default="data/warehouse", show_default=True, type=click.Path(file_okay=False))
@click.option("--append-day", "append", default=None, type=click.DateTime(formats=["%Y-%m-%d"]),
              help="Instead: land one more day (YYYY-MM-DD, the day after the newest) into the warehouse at --out.")
@click.option("--day-share", default=1.0, show_default=True, type=click.FloatRange(min=0, max=1, min_open=True),
              help="With --append-day: replay only this share of the users (the same night on a bigger history).")
def demo_data(events: int, seed: int, out_dir: str, append: Any, day_share: float) -> None:
    """Generate the demo grocery-delivery event warehouse (Parquet, hive-partitioned by landed_date)."""
    from northstar_pipeline.demo.demo_data import generate_demo_data

    if append is not None:
        from northstar_pipeline.demo.append_day import append_day

        added = append_day(Path(out_dir), append.date(), seed=seed, share=day_share)
        click.echo(f"appended {added.day}: {added.events:,} events ({added.late:,} landing late), "
                   f"{added.redelivered + added.doubled:,} re-deliveries, into partitions "
                   f"{', '.join(d.isoformat() for d in added.partitions)}")
        if added.payments is not None:
            click.echo(f"appended {added.payments:,} payments of {added.day}")
        return

    summary = generate_demo_data(Path(out_dir), events=events, seed=seed)
    click.echo(f"wrote {summary.events:,} events of {summary.users:,} users "
               f"({summary.first_day} .. {summary.last_day}) to {summary.events_dir}")
    click.echo(f"wrote {summary.payments:,} payments (revenue, led by on-time orders "
               f"{summary.revenue_lag_weeks} weeks earlier) to {summary.payments_dir}")


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--events", default=20_000, show_default=True, type=click.IntRange(min=1000),
              help="Size of the sample warehouse generated into DIR/data.")
def init(directory: str, events: int) -> None:
    """Scaffold a working starter project in DIRECTORY, with sample data."""
    from northstar_pipeline.demo.scaffold import init_project

    root = init_project(Path(directory), events=events)
    click.echo(f"created {root}\nnext: cd {directory} && northstar build")


@cli.command()
@click.argument("base")
@click.argument("head", required=False)
@click.option("--project-dir", default=".", type=click.Path(file_okay=False), help="Project root (default: .).")
@click.option("--profiles-dir", default=None, type=click.Path(file_okay=False),
              help="Directory holding profiles.yml (default: the project dir).")
@click.option("--target", "-t", default=None, help="Target in profiles.yml outputs (default: its 'target').")
@click.option("--vars", "vars_text", default=None, help="YAML mapping overriding vars, e.g. '{events_path: x}'.")
@click.option("--no-build", is_flag=True, help="Compare definitions only; do not build the two sides.")
@click.option("--grain", default=None, help="Grain whose numbers are compared (default: the project's first).")
@click.option("--periods", default=4, show_default=True, type=click.IntRange(min=1),
              help="How many of the latest periods to compare.")
@click.option("--format", "fmt", type=click.Choice(["markdown", "json"]), default="markdown", show_default=True)
@click.option("--out", "out_file", default=None, type=click.Path(dir_okay=False),
              help="Write the report here instead of standard output (e.g. a PR comment body).")
def diff(base: str, head: str | None, project_dir: str, profiles_dir: str | None, target: str | None,
         vars_text: str | None, no_build: bool, grain: str | None, periods: int, fmt: str,
         out_file: str | None) -> None:
    """Compare the project at git revision BASE with HEAD (default: the working tree).

    Lists the models and metrics whose definitions changed (compiled SQL compared as
    syntax trees, so comments and formatting do not count) and the metrics downstream of
    them, then builds both sides in a scratch directory on the same data and compares the
    latest periods of every metric. Your target/ and warehouse are not touched.
    """
    from northstar_pipeline.review.markdown import render_markdown, report_payload

    report = api.diff_project(project_dir, base, head, profiles_dir=profiles_dir, target=target,
                              vars=parse_cli_vars(vars_text), build=not no_build, grain=grain, periods=periods)
    text = render_markdown(report) if fmt == "markdown" else json.dumps(report_payload(report), indent=2, default=str)
    if out_file:
        Path(out_file).write_text(text if text.endswith("\n") else text + "\n")
    else:
        click.echo(text.rstrip("\n"))
    for error in report.errors:  # the report has them too; stderr is for the person at the terminal
        where = f"{error.location}: " if error.location else ""
        hint = f"\n  hint: {error.hint}" if error.hint else ""
        click.echo(click.style("error: ", fg="red", bold=True) + f"{where}at {error.label}: {error.message}{hint}",
                   err=True)
    if report.head_broken:
        sys.exit(EXIT_HEAD_BROKEN)


def _refuse_stale(project: Any, reporter: Any) -> None:
    from northstar_pipeline.errors import StaleDataError
    from northstar_pipeline.project.freshness import check_freshness

    results = check_freshness(project)
    for result in results:
        reporter("freshness", result.payload())
    stale = [r for r in results if r.status == "error"]
    if stale:
        first = stale[0]
        raise StaleDataError(f"source {first.source} is stale: newest {first.loaded_at_field} is "
                             f"{first.max_loaded_at} ({first.payload()['age']} old, error_after {first.error_after})",
                             path=first.path, line=first.line,
                             hint="nothing was built or published; retry when the data has landed (exit 3 is retryable)")


def _exit_on_alerts(project: Any, fail_on: tuple[str, ...], reporter: Any) -> None:
    from northstar_pipeline.analysis.alerts import find_alerts
    from northstar_pipeline.errors import EXIT_ALERT

    alerts = find_alerts(project, fail_on)
    for alert in alerts:
        reporter("alert", alert.payload())
    if alerts:
        sys.exit(EXIT_ALERT)


@cli.command()
@_project_options
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: one JSON object per line, for schedulers.")
def retry(project: Any, log_format: str) -> None:
    """Re-run what the last build (target/run_results.json) did not finish: the failed node and the rest of its plan."""
    from northstar_pipeline.build.plan import Selector
    from northstar_pipeline.present.progress import Reporter

    names = api.retry_nodes(project.target_dir)
    if not names:
        click.echo("nothing to retry: the last run succeeded")
        return
    reporter = Reporter(log_format)
    try:
        result = api.build(project, select=tuple(Selector(name) for name in names), report=reporter)
    finally:
        reporter.close()
    if log_format == "text" and result.scorecard_path:
        _print_scorecard(project, grain=project.grains[0].value, fmt="table", period=None)


@cli.command()
@click.argument("metric")
@_project_options
@click.option("--grain", default=None, help="Grain (default: the project's first).")
@click.option("--last", default=8, show_default=True, type=click.IntRange(min=1), help="How many latest periods.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
def show(project: Any, metric: str, grain: str | None, last: int, fmt: str) -> None:
    """Show METRIC's latest periods from the built tables, e.g. show orders_per_customer --grain week --last 8."""
    from northstar_pipeline.analysis.show import format_shown

    click.echo(format_shown(api.show_metric(project, metric, grain=grain, last=last), fmt))


def _print_scorecard(project: Any, grain: str, fmt: str, period: str | None, segment: str | None = None) -> None:
    from northstar_pipeline.present.report import render_scorecard

    card = _segment_card(project, segment) if segment else api.read_scorecard(project)
    name = f"{project.name} · {segment}" if segment else project.name
    context = None
    if fmt == "html":  # the page also shows hypothesis verdicts and the previous build's definitions
        from northstar_pipeline.present.html import page_context

        from dataclasses import replace

        from northstar_pipeline.analysis.charter_report import charter_page

        context = replace(page_context(project), **charter_page(project))  # the charter and its checklist
    click.echo(render_scorecard(card, grain=grain, fmt=fmt, period=period, project=name, context=context))


def _segment_card(project: Any, segment: str) -> Any:
    from northstar_pipeline.analysis.segments import read_segments, segment_card

    return segment_card(api.read_scorecard(project), read_segments(project, required=True), segment)


def _json_logs(argv: list[str]) -> bool:
    """`--log-format json` was asked for: errors are then JSON events on the same stream."""
    return "--log-format=json" in argv or any(a == "--log-format" and b == "json" for a, b in zip(argv, argv[1:]))


def main() -> None:
    debug = "--debug" in sys.argv
    try:
        cli.main(standalone_mode=False)
    except NorthstarError as error:
        if debug:
            traceback.print_exc()
        if _json_logs(sys.argv):
            from northstar_pipeline.present.progress import error_record

            click.echo(json.dumps(error_record(error), default=str), err=True)  # the log stream stays JSON lines
        else:
            click.echo(click.style("error: ", fg="red", bold=True) + str(error), err=True)
        sys.exit(error.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(EXIT_USAGE if isinstance(error, click.UsageError) else error.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted: the build was rolled back; the last good scorecard is intact", err=True)
        sys.exit(130)
    except OSError as error:
        if debug:
            traceback.print_exc()
        click.echo(click.style("error: ", fg="red", bold=True) + str(error), err=True)
        sys.exit(EXIT_DATA)
