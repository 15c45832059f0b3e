"""Read a project's data tests: generic tests in models/*.yml and singular tests in data_tests/*.sql.

As in dbt, a generic test is declared under a model (or a column of it) in YAML:

    models:
      - name: stg_events
        data_tests:
          - row_count: {min: 1}
        columns:
          - name: event_id
            data_tests: [unique, not_null]

and a singular test is a SELECT returning the failing rows. Everything is parsed here into frozen
values carrying the YAML file and line, so a failure can name where the test was declared.
The folder is ``data_tests/``, not dbt's ``tests/``: this repository's root is also the demo
project, and ``tests/`` holds its pytest suite.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from northstar_pipeline.errors import ProjectError
from northstar_pipeline.types import NodeKind, Project, TemplateFile

SINGULAR_DIR = "data_tests"
SEVERITIES = ("error", "warn")
CONFIG_KEYS = ("severity", "warn_if", "error_if", "where", "store_failures", "enabled")
# name in YAML -> the kind it is run as (dbt_utils / dbt_expectations spellings accepted too).
GENERIC_KINDS = {
    "unique": "unique",
    "not_null": "not_null",
    "accepted_values": "accepted_values",
    "relationships": "relationships",
    "row_count": "row_count",
    "dbt_expectations.expect_table_row_count_to_be_between": "row_count",
    "expression_is_true": "expression_is_true",
    "dbt_utils.expression_is_true": "expression_is_true",
}
COLUMN_KINDS = frozenset({"unique", "not_null", "accepted_values", "relationships"})
# The arguments each kind takes (besides config); required ones first.
KIND_ARGUMENTS = {
    "unique": ((), ()),
    "not_null": ((), ()),
    "accepted_values": (("values",), ("quote",)),
    "relationships": (("to", "field"), ()),
    "row_count": ((), ("min", "max", "min_value", "max_value")),
    "expression_is_true": (("expression",), ()),
}
THRESHOLD_OPERATORS = (">=", "<=", "!=", "<>", "==", ">", "<", "=")


@dataclass(frozen=True, slots=True)
class Threshold:
    """A warn_if / error_if condition on the number of failures, e.g. '>10' (dbt's default '!=0')."""

    operator: str
    value: float

    def holds(self, failures: int) -> bool:
        ops = {">": failures > self.value, ">=": failures >= self.value, "<": failures < self.value,
               "<=": failures <= self.value, "=": failures == self.value, "==": failures == self.value,
               "!=": failures != self.value, "<>": failures != self.value}
        return ops[self.operator]

    def __str__(self) -> str:
        return f"{self.operator}{self.value:g}"


DEFAULT_THRESHOLD = Threshold("!=", 0)


@dataclass(frozen=True, slots=True)
class TestConfig:
    severity: str = "error"
    warn_if: Threshold = DEFAULT_THRESHOLD
    error_if: Threshold = DEFAULT_THRESHOLD
    where: str | None = None  # a SQL condition filtering the tested model first
    store_failures: bool = False


@dataclass(frozen=True, slots=True)
class DataTest:
    """One declared test: a generic test on a model/column, or a singular SQL file."""

    name: str
    kind: str  # a GENERIC_KINDS value, or "singular"
    model: str | None  # the node it is attached to (None for a singular test: its refs say)
    column: str | None
    arguments: tuple[tuple[str, Any], ...]
    config: TestConfig
    path: Path  # relative to the project root
    line: int
    template: TemplateFile | None = None  # singular tests: the SQL file, rendered at build time

    @property
    def argument_map(self) -> dict[str, Any]:
        return dict(self.arguments)

    @property
    def location(self) -> str:
        return f"{self.path.as_posix()}:{self.line}"


def load_data_tests(project: Project) -> tuple[DataTest, ...]:
    """Every generic test of models/*.yml, then every singular test of data_tests/*.sql."""
    tests: list[DataTest] = []
    for path in sorted((project.root / "models").rglob("*.yml")) + sorted((project.root / "models").rglob("*.yaml")):
        tests.extend(_generic_tests(path, project))
    for path in sorted((project.root / SINGULAR_DIR).rglob("*.sql")):
        rel = project.relative(path)
        template = TemplateFile(name=path.stem, kind=NodeKind.MODEL, path=path, relpath=rel, text=path.read_text())
        tests.append(DataTest(path.stem, "singular", None, None, (), TestConfig(), rel, 1, template))
    return _unique_names(tests)


def parse_test_config(raw: Any, path: Path, line: int, base: TestConfig | None = None) -> TestConfig:
    """A test's config mapping (or a singular test's config() keywords) as a TestConfig."""
    base = base or TestConfig()
    if raw is None:
        return base
    if not isinstance(raw, dict):
        raise ProjectError("a test's config must be a mapping", path=path, line=line,
                           hint="e.g. config: {severity: warn, warn_if: '>10'}")
    unknown = sorted(set(raw) - set(CONFIG_KEYS))
    if unknown:
        raise ProjectError(f"unknown test config key '{unknown[0]}'", path=path, line=line,
                           hint=f"test config keys are: {', '.join(CONFIG_KEYS)}")
    severity = str(raw.get("severity", base.severity)).lower()
    if severity not in SEVERITIES:
        raise ProjectError(f"severity must be 'warn' or 'error', got '{raw.get('severity')}'", path=path, line=line,
                           hint="severity: warn reports the failure and lets the build go on")
    where = raw.get("where", base.where)
    return TestConfig(
        severity=severity,
        warn_if=_threshold(raw["warn_if"], "warn_if", path, line) if "warn_if" in raw else base.warn_if,
        error_if=_threshold(raw["error_if"], "error_if", path, line) if "error_if" in raw else base.error_if,
        where=str(where) if where is not None else None,
        store_failures=bool(raw.get("store_failures", base.store_failures)),
    )


def _threshold(value: Any, key: str, path: Path, line: int) -> Threshold:
    text = str(value).replace(" ", "")
    for operator in THRESHOLD_OPERATORS:  # two-character operators first
        if text.startswith(operator):
            try:
                return Threshold(operator, float(text[len(operator):]))
            except ValueError:
                break
    raise ProjectError(f"{key} must be a comparison with a number, got '{value}'", path=path, line=line,
                       hint=f"e.g. {key}: '>10' (the number of failing rows compared with 10)")


def _generic_tests(path: Path, project: Project) -> list[DataTest]:
    rel = project.relative(path)
    try:
        root = yaml.compose(path.read_text(), Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        if path.name == "sources.yml":
            return []  # rendered with Jinja before parsing (project/load.py), which reports its errors
        mark = exc.problem_mark or exc.context_mark
        raise ProjectError(f"invalid YAML: {exc.problem or exc}", path=rel, line=mark.line + 1 if mark else None,
                           hint="check indentation and that every 'key: value' is on its own line") from None
    if not isinstance(root, yaml.MappingNode):
        return []
    models = _get(root, "models")
    if models is None:
        return []
    if not isinstance(models, yaml.SequenceNode):
        raise ProjectError("'models:' must be a list of models", path=rel, line=_line(models),
                           hint="models:\n  - name: stg_events\n    columns: [...]")
    tests = []
    for model in models.value:
        name = _get(model, "name") if isinstance(model, yaml.MappingNode) else None
        if name is None or not isinstance(name, yaml.ScalarNode):
            raise ProjectError("each entry of models: needs a name", path=rel, line=_line(model))
        for entry in _test_entries(model, rel):
            tests.append(_generic_test(entry, name.value, None, rel))
        columns = _get(model, "columns")
        for column in (columns.value if isinstance(columns, yaml.SequenceNode) else []):
            column_name = _get(column, "name") if isinstance(column, yaml.MappingNode) else None
            if column_name is None:
                raise ProjectError("each column needs a name", path=rel, line=_line(column))
            for entry in _test_entries(column, rel):
                tests.append(_generic_test(entry, name.value, column_name.value, rel))
    return [t for t in tests if t is not None]


def _test_entries(node: yaml.MappingNode, rel: Path) -> list[yaml.Node]:
    entries = []
    for key in ("data_tests", "tests"):  # dbt >= 1.8 spells it data_tests; tests still works
        value = _get(node, key)
        if value is None:
            continue
        if not isinstance(value, yaml.SequenceNode):
            raise ProjectError(f"'{key}:' must be a list of tests", path=rel, line=_line(value),
                               hint=f"{key}:\n  - unique\n  - not_null")
        entries.extend(value.value)
    return entries


def _generic_test(entry: yaml.Node, model: str, column: str | None, rel: Path) -> DataTest | None:
    line = _line(entry)
    if isinstance(entry, yaml.ScalarNode):
        test_name, raw_args = entry.value, {}
    elif isinstance(entry, yaml.MappingNode) and len(entry.value) == 1:
        test_name = entry.value[0][0].value
        raw_args = yaml.safe_load(yaml.serialize(entry.value[0][1])) if entry.value[0][1] is not None else {}
        raw_args = raw_args or {}
        if not isinstance(raw_args, dict):
            raise ProjectError(f"the arguments of test '{test_name}' must be a mapping", path=rel, line=line)
    else:
        raise ProjectError("a test is a name or a mapping of one name to its arguments", path=rel, line=line,
                           hint="e.g. '- unique' or '- accepted_values: {values: [a, b]}'")
    kind = GENERIC_KINDS.get(test_name)
    if kind is None:
        raise ProjectError(f"unknown test '{test_name}'", path=rel, line=line,
                           hint=f"generic tests are: {', '.join(sorted(set(GENERIC_KINDS)))}; "
                                f"write anything else as a SELECT of failing rows in {SINGULAR_DIR}/")
    if column is None and kind in COLUMN_KINDS:
        raise ProjectError(f"test '{test_name}' needs a column: declare it under columns:", path=rel, line=line)
    raw_args = dict(raw_args)
    config_raw = raw_args.pop("config", None) or {}
    if not isinstance(config_raw, dict):
        raise ProjectError("a test's config must be a mapping", path=rel, line=line)
    config_raw = {**{k: raw_args.pop(k) for k in CONFIG_KEYS if k in raw_args}, **config_raw}  # older dbt style
    custom_name = raw_args.pop("name", None)
    arguments = raw_args.pop("arguments", None)  # dbt >= 1.10 nests them under arguments:
    if arguments is not None:
        if not isinstance(arguments, dict):
            raise ProjectError("'arguments:' must be a mapping", path=rel, line=line)
        raw_args.update(arguments)
    required, optional = KIND_ARGUMENTS[kind]
    unknown = sorted(set(raw_args) - set(required) - set(optional))
    if unknown:
        raise ProjectError(f"test '{test_name}' has no argument '{unknown[0]}'", path=rel, line=line,
                           hint=f"its arguments are: {', '.join(required + optional) or 'none'}")
    missing = [a for a in required if a not in raw_args]
    if missing:
        raise ProjectError(f"test '{test_name}' needs the argument '{missing[0]}'", path=rel, line=line,
                           hint=_argument_hint(kind))
    if config_raw.get("enabled") is False:
        return None
    config = parse_test_config({k: v for k, v in config_raw.items() if k != "enabled"}, rel, line)
    if kind == "accepted_values" and not isinstance(raw_args["values"], list):
        raise ProjectError("accepted_values needs values: a list", path=rel, line=line, hint=_argument_hint(kind))
    if kind == "row_count":
        raw_args = {"min": raw_args.get("min", raw_args.get("min_value")),
                    "max": raw_args.get("max", raw_args.get("max_value"))}
        for key, value in raw_args.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ProjectError(f"row_count {key} must be a number, got '{value}'", path=rel, line=line)
        if raw_args["min"] is None and raw_args["max"] is None:
            raise ProjectError("row_count needs min, max or both", path=rel, line=line, hint=_argument_hint(kind))
    name = str(custom_name) if custom_name else "_".join(p for p in (kind, model, column) if p)
    return DataTest(name, kind, model, column, tuple(sorted(raw_args.items())), config, rel, line)


def _argument_hint(kind: str) -> str:
    return {
        "accepted_values": "e.g. - accepted_values: {values: [order_placed, order_delivered]}",
        "relationships": "e.g. - relationships: {to: ref('stg_orders'), field: order_id}",
        "row_count": "e.g. - row_count: {min: 1, max: 1000000}",
        "expression_is_true": "e.g. - expression_is_true: {expression: 'delivered_at >= promised_at'}",
    }.get(kind, "")


def _unique_names(tests: list[DataTest]) -> tuple[DataTest, ...]:
    """Two tests of one kind on one column (different values, say) get _2, _3... as dbt adds a hash."""
    seen: dict[str, int] = {}
    out = []
    for test in tests:
        count = seen.get(test.name, 0) + 1
        seen[test.name] = count
        if count > 1:
            if test.kind == "singular":
                raise ProjectError(f"two data tests are named '{test.name}'", path=test.path, line=test.line,
                                   hint="rename the SQL file or the generic test's name:")
            test = replace(test, name=f"{test.name}_{count}")
        out.append(test)
    return tuple(out)


def _get(node: yaml.MappingNode, key: str) -> yaml.Node | None:
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return v
    return None


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1
