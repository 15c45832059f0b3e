"""Benchmark driver: northstar build vs the hand-written limit vs dbt-duckdb, and compile at scale.

    python benchmarks/run.py --sizes 1000000 10000000 100000000        # what `make bench` runs

For each size it generates the demo warehouse once (``northstar demo-data``, same seed, timed),
then times, as whole processes and cold (their output directories removed first), ``northstar
build`` of a copy of the demo project, ``benchmarks/handwritten.py`` and ``dbt run`` of
``benchmarks/dbt_project``: ``--runs`` rounds (one at ``--single-run-from`` events and above),
interleaved, keeping min, median and the peak RSS of each process (``os.wait4``). It then checks
that the three produce the same metric values (1e-9 relative) and records everything in
``--results`` (JSON). The compile experiment times ``northstar compile`` cold and warm on a
generated 1,000-metric project against ``dbt parse --no-partial-parse`` + ``dbt compile``.
Finally it rewrites the generated blocks of ``--report`` (BENCHMARKS.md) and ``--plot``.

dbt and matplotlib live in their own virtualenv (``--bench-venv``, created on first use); if it
cannot be installed the driver records why and runs the rest. It exits 1 when a run failed or
values differ, after writing the results and the report.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import duckdb

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import compile_project  # noqa: E402  (siblings of this script)
import report  # noqa: E402

METRICS = ("on_time_orders", "ordering_customers", "orders_per_customer", "on_time_rate", "items_per_order",
           "new_customers", "push_click_through_rate", "search_to_cart_rate", "avg_delivery_minutes_late",
           "support_tickets_per_order")
DEMO_PARTS = ("profiles.yml", "dimensions.yml", "models", "metrics", "seeds", "macros")
DBT_REQUIREMENTS = ("dbt-core<1.12", "dbt-duckdb", "matplotlib")  # dbt-core 1.12 does not install here
REL_TOL, ABS_TOL = 1e-9, 1e-12


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.report_only:
        results = json.loads(args.results.read_text())
        _write_outputs(results, args)
        return 0
    args.work.mkdir(parents=True, exist_ok=True)
    byte_compile_package()
    results: dict = {
        "started_at": _now(), "machine": machine_info(), "versions": versions(),
        "settings": {"sizes": args.sizes, "runs": args.runs, "single_run_from": args.single_run_from,
                     "seed": args.seed, "memory_limit": args.memory_limit, "duckdb_threads": 2,
                     "dbt_threads": args.dbt_threads, "rel_tol": REL_TOL},
        "bench_venv": None, "data": [], "sizes": [], "compile": None, "errors": [],
    }
    bench = BenchVenv(args.bench_venv)
    if not args.no_dbt:
        results["bench_venv"] = bench.ensure(args.work / "logs" / "bench-venv-install.log")
        results["versions"].update(bench.versions())
    elif bench.ready():
        results["bench_venv"] = {"status": "present", "used_for": "plot only (--no-dbt)"}
    use_dbt = not args.no_dbt and bench.ready()
    for size in args.sizes:
        _log(f"== {size:,} events")
        data = ensure_data(size, args.seed, args.work)
        results["data"].append(data)
        results["sizes"].append(run_size(size, data, args, bench if use_dbt else None, results["errors"]))
        _save(results, args.results)
    if not args.no_compile:
        _log(f"== compile experiment: {args.compile_metrics:,} metrics")
        results["compile"] = run_compile_experiment(args, bench if use_dbt else None, results["errors"])
    results["finished_at"] = _now()
    results["machine"]["loadavg_end"] = list(os.getloadavg())
    checks = [c for s in results["sizes"] for c in s["checks"].values()]
    results["values_equal"] = bool(checks) and all(c["passed"] for c in checks)
    _save(results, args.results)
    _write_outputs(results, args)
    failed = results["errors"] or not results["values_equal"]
    _log(f"values equal: {results['values_equal']}; errors: {len(results['errors'])}; results: {args.results}")
    return 1 if failed else 0


def byte_compile_package() -> None:
    """Write northstar_pipeline's .pyc files, as installing a wheel does.

    An editable install under PYTHONDONTWRITEBYTECODE=1 (set on this machine) would otherwise
    recompile every module from source in each timed process, about 0.1 s that no user pays.
    """
    package = HERE.parent / "northstar_pipeline"
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000, 100_000_000],
                        help="event counts to generate and build (default: 1M 10M 100M)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per tool and size (default: 3)")
    parser.add_argument("--single-run-from", type=int, default=100_000_000,
                        help="sizes at or above this run once (default: 100M)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--memory-limit", default="4GB", help="DuckDB memory limit for all three (default: 4GB)")
    parser.add_argument("--dbt-threads", type=int, default=1, help="dbt's model threads (default: 1)")
    parser.add_argument("--no-dbt", action="store_true", help="skip dbt (and its virtualenv install)")
    parser.add_argument("--no-compile", action="store_true", help="skip the 1,000-metric compile experiment")
    parser.add_argument("--no-plot", action="store_true", help="do not draw the plot")
    parser.add_argument("--compile-metrics", type=int, default=1000)
    parser.add_argument("--compile-events", type=int, default=20_000, help="warehouse size of the compile project")
    parser.add_argument("--work", type=Path, default=HERE / "work", help="data, project copies, logs")
    parser.add_argument("--results", type=Path, default=HERE / "results.json")
    parser.add_argument("--report", type=Path, default=HERE.parent / "BENCHMARKS.md",
                        help="Markdown report whose generated blocks are rewritten")
    parser.add_argument("--plot", type=Path, default=HERE / "plot.png", help="PNG plot (default: benchmarks/plot.png)")
    parser.add_argument("--bench-venv", type=Path, default=HERE / ".venv-dbt", help="virtualenv of dbt + matplotlib")
    parser.add_argument("--report-only", action="store_true", help="only rewrite the report and plot from --results")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    for name in ("work", "results", "report", "bench_venv"):
        setattr(args, name, getattr(args, name).resolve())
    args.plot = args.plot.resolve()
    return args


# --- measuring a process ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Measured:
    seconds: float
    peak_rss_mb: float  # the process's and its descendants' peak resident set (ru_maxrss from wait4)
    returncode: int


def measure(cmd: list[str], *, log: Path, cwd: Path = REPO, env: dict[str, str] | None = None) -> Measured:
    """Run cmd to completion, output to log; wall seconds and peak RSS of exactly this process tree."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    scale = 2**20 if sys.platform == "darwin" else 2**10  # ru_maxrss: bytes on macOS, KiB on Linux
    return Measured(seconds, usage.ru_maxrss / scale, proc.returncode)


def summarize(runs: list[Measured]) -> dict:
    ok = [r for r in runs if r.returncode == 0]
    seconds = [r.seconds for r in ok]
    return {
        "runs": [asdict(r) for r in runs],
        "min": min(seconds) if seconds else None,
        "median": statistics.median(seconds) if seconds else None,
        "peak_rss_mb": max(r.peak_rss_mb for r in ok) if ok else None,
        "ok": len(ok) == len(runs),
    }


# --- data ---------------------------------------------------------------------------------------------------------


def ensure_data(size: int, seed: int, work: Path) -> dict:
    """Generate the warehouse for (size, seed) once; later runs of the driver reuse it and its timing."""
    out = work / "data" / f"events-{size}-seed{seed}"
    marker = out / "generation.json"
    generator = _generator_version()
    if marker.is_file() and (out / "events").is_dir():
        data = json.loads(marker.read_text())
        if data.get("generator") == generator:
            _log(f"reusing {out} (generated in {data['seconds']:.1f}s)")
            return {**data, "reused": True}
    cmd = _northstar() + ["demo-data", "--events", str(size), "--seed", str(seed), "--out", str(out)]
    _log(f"generating {size:,} events")
    measured = measure(cmd, log=work / "logs" / f"demo-data-{size}.log")
    if measured.returncode:
        raise SystemExit(f"demo-data failed, see {work / 'logs' / f'demo-data-{size}.log'}")
    with duckdb.connect() as con:
        events = con.execute("SELECT count(*) FROM read_parquet($g, hive_partitioning = true)",
                             {"g": f"{out}/events/**/*.parquet"}).fetchall()[0][0]
    parquet_bytes = sum(p.stat().st_size for p in (out / "events").rglob("*.parquet"))
    data = {"size": size, "seed": seed, "events_dir": str(out / "events"), "rows": int(events),
            "parquet_mb": parquet_bytes / 2**20, "seconds": measured.seconds, "peak_rss_mb": measured.peak_rss_mb,
            "generator": generator, "command": _show(cmd), "generated_at": _now()}
    marker.write_text(json.dumps(data, indent=2) + "\n")
    return {**data, "reused": False}


def _generator_version() -> str:
    """Data is reused only if made by the same generator source on the same DuckDB."""
    from northstar_pipeline.demo import demo_data

    digest = hashlib.sha256(Path(demo_data.__file__).read_bytes()).hexdigest()[:12]
    return f"{digest}-duckdb{duckdb.__version__}"


# --- one size: ours, the limit, the peer --------------------------------------------------------------------------


def run_size(size: int, data: dict, args: argparse.Namespace, bench: BenchVenv | None, errors: list) -> dict:
    events_dir = Path(data["events_dir"])
    projects, logs, outs = args.work / "projects", args.work / "logs", args.work / "out"
    ours_dir = _copy_demo_project(projects / f"northstar-{size}")
    dbt_dir = _copy_dbt_project(projects / f"dbt-{size}") if bench else None
    hand_out, hand_profile = outs / f"handwritten-{size}.parquet", outs / f"handwritten-{size}.profile.json"
    vars_arg = f"{{events_path: {events_dir}}}"

    ours_cmd = _northstar() + ["build", "--project-dir", str(ours_dir), "--vars", vars_arg]
    ours_env = {**_clean_env(), "NORTHSTAR_MEMORY_LIMIT": args.memory_limit}
    hand_cmd = [sys.executable, str(HERE / "handwritten.py"), "--events-dir", str(events_dir), "--out", str(hand_out),
                "--memory-limit", args.memory_limit, "--threads", "2",
                "--temp-directory", str(args.work / "spill" / "handwritten"), "--profile", str(hand_profile)]
    commands = {"northstar build": f"NORTHSTAR_MEMORY_LIMIT={shlex.quote(args.memory_limit)} {_show(ours_cmd)}",
                "handwritten": _show(hand_cmd)}
    if bench:
        dbt_cmd = [str(bench.dbt), "run", "--project-dir", str(dbt_dir), "--profiles-dir", str(dbt_dir),
                   "--vars", vars_arg]
        dbt_env = {**_clean_env(), **_dbt_env(dbt_dir, args)}
        env_text = " ".join(f"{k}={shlex.quote(v)}" for k, v in _dbt_env(dbt_dir, args).items())
        commands["dbt run"] = f"{env_text} {_show(dbt_cmd)}"

    rounds = args.runs if size < args.single_run_from else 1
    ours, hand, dbt = [], [], []
    for i in range(rounds):
        _log(f"round {i + 1}/{rounds}")
        shutil.rmtree(ours_dir / "target", ignore_errors=True)
        ours.append(measure(ours_cmd, log=logs / f"northstar-{size}-{i}.log", env=ours_env))
        _log(f"  northstar build  {ours[-1].seconds:8.2f}s  {ours[-1].peak_rss_mb:8.0f} MB  rc={ours[-1].returncode}")
        hand_out.unlink(missing_ok=True)
        hand.append(measure(hand_cmd, log=logs / f"handwritten-{size}-{i}.log"))
        _log(f"  handwritten      {hand[-1].seconds:8.2f}s  {hand[-1].peak_rss_mb:8.0f} MB  rc={hand[-1].returncode}")
        if bench:
            for stale in ("target", "logs"):
                shutil.rmtree(dbt_dir / stale, ignore_errors=True)
            for stale in dbt_dir.glob("bench.duckdb*"):
                stale.unlink()
            dbt.append(measure(dbt_cmd, log=logs / f"dbt-{size}-{i}.log", cwd=dbt_dir, env=dbt_env))
            _log(f"  dbt run          {dbt[-1].seconds:8.2f}s  {dbt[-1].peak_rss_mb:8.0f} MB  rc={dbt[-1].returncode}")

    # The nightly pattern: the same build again on the last round's target/, so incremental models add a
    # batch (the lookback's partitions) instead of rebuilding history. Untimed by the goals; reported apart.
    nightly = None
    scorecard = ours_dir / "target" / "scorecard.parquet"
    full_scorecard = outs / f"northstar-{size}.parquet"
    full_run_results = outs / f"northstar-{size}.run_results.json"
    full_run_results.unlink(missing_ok=True)
    if ours[-1].returncode == 0:
        shutil.copyfile(scorecard, full_scorecard)  # the nightly run republishes both
        shutil.copyfile(ours_dir / "target" / "run_results.json", full_run_results)
        nightly = measure(ours_cmd, log=logs / f"northstar-nightly-{size}.log", env=ours_env)
        _log(f"  northstar nightly {nightly.seconds:8.2f}s  {nightly.peak_rss_mb:8.0f} MB  rc={nightly.returncode}")
        if nightly.returncode:
            errors.append({"size": size, "tool": "northstar nightly", "returncode": nightly.returncode,
                           "log_tail": _tail(logs / f"northstar-nightly-{size}.log")})

    result = {"size": size, "rows": data["rows"], "rounds": rounds, "commands": commands,
              "northstar": summarize(ours), "handwritten": summarize(hand),
              "northstar_nightly": summarize([nightly]) if nightly else None,
              "dbt": summarize(dbt) if bench else None, "checks": {}, "profiles": {}}
    for name, runs, log in (("northstar", ours, "northstar"), ("handwritten", hand, "handwritten"),
                            ("dbt", dbt, "dbt")):
        if runs and runs[-1].returncode:
            errors.append({"size": size, "tool": name, "returncode": runs[-1].returncode,
                           "log_tail": _tail(logs / f"{log}-{size}-{rounds - 1}.log")})

    if hand[-1].returncode == 0:
        expected = read_values(hand_out)
        if nightly is not None and nightly.returncode == 0:  # the scorecard on disk is the nightly run's
            result["checks"]["northstar_nightly_vs_handwritten"] = compare_values(expected, read_values(scorecard),
                                                                                  spine=True)
        if ours[-1].returncode == 0:
            result["checks"]["northstar_vs_handwritten"] = compare_values(expected, read_values(full_scorecard),
                                                                          spine=True)
        if bench and dbt[-1].returncode == 0:
            dbt_out = outs / f"dbt-{size}.parquet"
            bench.export_table(dbt_dir / "bench.duckdb", "main.metric_values", dbt_out)
            result["checks"]["dbt_vs_handwritten"] = compare_values(expected, read_values(dbt_out), spine=False)
    for name, check in result["checks"].items():
        _log(f"  {name}: {'equal' if check['passed'] else 'DIFFERENT'} ({check['compared']} values)")
    result["profiles"] = _profiles(full_run_results, hand_profile, dbt_dir if bench else None, ours, dbt)
    if nightly is not None and nightly.returncode == 0:
        profile = _northstar_profile(ours_dir / "target" / "run_results.json", nightly.seconds)
        if profile:
            result["profiles"]["northstar_nightly"] = profile
    databases = [*(ours_dir / "target").glob("*.duckdb*"), *(dbt_dir.glob("bench.duckdb*") if dbt_dir else ())]
    for database in databases:  # gigabytes at 100M; the values and profiles are read already
        database.unlink()
    shutil.rmtree(args.work / "spill", ignore_errors=True)
    return result


def _northstar_profile(run_results: Path, process_seconds: float) -> dict | None:
    """Per node seconds, rows and (incremental models) mode, slowest first, from a build's run_results.json."""
    if not run_results.is_file():
        return None
    payload = json.loads(run_results.read_text())
    nodes = sorted(payload.get("results", []), key=lambda r: -r["seconds"])
    return {"process_seconds": process_seconds, "build_seconds": payload.get("elapsed_seconds"),
            "nodes_seconds": sum(r["seconds"] for r in nodes),
            "nodes": [{"node": r["relation"], "seconds": r["seconds"], "rows": r["rows"], "mode": r.get("mode")}
                      for r in nodes]}


def _profiles(run_results: Path, hand_profile: Path, dbt_dir: Path | None, ours: list[Measured],
              dbt: list[Measured]) -> dict:
    """Where the time of the last run went: per node for northstar and dbt, per step for the hand script."""
    profiles: dict = {}
    profile = _northstar_profile(run_results, ours[-1].seconds)
    if profile:
        profiles["northstar"] = profile
    if hand_profile.is_file():
        profiles["handwritten"] = json.loads(hand_profile.read_text())
    if dbt_dir is not None and (dbt_dir / "target" / "run_results.json").is_file():
        payload = json.loads((dbt_dir / "target" / "run_results.json").read_text())
        nodes = sorted(payload["results"], key=lambda r: -r["execution_time"])
        profiles["dbt"] = {
            "process_seconds": dbt[-1].seconds, "run_seconds": payload.get("elapsed_time"),
            "nodes_seconds": sum(r["execution_time"] for r in nodes),
            "nodes": [{"node": r["unique_id"].split(".")[-1], "seconds": r["execution_time"]} for r in nodes],
        }
    return profiles


def _copy_demo_project(dest: Path) -> Path:
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for part in DEMO_PARTS:
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, dest / part)
        elif source.is_file():
            shutil.copy(source, dest / part)
    return dest


def _copy_dbt_project(dest: Path) -> Path:
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(HERE / "dbt_project", dest, ignore=shutil.ignore_patterns("target", "logs", "*.duckdb*"))
    return dest


def _dbt_env(project: Path, args: argparse.Namespace) -> dict[str, str]:
    return {"DBT_BENCH_DIR": str(project), "DBT_BENCH_THREADS": str(args.dbt_threads),
            "DBT_BENCH_MEMORY_LIMIT": args.memory_limit, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}


# --- value checks -------------------------------------------------------------------------------------------------


def read_values(path: Path) -> dict[tuple[str, str, str], float | None]:
    """(metric, grain, period_start) -> value for the demo metrics in a Parquet file."""
    with duckdb.connect() as con:
        rows = con.execute(
            "SELECT metric, grain, CAST(period_start AS VARCHAR), CAST(value AS DOUBLE) FROM read_parquet($p) "
            "WHERE list_contains($m, metric)", {"p": str(path), "m": list(METRICS)}).fetchall()
    values: dict[tuple[str, str, str], float | None] = {}
    for metric, grain, period, value in rows:
        key = (metric, grain, period)
        if key in values:
            raise ValueError(f"{path}: two rows for {key}")
        values[key] = value
    return values


def compare_values(expected: dict, got: dict, *, spine: bool) -> dict:
    """Every expected value must be in got (1e-9 relative). Extra rows in got are allowed only with spine=True
    and only as the scorecard's period spine: value 0 or null in a period without data."""
    mismatches = []
    for key, want in sorted(expected.items()):
        have = got.get(key, "missing")
        if not _same(want, have):
            mismatches.append({"key": list(key), "expected": want, "got": have})
    extra = {k: v for k, v in got.items() if k not in expected}
    bad_extra = [{"key": list(k), "got": v} for k, v in sorted(extra.items()) if not (spine and v in (None, 0.0))]
    metrics_seen = {k[0] for k in expected}
    return {"passed": not mismatches and not bad_extra and metrics_seen == set(METRICS),
            "compared": len(expected), "extra_spine_rows": len(extra) - len(bad_extra),
            "mismatches": len(mismatches), "unexpected_rows": len(bad_extra),
            "metrics": sorted(metrics_seen), "examples": (mismatches + bad_extra)[:5]}


def _same(want: float | None, have: object) -> bool:
    if want is None or have is None or have == "missing":
        return want is None and have is None
    return abs(want - have) <= max(REL_TOL * abs(want), ABS_TOL)


# --- compile at scale ---------------------------------------------------------------------------------------------


def run_compile_experiment(args: argparse.Namespace, bench: BenchVenv | None, errors: list) -> dict:
    root = args.work / f"compile{args.compile_metrics}"
    logs = args.work / "logs"
    data = ensure_data(args.compile_events, args.seed, args.work)
    vars_arg = f"{{events_path: {data['events_dir']}}}"
    ours_dir = compile_project.write_northstar_project(root / "northstar", args.compile_metrics)
    compile_cmd = _northstar() + ["compile", "--project-dir", str(ours_dir), "--vars", vars_arg]
    env = _clean_env()
    result: dict = {"metrics": args.compile_metrics, "events": args.compile_events,
                    "edited_metric": compile_project.EDITED_METRIC,
                    "commands": {"northstar compile": _show(compile_cmd)}}

    cold, warm = [], []
    for i in range(args.runs):
        shutil.rmtree(ours_dir / "target", ignore_errors=True)
        cold.append(measure(compile_cmd, log=logs / f"compile-cold-{i}.log", env=env))
        _log(f"  northstar compile cold {cold[-1].seconds:7.2f}s rc={cold[-1].returncode}")
    for i in range(args.runs):
        compile_project.edit_metric(ours_dir, "northstar", i)
        warm.append(measure(compile_cmd, log=logs / f"compile-warm-{i}.log", env=env))
        _log(f"  northstar compile warm {warm[-1].seconds:7.2f}s rc={warm[-1].returncode}")
    result["northstar_cold"], result["northstar_warm"] = summarize(cold), summarize(warm)
    result["profiles"] = _compile_profiles(ours_dir, compile_cmd, env, root, args.runs)
    for name, runs in (("cold", cold), ("warm", warm)):
        if runs[-1].returncode:
            errors.append({"tool": f"northstar compile ({name})", "returncode": runs[-1].returncode,
                           "log_tail": _tail(logs / f"compile-{name}-{args.runs - 1}.log")})

    if bench:
        dbt_dir = compile_project.write_dbt_project(root / "dbt", args.compile_metrics)
        dbt_env = {**env, **_dbt_env(dbt_dir, args)}
        common = ["--project-dir", str(dbt_dir), "--profiles-dir", str(dbt_dir), "--vars", vars_arg]
        parse_cmd = [str(bench.dbt), "parse", "--no-partial-parse"] + common
        dbt_compile_cmd = [str(bench.dbt), "compile"] + common
        result["commands"]["dbt parse"] = _show(parse_cmd)
        result["commands"]["dbt compile"] = _show(dbt_compile_cmd)
        parses, compiles, totals = [], [], []
        for i in range(args.runs):
            shutil.rmtree(dbt_dir / "target", ignore_errors=True)
            parses.append(measure(parse_cmd, log=logs / f"dbt-parse-{i}.log", cwd=dbt_dir, env=dbt_env))
            compiles.append(measure(dbt_compile_cmd, log=logs / f"dbt-compile-{i}.log", cwd=dbt_dir, env=dbt_env))
            totals.append(Measured(parses[-1].seconds + compiles[-1].seconds,
                                   max(parses[-1].peak_rss_mb, compiles[-1].peak_rss_mb),
                                   parses[-1].returncode or compiles[-1].returncode))
            _log(f"  dbt parse {parses[-1].seconds:7.2f}s + dbt compile {compiles[-1].seconds:7.2f}s "
                 f"rc={totals[-1].returncode}")
        result["dbt_parse"], result["dbt_compile"], result["dbt_total"] = (
            summarize(parses), summarize(compiles), summarize(totals))
        if totals[-1].returncode:
            errors.append({"tool": "dbt parse + compile", "returncode": totals[-1].returncode,
                           "log_tail": _tail(logs / f"dbt-compile-{args.runs - 1}.log")})
    return result


def _compile_profiles(ours_dir: Path, compile_cmd: list[str], env: dict, root: Path, runs: int) -> dict:
    """One extra, untimed cold and warm compile under cProfile: the top functions by cumulative time."""
    import pstats

    profiles = {}
    for name in ("cold", "warm"):
        if name == "cold":
            shutil.rmtree(ours_dir / "target", ignore_errors=True)
        else:
            compile_project.edit_metric(ours_dir, "northstar", runs)
        out = root / f"compile-{name}.prof"
        cmd = [sys.executable, "-m", "cProfile", "-o", str(out), "-m", "northstar_pipeline"] + compile_cmd[
            len(_northstar()):]
        completed = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if completed.returncode or not out.is_file():
            continue
        stats = pstats.Stats(str(out))
        total = stats.total_tt  # type: ignore[attr-defined]
        rows = [{"function": f"{_short(path)}:{line}({func})", "calls": calls, "own": own, "cumulative": cumulative}
                for (path, line, func), (_, calls, own, cumulative, _) in stats.stats.items()]  # type: ignore[attr-defined]
        inner = [r for r in rows if r["cumulative"] < 0.95 * total]  # leave out main() and the frames around it
        profiles[name] = {"total": total,
                          "top": sorted(inner, key=lambda r: -r["cumulative"])[:20],
                          "top_own": sorted(rows, key=lambda r: -r["own"])[:10]}
    return profiles


def _short(path: str) -> str:
    return "/".join(Path(path).parts[-2:])


# --- the bench virtualenv (dbt + matplotlib) ----------------------------------------------------------------------


class BenchVenv:
    """benchmarks/.venv-dbt: dbt-core<1.12, dbt-duckdb and matplotlib, kept out of northstar's dependencies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.python = path / "bin" / "python"
        self.dbt = path / "bin" / "dbt"
        self.marker = path / ".bench-requirements"

    def ready(self) -> bool:
        return self.dbt.is_file() and self.marker.is_file() and self.marker.read_text().split("\n") == list(
            DBT_REQUIREMENTS)

    def ensure(self, log: Path) -> dict:
        """Create and install once (idempotent); on failure record it and let the rest run."""
        if self.ready():
            return {"status": "present", "path": _show_path(self.path), "requirements": list(DBT_REQUIREMENTS)}
        _log(f"installing {' '.join(DBT_REQUIREMENTS)} into {self.path}")
        log.parent.mkdir(parents=True, exist_ok=True)
        steps = [[sys.executable, "-m", "venv", str(self.path)],
                 [str(self.python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
                 [str(self.python), "-m", "pip", "install", *DBT_REQUIREMENTS]]
        started = time.perf_counter()
        with log.open("w") as out:
            for step in steps:
                out.write(f"$ {shlex.join(step)}\n")
                out.flush()
                if subprocess.run(step, stdout=out, stderr=subprocess.STDOUT).returncode:
                    return {"status": "failed", "step": shlex.join(step), "log": _show_path(log),
                            "log_tail": _tail(log), "requirements": list(DBT_REQUIREMENTS)}
        self.marker.write_text("\n".join(DBT_REQUIREMENTS))
        return {"status": "installed", "path": _show_path(self.path), "seconds": time.perf_counter() - started,
                "requirements": list(DBT_REQUIREMENTS)}

    def versions(self) -> dict[str, str]:
        if not self.python.is_file():
            return {}
        code = ("import json, importlib.metadata as m\nout = {}\nfor p in ('dbt-core', 'dbt-duckdb', 'matplotlib'):\n"
                "    try: out[p] = m.version(p)\n    except m.PackageNotFoundError: pass\n"
                "try: out['duckdb (dbt venv)'] = m.version('duckdb')\nexcept m.PackageNotFoundError: pass\n"
                "print(json.dumps(out))")
        completed = subprocess.run([str(self.python), "-c", code], capture_output=True, text=True)
        return json.loads(completed.stdout) if completed.returncode == 0 else {}

    def export_table(self, database: Path, table: str, out: Path) -> None:
        """Copy a table of dbt's DuckDB file to Parquet with the venv's own duckdb (its storage version)."""
        code = ("import sys, duckdb\ncon = duckdb.connect(sys.argv[1], read_only=True)\n"
                "con.table(sys.argv[2]).write_parquet(sys.argv[3])")
        subprocess.run([str(self.python), "-c", code, str(database), table, str(out)], check=True)

    def plot(self, results_path: Path, out: Path) -> bool:
        if not self.python.is_file():
            return False
        completed = subprocess.run([str(self.python), str(HERE / "plot.py"), str(results_path), str(out)],
                                   capture_output=True, text=True)
        if completed.returncode:
            _log(f"plot failed: {completed.stderr.strip().splitlines()[-1:]}")
        return completed.returncode == 0


# --- environment facts --------------------------------------------------------------------------------------------


def machine_info() -> dict:
    info: dict = {"cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                  "loadavg_start": list(os.getloadavg())}
    try:
        info["usable_cores"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        info["cpu"] = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                            if line.startswith("model name")), platform.processor())
        meminfo = Path("/proc/meminfo").read_text()
        kib = next(int(line.split()[1]) for line in meminfo.splitlines() if line.startswith("MemTotal"))
        info["memory_gb"] = round(kib / 2**20, 1)
    except (OSError, StopIteration, ValueError):
        info["memory_gb"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    return info


def versions() -> dict[str, str]:
    out = {}
    for package in ("northstar-pipeline", "duckdb", "sqlglot", "pyarrow", "jinja2"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            pass
    git = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if git.returncode == 0:
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        out["northstar commit"] = git.stdout.strip() + (" (with uncommitted changes)" if dirty else "")
    return out


# --- helpers ------------------------------------------------------------------------------------------------------


def _write_outputs(results: dict, args: argparse.Namespace) -> None:
    plotted = False
    if not args.no_plot:
        plotted = BenchVenv(args.bench_venv).plot(args.results, args.plot)
        if not plotted:
            _log("no plot: the bench virtualenv (matplotlib) is missing; run without --no-dbt once")
    report.update_report(args.report, results, plot=args.plot if plotted or args.plot.is_file() else None)
    _log(f"report: {args.report}" + (f", plot: {args.plot}" if plotted else ""))


def _northstar() -> list[str]:
    script = Path(sys.executable).parent / "northstar"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "northstar_pipeline"]


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("NORTHSTAR_", "DBT_"))}


def _save(results: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def _show(cmd: list[str]) -> str:
    """A command exactly as run, as a shell line."""
    return shlex.join(cmd)


def _show_path(path: Path) -> str:
    return os.path.relpath(path, REPO) if path.is_relative_to(REPO) else str(path)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _log(message: str) -> None:
    print(f"[bench] {message}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
