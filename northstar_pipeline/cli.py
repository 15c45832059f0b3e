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
@click.option("--select", "-s", multiple=True, help="Selectors: name, +name, name+, tag:x, kind:metric.")
@click.option("--exclude", multiple=True, help="Selectors to leave out.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: one JSON object per line, for schedulers.")
@click.option("--state", "state_dir", default=None, type=click.Path(file_okay=False),
              help="target/ of an earlier run, for state:modified and state:new selectors.")
@click.option("--full-refresh", is_flag=True, help="Rebuild incremental models from scratch.")
@click.option("--allow-shrink", is_flag=True,
              help="Commit tables that lost more than max_shrink (profiles.yml) of their rows.")
def build(project: Any, select: tuple[str, ...], exclude: tuple[str, ...], log_format: str,
          state_dir: str | None, full_refresh: bool, allow_shrink: bool) -> None:
    """Build the selected nodes into DuckDB and publish the scorecard."""
    from northstar_pipeline.present.progress import Reporter

    reporter = Reporter(log_format)
    try:
        result = api.build(project, select=parse_selectors(select), exclude=parse_selectors(exclude), report=reporter,
                           state=load_state(state_dir) if state_dir else None, full_refresh=full_refresh,
                           allow_shrink=allow_shrink)
    finally:
        reporter.close()  # a failed build must not leave the live bar drawn over the error
    if log_format == "text" and result.scorecard_path:
        _print_scorecard(project, grain=project.grains[0].value, fmt="table", period=None)


@cli.command("ls")
@_project_options
@click.option("--select", "-s", multiple=True, help="Selectors: name, +name, name+, tag:x, kind:metric.")
@click.option("--output", type=click.Choice(["name", "path", "json"]), default="name", show_default=True)
@click.option("--state", "state_dir", default=None, type=click.Path(file_okay=False),
              help="target/ of an earlier run, for state:modified and state:new selectors.")
def ls(project: Any, select: tuple[str, ...], output: str, state_dir: str | None) -> None:
    """List nodes in build order."""
    state = load_state(state_dir) if state_dir else None  # read before compiling rewrites target/manifest.json
    manifest = api.compile_project(project)
    for node in plan_layers(manifest, parse_selectors(select), state=state).nodes:
        if output == "json":
            click.echo(json.dumps({"name": node.name, "kind": node.kind.value, "relation": node.relation,
                                   "path": node.relpath.as_posix(), "depends_on": list(node.depends_on)}))
        else:
            click.echo(node.relpath.as_posix() if output == "path" else f"{node.kind.value:<7} {node.relation}")


@cli.command()
@_project_options
@click.option("--grain", default=None, help="Grain to show (default: the project's first).")
@click.option("--period", default=None, help="Period start (YYYY-MM-DD) to show (default: the latest).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv", "markdown", "html"]), default="table",
              show_default=True)
def scorecard(project: Any, grain: str | None, period: str | None, fmt: str) -> None:
    """Show the published scorecard."""
    _print_scorecard(project, grain=grain or project.grains[0].value, fmt=fmt, period=period)


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

    findings = lint_project(project)
    click.echo(format_findings(findings, fmt))
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
@click.option("--grain", default=None, help="Grain whose latest values are shown (default: the project's first).")
def tree(project: Any, fmt: str, grain: str | None) -> None:
    """Draw the metric tree: formula edges solid, hypothesis edges dotted, guardrails marked."""
    from northstar_pipeline.present.views import render_tree

    click.echo(render_tree(project, fmt=fmt, grain=grain or project.grains[0].value))


@cli.command()
@_project_options
@click.option("--grain", default=None, help="Grain to explain (default: the project's first).")
@click.option("--period", default=None, help="Period start (YYYY-MM-DD); default: the latest complete period.")
def explain(project: Any, grain: str | None, period: str | None) -> None:
    """Explain the North Star's change: each input's contribution, biggest movers, guardrails in breach."""
    from northstar_pipeline.analysis.explain import explain_change
    from northstar_pipeline.tree.tree import build_tree

    tree = build_tree(api.compile_project(project))  # units and thresholds are in the definitions
    click.echo(explain_change(api.read_scorecard(project), grain=grain or project.grains[0].value, period=period,
                              tree=tree))


@cli.command("demo-data")
@click.option("--events", default=2_000_000, show_default=True, type=click.IntRange(min=1000))
@click.option("--seed", default=42, show_default=True, type=int)
@click.option("--out", "out_dir", default="data/warehouse", show_default=True, type=click.Path(file_okay=False))
def demo_data(events: int, seed: int, out_dir: str) -> None:
    """Generate the demo grocery-delivery event warehouse (Parquet, hive-partitioned by landed_date)."""
    from northstar_pipeline.demo.demo_data import generate_demo_data

    summary = generate_demo_data(Path(out_dir), events=events, seed=seed)
    click.echo(f"wrote {summary.events:,} events of {summary.users:,} users "
               f"({summary.first_day} .. {summary.last_day}) to {summary.events_dir}")


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
    from northstar_pipeline.review.diff import diff_project
    from northstar_pipeline.review.markdown import render_markdown, report_payload

    report = diff_project(project_dir, base, head, profiles_dir=profiles_dir, target=target,
                          vars=parse_cli_vars(vars_text), build=not no_build, grain=grain, periods=periods)
    text = render_markdown(report) if fmt == "markdown" else json.dumps(report_payload(report), indent=2, default=str)
    if out_file:
        Path(out_file).write_text(text if text.endswith("\n") else text + "\n")
    else:
        click.echo(text.rstrip("\n"))


def _print_scorecard(project: Any, grain: str, fmt: str, period: str | None) -> None:
    from northstar_pipeline.present.report import render_scorecard

    card = api.read_scorecard(project)
    click.echo(render_scorecard(card, grain=grain, fmt=fmt, period=period, project=project.name))


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
