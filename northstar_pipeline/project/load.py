"""Load a project from disk: profiles.yml, sources, seeds, models, metrics, macros.

Everything user-written is parsed here once into typed, frozen values; later
steps never see a raw dict.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from northstar_pipeline.errors import NorthstarError, ProjectError, UsageError
from northstar_pipeline.project.freshness import source_freshness
from northstar_pipeline.project.sandbox import (
    SECRET_PREFIX,
    TemplateCallError,
    compile_template,
    env_var_function,
    make_environment,
    render_template,
)
from northstar_pipeline.types import (
    Grain,
    NodeKind,
    Project,
    Seed,
    Source,
    SparkTarget,
    Target,
    TemplateFile,
)
from northstar_pipeline.project.values import (
    as_bool,
    as_share,
    as_text,
    check_engine_setting,
    check_path_usable,
    read_text,
)

PROFILES_FILE = "profiles.yml"
SOURCES_FILE = "sources.yml"
DEFAULT_GRAINS = (Grain.WEEK, Grain.MONTH)
DEFAULT_MAX_SHRINK = 0.5  # a built table losing more than half its rows stops the build (build --allow-shrink)


def load_project(
    project_dir: Path | str = ".",
    *,
    profiles_dir: Path | str | None = None,
    target: str | None = None,
    cli_vars: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Project:
    root = Path(project_dir).resolve()
    if not root.is_dir():
        raise ProjectError(f"project directory '{project_dir}' does not exist", hint="pass --project-dir DIR")
    profiles_path = (Path(profiles_dir).resolve() if profiles_dir else root) / PROFILES_FILE
    if not profiles_path.is_file():
        raise ProjectError(
            f"no {PROFILES_FILE} in {profiles_path.parent}",
            hint="run 'northstar init DIR' for a starter project, or pass --profiles-dir",
        )
    if profiles_dir is None:
        _check_files_inside(root, [profiles_path])
    env_var = env_var_function(environ)  # sources.yml: no secrets
    secrets: dict[str, str] = {}
    profile, lines = _read_yaml(profiles_path, root, {"env_var": env_var_function(environ, secrets)}, secrets)
    if not isinstance(profile, dict):
        raise ProjectError("profiles.yml must be a mapping", path=_rel(profiles_path, root), line=1)
    _check_secrets_stay_in_outputs(profile, secrets, lines, _rel(profiles_path, root))

    variables = dict(_mapping(profile.get("vars") or {}, "vars", profiles_path, root, lines))
    variables.update(cli_vars or {})
    chosen = _target(profile, target, profiles_path, root, lines)
    target_dir = root / str(profile.get("target_path", "target"))
    scorecard = profile.get("scorecard_path", "target/scorecard.parquet")
    rel = _rel(profiles_path, root)
    max_shrink = as_share(profile.get("max_shrink", DEFAULT_MAX_SHRINK), "max_shrink", rel, lines.get(("max_shrink",)))
    if profiles_dir is None:  # the project's own profiles.yml: a pull request may have written it
        _check_writes_inside(root, profiles_path, lines, chosen, target_dir, _under(root, scorecard))

    seeds = tuple(Seed(p.stem, p) for p in sorted((root / "seeds").glob("*.csv")))
    models = _templates(root, "models", NodeKind.MODEL)
    metrics = _templates(root, "metrics", NodeKind.METRIC)
    _check_files_inside(root, [s.path for s in seeds], [root / "models" / SOURCES_FILE])
    _check_unique_names(root, seeds, models, metrics)
    return Project(
        root=root,
        name=str(profile.get("name", root.name)),
        profiles_path=profiles_path,
        target=chosen,
        grains=_grains(profile.get("grains", [g.value for g in DEFAULT_GRAINS]), profiles_path, root, lines),
        vars=tuple(sorted(variables.items())),
        sources=_sources(root, variables, env_var),
        seeds=seeds,
        models=models,
        metrics=metrics,
        macros=_templates(root, "macros", NodeKind.MODEL),
        target_dir=target_dir,
        scorecard_path=_under(root, scorecard),
        history_path=_under(root, profile["history_path"]) if profile.get("history_path") else None,
        history_keep_days=_keep_days(profile.get("history_keep_days"), profiles_path, root, lines),
        bi_path=_under(root, profile["bi_path"]) if profile.get("bi_path") else None,
        max_shrink=max_shrink,
    )


def _keep_days(value: Any, path: Path, root: Path, lines: dict) -> int | None:
    """history_keep_days: a whole number of days >= 1, or null to keep every build."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ProjectError(f"history_keep_days must be a whole number of days (1 or more), got {value!r}",
                           path=_rel(path, root), line=lines.get(("history_keep_days",), 1),
                           hint="e.g. history_keep_days: 400, or remove it to keep every build")
    return value


def parse_cli_vars(text: str | None) -> dict[str, Any]:
    """--vars takes a YAML mapping, as in dbt: --vars '{events_path: data/x}'."""
    if not text:
        return {}
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UsageError(f"--vars is not valid YAML: {exc}", hint="pass a mapping: --vars '{key: value}'") from None
    if not isinstance(value, dict):
        raise UsageError("--vars must be a YAML mapping", hint="pass a mapping: --vars '{key: value}'")
    return value


def _read_yaml(path: Path, root: Path, helpers: Mapping[str, Any],
               secrets: Mapping[str, str] | None = None) -> tuple[Any, dict[tuple[str, ...], int]]:
    """Render a YAML file through the sandbox (env_var, var), parse it, and keep key lines."""
    try:
        return _render_yaml(path, root, helpers)
    except NorthstarError as error:  # an error message may quote rendered text: never a secret's value
        for value in (secrets or {}).values():
            error.message = error.message.replace(value, "***")
            error.hint = error.hint.replace(value, "***") if error.hint else error.hint
        raise


# The output keys northstar itself reads (and may print): a secret belongs in any other key.
_OUTPUT_KEYS_USED = frozenset({"type", "path", "threads", "memory_limit", "temp_directory"})


def _check_secrets_stay_in_outputs(profile: dict, secrets: Mapping[str, str], lines: dict, rel: Path) -> None:
    """A secret may only be a connection setting under outputs:, never a value northstar writes or prints."""
    if not secrets:
        return

    def walk(value: Any, where: tuple[str, ...]) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(str(key), (*where, str(key)))
                walk(item, (*where, str(key)))
            return
        if isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, (*where, str(index)))
            return
        text = str(value)
        for name, secret in secrets.items():
            if not (secret == text or (len(secret) >= 4 and secret in text)):
                continue
            if len(where) == 3 and where[0] == "outputs" and where[2] not in _OUTPUT_KEYS_USED:
                continue
            raise ProjectError(
                f"the secret {name} is used in '{'.'.join(where)}', a value northstar writes to target/ or logs",
                path=rel, line=lines.get(where, lines.get(where[:-1])),
                hint=f"use {SECRET_PREFIX}* variables only for credentials under outputs: <target>: (not "
                     f"{', '.join(sorted(_OUTPUT_KEYS_USED))}); read other values with a variable without the prefix")

    walk(profile, ())


def _render_yaml(path: Path, root: Path, helpers: Mapping[str, Any]) -> tuple[Any, dict[tuple[str, ...], int]]:
    rel = _rel(path, root)
    env = make_environment()
    text = render_template(compile_template(env, read_text(path, rel), rel, ProjectError), helpers, rel, ProjectError)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ProjectError(
            f"invalid YAML: {exc.problem or exc}",
            path=rel,
            line=mark.line + 1 if mark else None,
            col=mark.column + 1 if mark else None,
            hint="check indentation and that every 'key: value' is on its own line",
        ) from None
    return data, key_lines(node)


def key_lines(node: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], int]:
    """Map each key path (('outputs', 'dev', 'path'), ...) to its 1-based line."""
    lines: dict[tuple[str, ...], int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = (*prefix, str(key.value))
            lines[path] = key.start_mark.line + 1
            lines.update(key_lines(value, path))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            path = (*prefix, str(index))
            lines[path] = item.start_mark.line + 1
            lines.update(key_lines(item, path))
    return lines


def _target(profile: dict, requested: str | None, path: Path, root: Path, lines: dict) -> Target:
    outputs = profile.get("outputs")
    rel = _rel(path, root)
    if not isinstance(outputs, dict) or not outputs:
        raise ProjectError("profiles.yml has no 'outputs:' mapping of targets", path=rel, line=1,
                           hint="add outputs: {dev: {path: target/dev.duckdb}}")
    name = str(requested or profile.get("target") or next(iter(outputs)))
    if name not in outputs:
        raise ProjectError(
            f"unknown target '{name}'",
            path=rel,
            line=lines.get(("target",), lines.get(("outputs",))),
            hint=f"choose one of: {', '.join(outputs)} (--target NAME)",
        )
    output = outputs[name] or {}
    if not isinstance(output, dict):
        raise ProjectError(f"target '{name}' must be a mapping", path=rel, line=lines.get(("outputs", name)))
    if output.get("type", "duckdb") not in ("duckdb", "spark"):
        raise ProjectError(f"target '{name}' has type '{output.get('type')}'; builds run on duckdb or spark",
                           path=rel, line=lines.get(("outputs", name, "type")), hint="set type: duckdb or type: spark")
    spark = _spark_target(name, output, root, rel, lines) if output.get("type") == "spark" else None
    threads = output.get("threads")
    if threads is not None and (not str(threads).isdigit() or int(threads) < 1):
        raise ProjectError(f"threads must be a positive integer, got '{threads}'", path=rel,
                           line=lines.get(("outputs", name, "threads")))
    temp = output.get("temp_directory")
    where = ("outputs", name)
    default_path = f"target/{name}.{'spark.json' if spark else 'duckdb'}"
    database = _under(root, as_text(output.get("path", default_path), "path", rel, lines.get((*where, "path"))))
    check_path_usable(database, "path", rel, lines.get((*where, "path")))
    if temp:
        check_path_usable(_under(root, as_text(temp, "temp_directory", rel, lines.get((*where, "temp_directory")))),
                          "temp_directory", rel, lines.get((*where, "temp_directory")), is_file=False)
    if output.get("memory_limit"):
        check_engine_setting("memory_limit", str(output["memory_limit"]), "memory_limit", rel,
                             lines.get((*where, "memory_limit")))
    return Target(
        name=name,
        database=database,
        threads=int(threads) if threads is not None else None,
        memory_limit=str(output["memory_limit"]) if output.get("memory_limit") else None,
        temp_directory=_under(root, temp) if temp else None,
        spark=spark,
        line=lines.get((*where, "path"), lines.get(where)),
    )


def _spark_target(name: str, output: dict, root: Path, rel: Path, lines: dict) -> SparkTarget:
    """master: local[N] (or a cluster manager) or remote: sc://host:port, a warehouse, conf: {key: value}."""
    where = ("outputs", name)
    master, remote = output.get("master"), output.get("remote")
    if master and remote:
        raise ProjectError(f"target '{name}' sets both master and remote", path=rel,
                           line=lines.get((*where, "remote")),
                           hint="master: local[2] starts Spark here; remote: sc://host:15002 uses a Spark Connect server")
    if remote and not str(remote).startswith("sc://"):
        raise ProjectError(f"remote must be a Spark Connect URL sc://host:port, got '{remote}'", path=rel,
                           line=lines.get((*where, "remote")))
    if master and not re.fullmatch(r"local(\[(\d+|\*)\])?|(spark|k8s|mesos)://\S+|yarn", str(master)):
        raise ProjectError(f"master must be local[N], local[*], spark://host:port, k8s://..., or yarn; got '{master}'",
                           path=rel, line=lines.get((*where, "master")))
    conf = output.get("conf") or {}
    if not isinstance(conf, dict) or any(isinstance(v, (dict, list)) for v in conf.values()):
        raise ProjectError("conf must be a mapping of Spark settings to values", path=rel,
                           line=lines.get((*where, "conf")), hint="conf: {spark.driver.memory: 2g}")
    warehouse = str(output.get("warehouse", "target/spark-warehouse"))
    return SparkTarget(
        master=str(master) if master else (None if remote else "local[*]"),
        remote=str(remote) if remote else None,
        warehouse=warehouse if "://" in warehouse else str(_under(root, warehouse)),
        conf=tuple(sorted((str(k), str(v).lower() if isinstance(v, bool) else str(v)) for k, v in conf.items())),
    )


def _grains(value: Any, path: Path, root: Path, lines: dict) -> tuple[Grain, ...]:
    values = value if isinstance(value, list) else [value]
    grains = []
    for item in values:
        try:
            grains.append(Grain(str(item)))
        except ValueError:
            raise ProjectError(f"unknown grain '{item}'", path=_rel(path, root), line=lines.get(("grains",)),
                               hint=f"grains are: {', '.join(g.value for g in Grain)}") from None
    if not grains:
        raise ProjectError("grains must list at least one grain", path=_rel(path, root), line=lines.get(("grains",)))
    return tuple(dict.fromkeys(grains))


def _mapping(value: Any, key: str, path: Path, root: Path, lines: dict) -> dict:
    if not isinstance(value, dict):
        raise ProjectError(f"'{key}' must be a mapping", path=_rel(path, root), line=lines.get((key,)))
    return value


def _sources(root: Path, variables: Mapping[str, Any], env_var: Any) -> tuple[Source, ...]:
    path = root / "models" / SOURCES_FILE
    if not path.is_file():
        return ()
    rel = _rel(path, root)

    def var(name: str, default: Any = None) -> Any:
        if name in variables:
            return variables[name]
        if default is None:
            raise TemplateCallError(f"variable '{name}' is not set", hint=f"set it under vars: in profiles.yml or --vars '{{{name}: ...}}'",
                                    error_class=ProjectError)
        return default

    data, lines = _read_yaml(path, root, {"env_var": env_var, "var": var})
    sources = []
    for i, group in enumerate((data or {}).get("sources") or []):
        if not isinstance(group, dict) or "name" not in group:
            raise ProjectError("each source needs a name", path=rel, line=lines.get(("sources", str(i))))
        for j, table in enumerate(group.get("tables") or []):
            where = ("sources", str(i), "tables", str(j))
            if not isinstance(table, dict) or "name" not in table or "location" not in table:
                raise ProjectError("each source table needs a name and a location (a Parquet path or glob)",
                                   path=rel, line=lines.get(where))
            sources.append(Source(
                source_name=str(group["name"]),
                table_name=str(table["name"]),
                location=str(_under(root, str(table["location"]))),
                hive_partitioning=as_bool(table.get("hive_partitioning", True), "hive_partitioning", rel,
                                          lines.get((*where, "hive_partitioning"), lines.get(where))),
                path=rel,
                line=lines.get((*where, "location"), lines.get(where, 1)),
                loaded_at_field=_loaded_at_field(group, table),
                freshness=source_freshness(group, table, rel, lines, where),
            ))
    return tuple(sources)


def _check_writes_inside(root: Path, profiles_path: Path, lines: dict, target: Target, target_dir: Path,
                         scorecard: Path) -> None:
    """Where a build writes, when profiles.yml is the project's own: inside the project, nowhere else."""
    checks = [(("outputs", target.name, "path"), target.database), (("target_path",), target_dir),
              (("scorecard_path",), scorecard)]
    if target.temp_directory is not None:
        checks.append((("outputs", target.name, "temp_directory"), target.temp_directory))
    for key, path in checks:
        if not _inside(root, path):
            raise ProjectError(
                f"{'.'.join(key)} points outside the project ({path}); the project's own profiles.yml writes only "
                "inside the project",
                path=_rel(profiles_path, root), line=lines.get(key, lines.get(key[:-1])),
                hint="use a path under the project folder, or keep a trusted profiles.yml elsewhere and pass "
                     "--profiles-dir DIR (see README, Threat model)")


def _check_files_inside(root: Path, *groups: list[Path]) -> None:
    """A project file that is a symlink out of the project (seeds/x.csv -> /etc/passwd) is refused, not read."""
    for path in (p for group in groups for p in group):
        if (path.is_symlink() or path.exists()) and not _inside(root, path):
            raise ProjectError("this file is a link to a file outside the project",
                               path=path.relative_to(root),
                               hint="commit the file itself, not a symlink; a project reads only its own files "
                                    "(sources.yml locations excepted)")


def _inside(root: Path, path: Path) -> bool:
    try:
        return path.resolve().is_relative_to(root)
    except (OSError, RuntimeError):  # a symlink loop
        return False


def _loaded_at_field(group: dict, table: dict) -> str | None:
    """A table's loaded_at_field, else its source's (dbt lets either declare it)."""
    value = table.get("loaded_at_field", group.get("loaded_at_field"))
    return str(value) if value else None


def _templates(root: Path, folder: str, kind: NodeKind) -> tuple[TemplateFile, ...]:
    files = sorted((root / folder).rglob("*.sql"))
    _check_files_inside(root, files)  # before reading: a link may point at any file of the machine
    return tuple(
        TemplateFile(name=p.stem, kind=kind, path=p, relpath=_rel(p, root), text=read_text(p, _rel(p, root))) for p in files
    )


def _check_unique_names(root: Path, seeds: tuple[Seed, ...], *groups: tuple[TemplateFile, ...]) -> None:
    """A name is a table name and a ref() target, so it must be unique across seeds, models and metrics."""
    seen: dict[str, Path] = {seed.name: _rel(seed.path, root) for seed in seeds}
    for template in (t for group in groups for t in group):
        if template.name in seen:
            raise ProjectError(
                f"duplicate name '{template.name}': {seen[template.name].as_posix()} has it too",
                path=template.relpath,
                line=1,
                hint="file names are node names and must be unique across models/, metrics/ and seeds/; rename one",
            )
        seen[template.name] = template.relpath


def _under(root: Path, value: str | Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else root / path


def _rel(path: Path, root: Path) -> Path:
    try:
        return path.resolve().relative_to(root)
    except ValueError:
        return path
