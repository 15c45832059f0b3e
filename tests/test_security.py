"""Attacks from a pull request, tried as an attacker would, through the CLI (build, compile, diff).

Each must end in a located error with a hint, no traceback, nothing of the file it aimed at in the
output, target/ or the published Parquet, and the previous scorecard byte-identical. README, "Threat
model", says what is trusted and what is not.
"""

from __future__ import annotations

import pickle
import re
import shutil
from pathlib import Path

import duckdb
import pytest
from test_diff import git
from test_errors import edit, run_cli

from northstar_pipeline import api
from northstar_pipeline.engines.duckdb import connect
from northstar_pipeline.errors import EXIT_HEAD_BROKEN, EXIT_PROJECT, RenderError
from northstar_pipeline.project import sandbox
from northstar_pipeline.project.connection import connect_confined, project_reads

MARKER = "NS-PLANTED-MARKER-7f3a9c"
SECRET = "NS-SECRET-VALUE-b41d0e"
EVIL = "models/evil.sql"


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    """A file outside the project that the attacks try to read."""
    path = tmp_path / "outside" / "passwd.csv"
    path.parent.mkdir()
    path.write_text(f"name,value\n{MARKER},1\n")
    return path


@pytest.fixture
def repo(demo_project: Path) -> Path:
    """The built demo project in a git repository (target/ ignored), one commit."""
    (demo_project / ".gitignore").write_text("target/\n")
    git(demo_project, "init", "-q")
    git(demo_project, "add", "-A")
    git(demo_project, "commit", "-qm", "base")
    return demo_project


def attacks(planted: Path) -> list[tuple[str, str, str]]:
    """(id, model text, words of the error)."""
    p = planted.as_posix()
    return [
        ("read_text", f"select content as x from read_text('{p}')", "read_text() is not allowed"),
        ("read_csv", f"select * from read_csv('{p}', header=true)", "is not allowed"),
        ("read_blob_environ", "select content as x from read_blob('/proc/self/environ')", "read_blob() is not allowed"),
        ("glob", f"select file from glob('{planted.parent.as_posix()}/*')", "glob() is not allowed"),
        ("query_string", f"select * from query('select * from read_csv(''{p}'')')", "query() is not allowed"),
        ("scalar_subquery", f"select 1 as a,\n  (select max(content) from read_text('{p}')) as x", "read_text() is not allowed"),
        ("quoted_path", f"select * from '{p}'", "is a file path"),
        ("cte_in_other_scope", f'select * from (with "{p}" as (select 1 as a) select a from "{p}") q,\n'
                               f'  (select * from "{p}") z', "is a file path"),
        ("ref_placeholder", f'select * from "__ref__"."{p}"', "placeholder schema without calling ref()"),
        ("unknown_catalog", "select * from system.main.duckdb_settings()", "is not allowed"),
        ("incremental_branch", "{{ config(materialized='incremental') }}\nselect 1 as a\n{% if is_incremental() %}\n"
                               f"union all select length(content) as a from read_text('{p}')\n{{% endif %}}",
         "read_text() is not allowed"),
        ("secret_in_template", "select '{{ env_var(\"NORTHSTAR_ENV_SECRET_X\") }}' as x", "is a secret"),
        ("power", "select {{ 9 ** (9 ** 9) }} as x", "too large"),
        ("repetition", "select '{{ 'a' * 10 ** 8 }}' as x", "too large"),
        ("range", "select {{ range(200000) | length }} as x", "range() of 200000 items"),
        ("format_width", "select '{{ '{:>999999999999}'.format(1) }}' as x", "format width"),
        ("namespace_doubling", "{% set ns = namespace(s='a') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}"
                               "{% endfor %}\nselect 1 as x", "namespace value 's'"),
        ("recursion", "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}\nselect {{ f(1) }} as x", "recursion too deep"),
    ]


def _ids() -> list[str]:
    return [a[0] for a in attacks(Path("/x"))]


def assert_contained(result, project: Path, before: bytes, words: str, location: str = EVIL,
                     line: bool = True, code: int = EXIT_PROJECT) -> None:
    """``code``: 1 for build and compile; 6 for diff, which still writes its report when the head is broken."""
    out = result.stdout + result.stderr
    assert result.returncode == code, out
    assert "Traceback" not in out
    assert words in result.stderr, result.stderr
    assert re.search(re.escape(location) + (r":\d+" if line else ""), result.stderr), result.stderr
    assert "hint:" in result.stderr
    assert MARKER not in out and SECRET not in out
    for path in (project / "target").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert MARKER.encode() not in data and SECRET.encode() not in data, path
    assert (project / "target" / "scorecard.parquet").read_bytes() == before


@pytest.mark.parametrize("attack", _ids())
def test_attack_is_stopped_by_build_compile_and_diff(attack: str, repo: Path, planted: Path) -> None:
    _, text, words = next(a for a in attacks(planted) if a[0] == attack)
    before = (repo / "target" / "scorecard.parquet").read_bytes()
    env = {"NORTHSTAR_ENV_SECRET_X": SECRET, "NS_PLANTED": MARKER}  # /proc/self/environ holds the marker
    (repo / EVIL).write_text(text + "\n")
    for command in ("build", "compile"):
        assert_contained(run_cli(repo, command, env=env), repo, before, words)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", f"attack {attack}")
    result = run_cli(repo, "diff", "HEAD~1", "HEAD", env=env)
    assert_contained(result, repo, before, words, code=EXIT_HEAD_BROKEN)
    assert "at HEAD" in result.stderr  # the side the attack came from


def test_cte_of_the_same_name_in_scope_is_a_cte(demo_project: Path, planted: Path) -> None:
    """The same quoted name is fine where the CTE is visible: it is the CTE, not the file."""
    p = planted.as_posix()
    (demo_project / EVIL).write_text(f'with "{p}" as (select 1 as a)\nselect * from (select a from "{p}") q\n')
    result = run_cli(demo_project, "build")
    assert result.returncode == 0, result.stderr
    assert duckdb.connect(str(demo_project / "target" / "dev.duckdb"), read_only=True).execute(
        "select a from staging.evil").fetchall() == [(1,)]


def test_allowed_table_functions_build(demo_project: Path) -> None:
    (demo_project / EVIL).write_text("select i from range(3) r(i)\nunion all select i from generate_series(5, 6) g(i)\n"
                                     "union all select unnest([9]) as i\n")
    result = run_cli(demo_project, "build")
    assert result.returncode == 0, result.stderr
    rows = duckdb.connect(str(demo_project / "target" / "dev.duckdb"), read_only=True).execute(
        "select i from staging.evil order by i").fetchall()
    assert rows == [(0,), (1,), (2,), (5,), (6,), (9,)]


def test_symlink_out_of_the_project(repo: Path, planted: Path) -> None:
    before = (repo / "target" / "scorecard.parquet").read_bytes()
    (repo / "seeds" / "evil.csv").symlink_to(planted)
    for command in ("build", "compile"):
        assert_contained(run_cli(repo, command), repo, before, "link to a file outside the project",
                         "seeds/evil.csv", line=False)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "a seed that is a link")
    result = run_cli(repo, "diff", "HEAD~1", "HEAD")
    assert_contained(result, repo, before, "link outside the project", "seeds/evil.csv", line=False,
                     code=EXIT_HEAD_BROKEN)
    assert "tarfile" not in result.stderr


def test_a_template_linked_out_of_the_project(demo_project: Path, planted: Path) -> None:
    before = (demo_project / "target" / "scorecard.parquet").read_bytes()
    (demo_project / EVIL).symlink_to(planted)
    assert_contained(run_cli(demo_project, "compile"), demo_project, before, "link to a file outside the project",
                     EVIL, line=False)


@pytest.mark.parametrize("key,old,new", [
    ("scorecard_path", "scorecard_path: target/scorecard.parquet", "scorecard_path: {out}/stolen.parquet"),
    ("path", "path: target/dev.duckdb", "path: {out}/stolen.duckdb"),
    ("target_path", "scorecard_path: target/scorecard.parquet",
     "scorecard_path: target/scorecard.parquet\ntarget_path: {out}/target"),
])
def test_profiles_of_the_project_write_only_inside_it(repo: Path, tmp_path: Path, key: str, old: str, new: str) -> None:
    before = (repo / "target" / "scorecard.parquet").read_bytes()
    out = tmp_path / "elsewhere"
    edit(repo / "profiles.yml", old, new.format(out=out))
    for command in ("build", "compile"):
        assert_contained(run_cli(repo, command), repo, before, "points outside the project", "profiles.yml")
    assert not out.exists()
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "write elsewhere")
    assert_contained(run_cli(repo, "diff", "HEAD~1", "HEAD"), repo, before, "points outside the project", "profiles.yml",
                     code=EXIT_HEAD_BROKEN)
    assert not out.exists()


def test_trusted_profiles_dir_may_write_elsewhere(demo_project: Path, tmp_path: Path) -> None:
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    out = tmp_path / "published" / "scorecard.parquet"
    text = (demo_project / "profiles.yml").read_text().replace("scorecard_path: target/scorecard.parquet",
                                                               f"scorecard_path: {out}")
    (trusted / "profiles.yml").write_text(text)
    result = run_cli(demo_project, "build", "--profiles-dir", str(trusted))
    assert result.returncode == 0, result.stderr
    assert out.is_file()


class _Planter:
    """A pickle that writes a file when it is loaded: what a committed compile.pkl could do."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.write_text, (self.path, MARKER))


def test_a_committed_cache_runs_nothing_and_is_not_trusted(demo_project: Path, tmp_path: Path) -> None:
    cache = demo_project / "target" / ".cache"
    ran = tmp_path / "pwned"
    (cache / "compile.pkl").write_bytes(pickle.dumps(_Planter(ran)))
    # A forged JSON cache: the real one with a node's SQL changed (its MAC no longer verifies).
    real = (cache / "compile.json").read_bytes()
    assert b"stg_orders" in real
    (cache / "compile.json").write_bytes(real.replace(b"where event_type = 'order_placed'",
                                                      f"where event_type = '{MARKER}'".encode()))
    result = run_cli(demo_project, "compile")
    assert result.returncode == 0, result.stderr
    assert not ran.exists()
    assert MARKER not in (demo_project / "target" / "compiled" / "duckdb" / "models" / "stg_orders.sql").read_text()
    assert MARKER.encode() not in (cache / "compile.json").read_bytes()  # rebuilt
    (cache / "compile.json").write_bytes(b'{"format": "northstar-compile-cache"}\n[1, 2')  # damaged
    assert run_cli(demo_project, "compile").returncode == 0


def test_env_var_values_are_hashed_in_the_cache(demo_project: Path) -> None:
    edit(demo_project / "models" / "stg_orders.sql", "where event_type = 'order_placed'",
         "where event_type = 'order_placed' and '{{ env_var('NS_UNUSED_MARK', 'x') }}' = 'x'")
    result = run_cli(demo_project, "compile", env={"NS_UNUSED_MARK": "x"})
    assert result.returncode == 0
    unused = run_cli(demo_project, "compile", env={"NS_UNUSED_MARK": "x", "NS_OTHER": MARKER})
    assert unused.returncode == 0
    text = (demo_project / "target" / ".cache" / "compile.json").read_text()
    assert "NS_UNUSED_MARK" in text and '"x"]' not in text and MARKER not in text


def test_a_secret_in_profiles_never_reaches_target_or_logs(demo_project: Path) -> None:
    edit(demo_project / "profiles.yml", "    path: target/dev.duckdb",
         "    path: target/dev.duckdb\n    token: \"{{ env_var('NORTHSTAR_ENV_SECRET_X') }}\"")
    env = {"NORTHSTAR_ENV_SECRET_X": SECRET}
    result = run_cli(demo_project, "build", "--log-format", "json", env=env)
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stdout + result.stderr
    for path in (demo_project / "target").rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_a_secret_where_northstar_writes_it_is_refused(demo_project: Path) -> None:
    edit(demo_project / "profiles.yml", "  lookback_days: 3",
         "  lookback_days: 3\n  token: \"{{ env_var('NORTHSTAR_ENV_SECRET_X') }}\"")
    before = (demo_project / "target" / "scorecard.parquet").read_bytes()
    result = run_cli(demo_project, "build", env={"NORTHSTAR_ENV_SECRET_X": SECRET})
    assert_contained(result, demo_project, before, "the secret NORTHSTAR_ENV_SECRET_X is used in 'vars.token'",
                     "profiles.yml")
    # An error message that would quote the value shows *** instead.
    edit(demo_project / "profiles.yml", "  token: \"{{ env_var('NORTHSTAR_ENV_SECRET_X') }}\"",
         "  token: \"{{ {}[env_var('NORTHSTAR_ENV_SECRET_X')] }}\"")
    result = run_cli(demo_project, "build", env={"NORTHSTAR_ENV_SECRET_X": SECRET})
    assert result.returncode == EXIT_PROJECT and SECRET not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("text,words", [
    ("{{ 'a' | center(10 ** 10) }}", "center() with"),
    ("{{ 'a'.ljust(10 ** 10) }}", "ljust() with"),
    ("{{ '%999999999999d' % 1 }}", "format width of"),
    ("{{ '%*d' % (10 ** 12, 1) }}", "format width given as an argument"),
    ("{{ '{:>{w}}'.format(1, w=10 ** 12) }}", "format width given as an argument"),
    ("{{ '%999999999999d' | format(1) }}", "format width of"),
    ("{% for i in range(100000) %}{{ 'x' * 999999 }}{% endfor %}", "longer than 10000000 characters"),
    ("{{ [1] * 10 ** 7 }}", "too large"),
    ("{{ 'ab' * 600000 + 'cd' * 600000 }}", "too large"),
])
def test_jinja_work_is_bounded(text: str, words: str, demo_project: Path) -> None:
    (demo_project / EVIL).write_text(f"select 1 as x -- {text}\n")
    with pytest.raises(RenderError, match=re.escape(words)) as info:
        api.compile_project(api.load(demo_project))
    assert info.value.path == Path(EVIL) and "too much work" in info.value.message


def test_ordinary_jinja_still_renders(demo_project: Path) -> None:
    (demo_project / EVIL).write_text(
        "{% set ns = namespace(n=0) %}{% for i in range(3) %}{% set ns.n = ns.n + i %}{% endfor %}"
        "select '{{ 'ab' | center(6) | indent(2) | truncate(5) }}' as a, {{ '%03d' % 7 }} as b,\n"
        "  '{{ '{}-{:>3}'.format(1, 2) }}' as c, {{ ns.n }} as d, {{ 2 ** 10 }} as e, '{{ 'x' * 3 }}' as f\n")
    api.compile_project(api.load(demo_project))
    text = (demo_project / "target" / "compiled" / "duckdb" / EVIL).read_text()
    for expected in ("'  ab  ' AS a", "007 AS b", "'1-  2' AS c", "3 AS d", "1024 AS e", "'xxx' AS f"):
        assert expected in text, text


def test_render_time_is_bounded(demo_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "RENDER_SECONDS", 0.2)
    (demo_project / EVIL).write_text("{% for i in range(100000) %}{% for j in range(100000) %}"
                                     "{% endfor %}{% endfor %}select 1 as x\n")
    with pytest.raises(RenderError, match="longer than 0.2 s") as info:
        api.compile_project(api.load(demo_project))
    assert info.value.path == Path(EVIL)


def test_the_build_connection_is_confined(demo_project: Path, planted: Path) -> None:
    """Behind the compile check: the engine itself refuses files outside the project and any widening."""
    project = api.load(demo_project)
    con = connect(project.target, reads=project_reads(project))
    try:
        for sql in (f"select * from read_text('{planted}')", "select * from read_blob('/proc/self/environ')",
                    "set enable_external_access = true", "set allowed_directories = ['/']",
                    "set lock_configuration = false", "install httpfs", "load httpfs",
                    f"copy (select 1) to '{planted.parent / 'out.csv'}'", f"attach '{planted.parent / 'x.duckdb'}'"):
            with pytest.raises(duckdb.Error):
                con.execute(sql)
        # What the project needs still works: its sources (an absolute glob here) and its seeds.
        assert con.execute(f"select count(*) from read_parquet('{project.sources[0].location}')").fetchall()[0][0] > 0
        assert con.execute(f"select count(*) from read_csv('{project.seeds[0].path}')").fetchall()[0][0] > 0
    finally:
        con.close()
    assert not (planted.parent / "out.csv").exists()
    shadow = connect_confined()
    with pytest.raises(duckdb.Error):
        shadow.execute(f"select * from read_text('{planted}')")


def test_relative_sources_and_a_spill_directory_still_build(demo_project: Path, warehouse) -> None:
    shutil.copytree(warehouse.events_dir, demo_project / "lake" / "events")
    text = (demo_project / "profiles.yml").read_text()
    text = re.sub(r"events_path: .*", "events_path: lake/events", text)
    text = text.replace("    path: target/dev.duckdb", "    path: target/dev.duckdb\n    temp_directory: target/spill")
    (demo_project / "profiles.yml").write_text(text)
    result = run_cli(demo_project, "build", "--full-refresh")
    assert result.returncode == 0, result.stderr
    assert (demo_project / "target" / "scorecard.parquet").is_file()


def test_diff_does_not_read_a_new_location(repo: Path, tmp_path: Path, warehouse) -> None:
    """A change that points a source at another folder of the machine: its data would reach the PR comment."""
    before = (repo / "target" / "scorecard.parquet").read_bytes()
    elsewhere = tmp_path / "private" / "events"
    shutil.copytree(warehouse.events_dir, elsewhere)
    text = re.sub(r"events_path: .*", f"events_path: {elsewhere}", (repo / "profiles.yml").read_text())
    (repo / "profiles.yml").write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "read another lake")
    result = run_cli(repo, "diff", "HEAD~1", "HEAD")
    assert_contained(result, repo, before, "outside every location the base revision reads", "models/sources.yml",
                     code=EXIT_HEAD_BROKEN)
