"""The North Star checklist: each of the seven criteria checked where data can check it.

Verdicts: ``pass``, ``warn``, ``fail``, ``needs a person`` (a person's answer, shown as given and
never faked as a data check) and ``not enough history`` (its own verdict, never a pass). Each
comes with its evidence. Reads the charter (northstar.yml), the compiled tree and the last
published scorecard.

| criterion | checked how |
|---|---|
| expresses value, represents vision | the value statement and a person's answers in the charter |
| leading indicator | analysis/leading.py on complete periods of the review grain, per outcome |
| actionable | every Level-1 input has an owner and a work stream |
| understandable | the formula has at most `checks.max_formula_terms` terms; the label is words |
| measurable | the North Star has a value in every complete period of the review window |
| not vanity | not cumulative, not a raw signup/download/page-view count (lint NS007), not lagging (NS006) |
| game fit | the North Star's name/label/unit fits the declared game (a warning with the reason) |
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import sqlglot

from northstar_pipeline.analysis.leading import test_lead
from northstar_pipeline.analysis.lint import cumulative_reasons  # the same rule as NS007
from northstar_pipeline.project.charter import Charter
from northstar_pipeline.tree.tree import Tree
from northstar_pipeline.types import MetricKind

PASS, WARN, FAIL, PERSON, HISTORY = "pass", "warn", "fail", "needs a person", "not enough history"
REVIEW_WINDOW = 12  # complete periods the measurable check looks at

# Words that say what a game's North Star measures (text of names and labels, not SQL).
_GAME_WORDS = {
    "attention": r"time|minutes|hours|session|listen|watch|view|engag|active",
    "transaction": r"order|booking|booked|purchase|transaction|ride|trip|night|checkout|sale|deliver",
    "productivity": r"task|completed|document|project|workflow|report|message|outcome|done|created",
}
_VANITY = re.compile(r"(?<![a-z])(signups?|sign_ups?|registrations?|registered|downloads?|installs?|page_?views?)(?![a-z])",
                     re.IGNORECASE)
_LAGGING = re.compile(r"(?<![a-z0-9])(revenue|mrr|arr|churn(?:ed)?|sales|gmv|profits?|income)(?![a-z0-9])",
                      re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Verdict:
    criterion: str
    verdict: str
    evidence: str
    line: int | None = None  # in northstar.yml, where it applies
    facts: Mapping | None = None  # the numbers behind the evidence (the leading-indicator test's), for JSON readers


def check_charter(charter: Charter | None, tree: Tree, card_rows: Sequence[Mapping]) -> tuple[Verdict, ...]:
    if charter is None:
        return (Verdict("charter", FAIL, "no northstar.yml: the value statement, game, outcomes and work streams "
                                         "are not written down (run `northstar init` for a template)"),)
    north_star = tree.north_stars[0] if tree.north_stars else None
    if north_star is None or north_star.name != charter.north_star:
        named = north_star.name if north_star else "none"
        return (Verdict("charter", FAIL, f"the charter's north_star '{charter.north_star}' is not the tree's North "
                                         f"Star ({named})", charter.line("north_star")),)
    grain = charter.cadence
    series = _series(card_rows, grain)
    return (
        _person(charter, "expresses_value", f"value statement: \"{charter.value}\""),
        _person(charter, "represents_vision", f"value statement: \"{charter.value}\""),
        *_leading(charter, tree, series),
        _actionable(charter, tree),
        _understandable(charter, north_star),
        _measurable(charter, north_star.name, series),
        _not_vanity(north_star),
        _game_fit(charter, north_star),
    )


def _person(charter: Charter, criterion: str, context: str) -> Verdict:
    answer = charter.answer(criterion)
    if answer is None:
        return Verdict(criterion, WARN, f"no answer in northstar.yml criteria.{criterion}; {context}",
                       charter.line("criteria"))
    return Verdict(criterion, PERSON, f"answered: \"{answer}\" ({context})", charter.line(f"criteria.{criterion}"))


def _leading(charter: Charter, tree: Tree, series: Mapping[str, list]) -> list[Verdict]:
    outcomes = [m.name for m in tree.outcomes]
    if not charter.outcomes:
        return [Verdict("leading_indicator", WARN, "the charter names no outcomes (revenue, retention) for the "
                                                   "North Star to lead", charter.line("outcomes"))]
    out = []
    nsm = charter.north_star
    for name in charter.outcomes:
        if name not in outcomes:
            out.append(Verdict("leading_indicator", FAIL, f"outcome '{name}' is not a kind='outcome' metric",
                               charter.line("outcomes")))
            continue
        leader, outcome = _aligned(series.get(nsm, []), series.get(name, []))
        result = test_lead(leader, outcome, max_lag=charter.max_lag, min_periods=charter.min_periods)
        if not result.enough_history:
            out.append(Verdict("leading_indicator", HISTORY,
                               f"{name}: {result.n} complete period changes, needs {charter.min_periods}",
                               charter.line("outcomes"), {"outcome": name, "n": result.n}))
            continue
        evidence = (f"{name}: best lag {result.lag} {charter.cadence}(s), effect {result.effect:+.3g}, "
                    f"p={result.p_value:.2g} (corrected for {result.lags_tried} lags: {result.p_corrected:.2g}), "
                    f"n={result.n}")
        ok = result.p_corrected < charter.alpha and result.effect > 0
        facts = {"outcome": name, "lag": result.lag, "effect": result.effect, "p_value": result.p_value,
                 "p_corrected": result.p_corrected, "n": result.n, "lags_tried": result.lags_tried}
        out.append(Verdict("leading_indicator", PASS if ok else FAIL,
                           evidence + ("" if ok else f"; needs corrected p < {charter.alpha} and a positive effect"),
                           charter.line("outcomes"), facts))
    return out


def _actionable(charter: Charter, tree: Tree) -> Verdict:
    streams = {ws.input for ws in charter.work_streams}
    level1 = [m for m in tree.metrics if m.level == 1 and m.kind is MetricKind.INPUT]
    gaps = [f"{m.name} has no owner" for m in level1 if not m.config.owner]
    gaps += [f"{m.name} has no work stream" for m in level1 if m.name not in streams]
    if not level1:
        return Verdict("actionable", FAIL, "the North Star has no Level-1 inputs", charter.line("work_streams"))
    if gaps:
        return Verdict("actionable", FAIL, "; ".join(gaps), charter.line("work_streams"))
    return Verdict("actionable", PASS, f"{len(level1)} Level-1 inputs, each with an owner and a work stream",
                   charter.line("work_streams"))


def _understandable(charter: Charter, north_star) -> Verdict:
    terms = len(north_star.formula.metrics) if north_star.formula else 1
    label = north_star.config.label
    problems = []
    if terms > charter.max_formula_terms:
        problems.append(f"its formula has {terms} terms (at most {charter.max_formula_terms})")
    if "_" in label or len(label) > 60 or not re.search(r"[A-Za-z]", label):
        problems.append(f"its label '{label}' is not words a person reads")
    if problems:
        return Verdict("understandable", WARN, "; ".join(problems))
    return Verdict("understandable", PASS, f"'{label}', a formula of {terms} terms")


def _measurable(charter: Charter, name: str, series: Mapping[str, list]) -> Verdict:
    values = [v for _, v in sorted(series.get(name, {}).items())][-REVIEW_WINDOW:]
    if not values:
        return Verdict("measurable", FAIL, f"no complete {charter.cadence} of the North Star in the scorecard "
                                           "(run northstar build)")
    gaps = sum(1 for v in values if v is None or v == 0)
    if gaps:
        return Verdict("measurable", FAIL, f"{gaps} of the last {len(values)} complete {charter.cadence}s have no "
                                           "value (or 0): the North Star has gaps")
    return Verdict("measurable", PASS, f"a value in each of the last {len(values)} complete {charter.cadence}s")


def _not_vanity(north_star) -> Verdict:
    text = f"{north_star.name} {north_star.config.label}"
    for _, sql in north_star.node.grain_sql:
        for _, reason in cumulative_reasons(sqlglot.parse_one(sql, read="duckdb")):
            return Verdict("not_vanity", FAIL, f"cumulative: {reason}")
    if match := _LAGGING.search(text):
        return Verdict("not_vanity", FAIL, f"'{match.group(0)}' is a lagging business metric: make it a "
                                           "kind='outcome' metric and let the North Star lead it")
    if match := _VANITY.search(text):
        return Verdict("not_vanity", FAIL, f"a raw count of {match.group(0)} is a vanity metric")
    return Verdict("not_vanity", PASS, "counted per period, not a signup/download/page-view count, not revenue")


def _game_fit(charter: Charter, north_star) -> Verdict:
    text = f"{north_star.name} {north_star.config.label} {north_star.config.unit}".lower()
    fits = [g for g in charter.games if re.search(_GAME_WORDS[g], text)]
    if fits:
        return Verdict("game_fit", PASS, f"'{north_star.config.label}' fits the {' + '.join(fits)} game",
                       charter.line("game"))
    wants = "; ".join(f"{g}: {_GAME_WORDS[g].replace('|', ', ')}" for g in charter.games)
    return Verdict("game_fit", WARN, f"'{north_star.config.label}' does not read as the declared game ({wants})",
                   charter.line("game"))


def _series(card_rows: Sequence[Mapping], grain: str) -> dict[str, dict]:
    rows = sorted((r for r in card_rows if r["grain"] == grain and r["is_complete"]), key=lambda r: r["period_start"])
    out: dict[str, dict] = {}
    for row in rows:
        out.setdefault(row["metric"], {})[row["period_start"]] = row["value"]
    return out


def _aligned(a: Mapping, b: Mapping) -> tuple[list, list]:
    periods = sorted(set(a) & set(b))
    return [a[p] for p in periods], [b[p] for p in periods]
