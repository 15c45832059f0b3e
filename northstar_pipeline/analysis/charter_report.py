"""The charter's commands: the checklist and what-if, read from a compiled project and its last build."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict

from northstar_pipeline.analysis.checklist import Verdict, check_charter
from northstar_pipeline.analysis.whatif import fit_elasticities, project_changes, seek_goal
from northstar_pipeline.build import pipeline
from northstar_pipeline.errors import NorthstarError, PublishError, UsageError
from northstar_pipeline.project.charter import CHARTER_FILE, Charter, load_charter, parse_change
from northstar_pipeline.tree.tree import Tree, build_tree
from northstar_pipeline.types import Project


def checklist(project: Project) -> tuple[Charter | None, tuple[Verdict, ...]]:
    charter = load_charter(project.root)
    tree = build_tree(pipeline.compile_project(project))
    rows = _card_rows(project)
    return charter, check_charter(charter, tree, rows)


def format_checklist(charter: Charter | None, verdicts: Sequence[Verdict], fmt: str) -> str:
    if fmt == "json":
        return json.dumps({"charter": _charter_json(charter), "checklist": [asdict(v) for v in verdicts]}, indent=2,
                          default=str)
    lines = []
    if charter:
        lines.append(f"North Star: {charter.north_star} · game: {' + '.join(charter.games)} · review: {charter.cadence}")
        lines.append(f"value: {charter.value}")
    for v in verdicts:
        lines.append(f"{v.verdict.upper():>18}  {v.criterion}: {v.evidence}")
    return "\n".join(lines)


def whatif(project: Project, changes: Mapping[str, str], *, goal: str | None = None, mix: Sequence[str] = (),
           grain: str | None = None) -> dict:
    """A projection of the North Star for the last complete period (see analysis/whatif.py)."""
    charter = load_charter(project.root)
    tree = build_tree(pipeline.compile_project(project))
    grain = grain or (charter.cadence if charter else project.grains[0].value)
    rows = _card_rows(project)
    north_star = tree.north_stars[0].name
    out: dict = {"grain": grain, "north_star": north_star}
    if changes:
        parsed = {name: _change(text, name) for name, text in changes.items()}
        lags = _best_lags(project, grain)
        projection = project_changes(tree, rows, parsed, grain, fit_elasticities(tree, rows, grain, lags))
        before, after = projection.before[north_star], projection.after.get(north_star, projection.before[north_star])
        out.update(period_start=str(projection.period_start), before=before, after=after,
                   change=after - before, change_pct=(after - before) / abs(before) if before else None,
                   estimate=north_star in projection.estimated,
                   low=projection.low.get(north_star, after), high=projection.high.get(north_star, after),
                   moved={k: {"before": projection.before.get(k), "after": v} for k, v in projection.after.items()})
    if goal is not None:
        wanted = _change(goal, north_star)
        inputs = list(mix) or [m.name for m in tree.metrics if m.level and tree.formula_chain(m.name)]
        if mix:
            out["goal_seek"] = [{"inputs": list(mix), "change_pct": seek_goal(tree, rows, wanted, grain, list(mix))}]
        else:
            out["goal_seek"] = [{"inputs": [name], "change_pct": _seek_or_none(tree, rows, wanted, grain, name)}
                                for name in inputs]
        out["goal"] = wanted.text
    if charter and not changes and goal is None:
        out["initiatives"] = []
        lags = _best_lags(project, grain)
        fits = fit_elasticities(tree, rows, grain, lags)
        for stream in charter.work_streams:
            for initiative in stream.initiatives:
                p = project_changes(tree, rows, {initiative.input: initiative.change}, grain, fits)
                after = p.after.get(north_star, p.before[north_star])
                out["initiatives"].append({"team": stream.team, "initiative": initiative.name,
                                           "input": initiative.input, "change": initiative.change.text,
                                           "north_star_change": after - p.before[north_star],
                                           "estimate": north_star in p.estimated})
    return out


def format_whatif(result: dict, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(result, indent=2, default=str)
    lines = []
    ns = result["north_star"]
    if "before" in result:
        label = " (estimate, through a hypothesis edge)" if result["estimate"] else ""
        lines.append(f"{ns} in the {result['grain']} of {result['period_start']}: {result['before']:.6g} -> "
                     f"{result['after']:.6g} ({result['change']:+.6g}, {result['change_pct']:+.2%}){label}")
        if result["estimate"]:
            lines.append(f"  95% interval: {result['low']:.6g} .. {result['high']:.6g}")
    for row in result.get("goal_seek", []):
        move = "unreachable" if row["change_pct"] is None else f"{row['change_pct']:+.4%}"
        lines.append(f"to move {ns} {result['goal']}: {' + '.join(row['inputs'])} {move}")
    for row in result.get("initiatives", []):
        lines.append(f"{row['team']}: {row['initiative']} ({row['input']} {row['change']}) -> {ns} "
                     f"{row['north_star_change']:+.6g}{' (estimate)' if row['estimate'] else ''}")
    return "\n".join(lines) or "nothing to project: give METRIC=CHANGE pairs or --goal"


def _seek_or_none(tree: Tree, rows, wanted, grain: str, name: str) -> float | None:
    try:
        return seek_goal(tree, rows, wanted, grain, [name])
    except UsageError:
        return None


def _change(text: str, name: str):
    try:
        return parse_change(text, where=f" for {name}")
    except ValueError as exc:
        raise UsageError(str(exc), hint="e.g. on_time_rate=+2pt orders_per_customer=+3%") from None


def _card_rows(project: Project) -> list[dict]:
    return pipeline.read_scorecard(project).to_pylist()


def _best_lags(project: Project, grain: str) -> dict[str, int]:
    path = project.target_dir / "tree_validation.parquet"
    if not path.is_file():
        return {}
    import duckdb

    con = duckdb.connect(":memory:")
    try:
        rows = con.execute("SELECT child, lag FROM read_parquet(?) WHERE validation = 'hypothesis' AND is_best_lag "
                           "AND grain = ?", [str(path), grain]).fetchall()
    finally:
        con.close()
    return {child: int(lag) for child, lag in rows}


def _charter_json(charter: Charter | None) -> dict | None:
    if charter is None:
        return None
    return {"value": charter.value, "games": list(charter.games), "north_star": charter.north_star,
            "proxy_for": charter.proxy_for, "cadence": charter.cadence, "outcomes": list(charter.outcomes),
            "work_streams": [{"team": w.team, "input": w.input,
                              "initiatives": [{"name": i.name, "input": i.input, "change": i.change.text,
                                               "by": str(i.by) if i.by else None} for i in w.initiatives]}
                             for w in charter.work_streams],
            "answers": dict(charter.answers)}


# The charter beside the other views: lint's findings and the review page --------------------------------------


def checklist_or_note(project: Project) -> tuple[Charter | None, tuple[Verdict, ...], str | None]:
    """The checklist for lint and the page, which must not fail because of it: (charter, verdicts, note).

    Without a build the data criteria run on no rows (leading: not enough history; measurable: fail, run a
    build); a charter or project that cannot be read gives no verdicts and a note saying why.
    """
    try:
        charter = load_charter(project.root)
        tree = build_tree(pipeline.compile_project(project))
        try:
            rows = _card_rows(project)
        except PublishError:
            rows = []
        return charter, check_charter(charter, tree, rows), None
    except NorthstarError as error:
        where = f"{error.path}:{error.line}: " if getattr(error, "path", None) and getattr(error, "line", None) else ""
        return None, (), f"the checklist could not run: {where}{error.message}"


def checklist_findings(project: Project) -> list[dict]:
    """lint --format json: one finding per verdict (rule CHECKLIST, severity info: it never sets lint's exit code).

    The keys of every lint finding are kept (rule, severity, message, path, line, metric, silenced), plus
    criterion, verdict, evidence and facts. A project without northstar.yml gets none.
    """
    if not (project.root / CHARTER_FILE).is_file():
        return []
    charter, verdicts, note = checklist_or_note(project)
    if note:
        return [{"rule": "CHECKLIST", "severity": "info", "message": note, "path": CHARTER_FILE, "line": None,
                 "metric": None, "silenced": None, "criterion": None, "verdict": "not checked", "evidence": note,
                 "facts": None}]
    return [{"rule": "CHECKLIST", "severity": "info", "message": f"{v.criterion}: {v.verdict}: {v.evidence}",
             "path": CHARTER_FILE, "line": v.line, "metric": charter.north_star if charter else None,
             "silenced": None, "criterion": v.criterion, "verdict": v.verdict, "evidence": v.evidence,
             "facts": dict(v.facts) if v.facts else None} for v in verdicts]


def with_checklist(lint_output: str, findings: Sequence[dict], fmt: str) -> str:
    """lint's output with the checklist: JSON findings appended to the list; text lines after the summary."""
    if not findings:
        return lint_output
    if fmt == "json":
        return json.dumps(json.loads(lint_output) + list(findings), indent=2, default=str)
    return f"{lint_output}\n{format_checklist_findings(findings)}"


def format_checklist_findings(findings: Sequence[dict]) -> str:
    """lint's text: the checklist after the findings, one `northstar.yml:line: verdict criterion: evidence` line."""
    if not findings:
        return ""
    lines = ["checklist (northstar checklist; not counted in lint's errors):"]
    for f in findings:
        where = f"{f['path']}:{f['line']}: " if f["line"] else f"{f['path']}: "
        lines.append(f"  {where}{f['verdict']} {f['criterion'] + ': ' if f['criterion'] else ''}{f['evidence']}")
    return "\n".join(lines)


def charter_page(project: Project) -> dict:
    """What the review page shows of the charter: PageContext fields charter, checklist, checklist_note."""
    if not (project.root / CHARTER_FILE).is_file():
        return {"charter": None, "checklist": (), "checklist_note": f"no {CHARTER_FILE}: no charter to check"}
    charter, verdicts, note = checklist_or_note(project)
    return {"charter": _charter_json(charter), "checklist": tuple(asdict(v) for v in verdicts),
            "checklist_note": note}
