"""The North Star charter (`northstar.yml`): what the tree is for, read into frozen values.

The tree says how the North Star is computed; the charter says why it is the North Star: the
value statement, the game the product plays, the outcomes it must lead, the work streams that
own its inputs, and the answers a person must give to the checklist. `analysis/checklist.py`
checks each criterion against it and the data. The file is optional: without it the checklist
says what is missing. It is plain YAML (no Jinja): nothing in it is computed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from northstar_pipeline.errors import ProjectError
from northstar_pipeline.project.load import key_lines

CHARTER_FILE = "northstar.yml"
GAMES = ("attention", "transaction", "productivity")
CADENCES = {"weekly": "week", "monthly": "month"}
# The checklist criteria a person answers (Amplitude's seven; the other five are also checked on data).
PERSON_CRITERIA = ("expresses_value", "represents_vision")
CRITERIA = ("expresses_value", "represents_vision", "leading_indicator", "actionable", "understandable",
            "measurable", "not_vanity")
_CHANGE = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s*(%|pt)?\s*$")  # '+5%', '-2pt', '0.03': not SQL


@dataclass(frozen=True, slots=True)
class Change:
    """A move of a metric: relative ('+5%' = 0.05 of its value) or absolute ('+2pt' = 0.02 of a ratio, or units)."""

    amount: float
    relative: bool
    text: str

    def apply(self, value: float) -> float:
        return value * (1 + self.amount) if self.relative else value + self.amount


@dataclass(frozen=True, slots=True)
class Initiative:
    name: str
    input: str  # the input metric it should move
    change: Change
    by: date | None
    line: int


@dataclass(frozen=True, slots=True)
class WorkStream:
    team: str
    input: str
    initiatives: tuple[Initiative, ...]
    line: int


@dataclass(frozen=True, slots=True)
class Charter:
    path: Path
    value: str
    games: tuple[str, ...]  # one, or several for a hybrid
    north_star: str
    proxy_for: str | None
    cadence: str  # the grain the review opens on: week or month
    outcomes: tuple[str, ...]
    work_streams: tuple[WorkStream, ...]
    answers: tuple[tuple[str, str], ...]  # (criterion, a person's answer)
    max_formula_terms: int = 4
    max_lag: int = 4
    min_periods: int = 16
    alpha: float = 0.05
    line_of: tuple[tuple[str, int], ...] = ()

    def line(self, key: str) -> int:
        return dict(self.line_of).get(key, 1)

    def answer(self, criterion: str) -> str | None:
        return dict(self.answers).get(criterion)


def load_charter(root: Path) -> Charter | None:
    """The project's charter, or None when it has no northstar.yml. Errors name the line."""
    path = root / CHARTER_FILE
    if not path.is_file():
        return None
    rel = Path(CHARTER_FILE)
    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except UnicodeDecodeError:
        raise ProjectError("northstar.yml is not UTF-8 text", path=rel, line=1, hint="save it as UTF-8") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        raise ProjectError(f"northstar.yml is not valid YAML: {exc.problem}", path=rel,
                           line=mark.line + 1 if mark else 1, hint="check the indentation and quoting") from None
    if not isinstance(data, dict):
        raise ProjectError("northstar.yml must be a mapping of keys", path=rel, line=1,
                           hint="start from `northstar init`'s northstar.yml")
    lines = key_lines(node)
    reader = _Reader(data, lines, rel)
    games = reader.strings("game", required=True)
    for game in games:
        if game not in GAMES:
            reader.fail("game", f"unknown game '{game}'", f"one of {', '.join(GAMES)}, or a list of them for a hybrid")
    cadence = reader.string("cadence", default="weekly")
    if cadence not in CADENCES:
        reader.fail("cadence", f"unknown cadence '{cadence}'", f"one of {', '.join(CADENCES)}")
    answers = reader.mapping("criteria")
    for key in answers:
        if key not in CRITERIA:
            reader.fail(("criteria", key), f"unknown criterion '{key}'", f"criteria: {', '.join(CRITERIA)}")
    checks = reader.mapping("checks")
    return Charter(
        path=rel,
        value=reader.string("value", required=True),
        games=tuple(games),
        north_star=reader.string("north_star", required=True),
        proxy_for=reader.string("proxy_for"),
        cadence=CADENCES[cadence],
        outcomes=tuple(reader.strings("outcomes")),
        work_streams=tuple(_work_stream(reader, i, ws) for i, ws in enumerate(reader.list("work_streams"))),
        answers=tuple((str(k), str(v)) for k, v in answers.items() if v not in (None, "")),
        max_formula_terms=int(_number(reader, ("checks", "max_formula_terms"), checks.get("max_formula_terms", 4))),
        max_lag=int(_number(reader, ("checks", "max_lag"), checks.get("max_lag", 4))),
        min_periods=int(_number(reader, ("checks", "min_periods"), checks.get("min_periods", 16))),
        alpha=float(_number(reader, ("checks", "alpha"), checks.get("alpha", 0.05))),
        line_of=tuple((".".join(k), v) for k, v in lines.items()),
    )


def parse_change(text: Any, *, where: str = "") -> Change:
    """'+5%' -> relative 0.05; '+2pt' -> absolute 0.02 (a ratio's points); '3' -> absolute 3 (its unit)."""
    match = _CHANGE.match(str(text))
    if not match:
        raise ValueError(f"'{text}' is not a change{where}: write +5% (relative), +2pt (ratio points) or +3 (units)")
    number, unit = float(match.group(1)), match.group(2)
    if unit == "%":
        return Change(number / 100, True, str(text).strip())
    if unit == "pt":
        return Change(number / 100, False, str(text).strip())
    return Change(number, False, str(text).strip())


def _work_stream(reader: _Reader, index: int, raw: Any) -> WorkStream:
    key = ("work_streams", str(index))
    if not isinstance(raw, dict) or not raw.get("team") or not raw.get("input"):
        reader.fail(key, "a work stream needs team: and input:", "e.g. {team: Growth, input: ordering_customers}")
    initiatives = []
    for j, item in enumerate(raw.get("initiatives") or ()):
        ikey = (*key, "initiatives", str(j))
        if not isinstance(item, dict) or not item.get("name"):
            reader.fail(ikey, "an initiative needs name:", "e.g. {name: Referral programme, change: +5%, by: 2027-03-31}")
        try:
            change = parse_change(item.get("change", "0"))
        except ValueError as exc:
            reader.fail((*ikey, "change"), str(exc), "a relative move as +5%, a ratio's points as +2pt")
        by = item.get("by")
        if by is not None and not isinstance(by, date):
            reader.fail((*ikey, "by"), f"by: '{by}' is not a date", "write YYYY-MM-DD")
        initiatives.append(Initiative(str(item["name"]), str(item.get("input") or raw["input"]), change, by,
                                      reader.line_of(ikey)))
    return WorkStream(str(raw["team"]), str(raw["input"]), tuple(initiatives), reader.line_of(key))


def _number(reader: _Reader, key: tuple[str, ...], value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        reader.fail(key, f"{'.'.join(key)} must be a number, not '{value}'", "e.g. max_lag: 4")
    return value


class _Reader:
    """Typed access to the charter's keys; every failure names the key's line."""

    def __init__(self, data: dict, lines: dict[tuple[str, ...], int], path: Path) -> None:
        self.data, self.lines, self.path = data, lines, path

    def line_of(self, key: str | tuple[str, ...]) -> int:
        key = (key,) if isinstance(key, str) else key
        while key and key not in self.lines:
            key = key[:-1]
        return self.lines.get(key, 1)

    def fail(self, key: str | tuple[str, ...], message: str, hint: str) -> None:
        raise ProjectError(f"northstar.yml: {message}", path=self.path, line=self.line_of(key), hint=hint)

    def string(self, key: str, *, required: bool = False, default: str | None = None) -> Any:
        value = self.data.get(key, default)
        if value is None or value == "":
            if required:
                self.fail(key, f"'{key}' is missing", f"add `{key}:` (see README 'The charter')")
            return default
        if not isinstance(value, (str, int, float)):
            self.fail(key, f"'{key}' must be text", f"write {key}: some text")
        return str(value)

    def strings(self, key: str, *, required: bool = False) -> list[str]:
        value = self.data.get(key)
        if value is None:
            if required:
                self.fail(key, f"'{key}' is missing", f"add `{key}:` (see README 'The charter')")
            return []
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str) for v in values):
            self.fail(key, f"'{key}' must be a name or a list of names", f"e.g. {key}: [a, b]")
        return values

    def mapping(self, key: str) -> dict:
        value = self.data.get(key) or {}
        if not isinstance(value, dict):
            self.fail(key, f"'{key}' must be a mapping", f"e.g. {key}: {{...}}")
        return value

    def list(self, key: str) -> list:
        value = self.data.get(key) or []
        if not isinstance(value, list):
            self.fail(key, f"'{key}' must be a list", f"e.g. {key}: [- ...]")
        return value
