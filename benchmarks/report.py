"""BENCHMARKS.md from the driver's results: generated blocks between markers, hand-written text around them.

A block is ``<!-- BEGIN GENERATED: name -->`` ... ``<!-- END GENERATED: name -->``; ``update_report``
replaces the inside of each and leaves everything else as written. A report that does not exist yet
starts from ``benchmarks/BENCHMARKS.md`` (or a bare skeleton), so a test can write to a temp path.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE.parent / "BENCHMARKS.md"
BLOCKS = ("summary", "machine", "versions", "commands", "data", "build-vs-limit", "build-vs-dbt", "nightly",
          "compile", "plot", "goals", "profiles")
M, TEN_M, HUNDRED_M = 1_000_000, 10_000_000, 100_000_000
LIMIT_RATIO, DBT_SPEEDUP_1M, WARM_COMPILE_S, RSS_LIMIT_MB, DEMO_DATA_S = 1.25, 3.0, 1.0, 4096.0, 600.0

GOALS = (
    ("build_vs_limit", f"Build at 10M and 100M events within {LIMIT_RATIO}x the hand-written script"),
    ("dbt_3x_at_1m", f"At least {DBT_SPEEDUP_1M:.0f}x faster than dbt-duckdb at 1M events"),
    ("dbt_every_size", "Faster than dbt-duckdb at every size"),
    ("warm_compile", "Warm compile of 1,000 metrics (one changed) under 1 s"),
    ("cold_compile", "Cold compile of 1,000 metrics faster than dbt parse + compile"),
    ("rss_100m", "100M-event build under 4 GB peak RSS"),
    ("demo_data_100m", "demo-data of 100M events in minutes (under 10 min)"),
)


def update_report(path: Path, results: dict, *, plot: Path | None) -> str:
    text = path.read_text() if path.is_file() else (TEMPLATE.read_text() if TEMPLATE.is_file() else _skeleton())
    blocks = render_blocks(results, plot=plot, report_dir=path.parent)
    for name, body in blocks.items():
        begin, end = f"<!-- BEGIN GENERATED: {name} -->", f"<!-- END GENERATED: {name} -->"
        pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
        replacement = f"{begin}\n{body.strip()}\n{end}"
        if pattern.search(text):
            text = pattern.sub(lambda _: replacement, text)
        else:
            text = text.rstrip() + f"\n\n{replacement}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text


def _skeleton() -> str:
    return "# Benchmarks\n\n" + "\n\n".join(
        f"<!-- BEGIN GENERATED: {name} -->\n<!-- END GENERATED: {name} -->" for name in BLOCKS) + "\n"


# --- goals --------------------------------------------------------------------------------------------------------


def evaluate_goals(results: dict) -> list[dict]:
    """Each goal: met, missed or not measured, with the figure it was judged on (min times)."""
    sizes = {s["size"]: s for s in results.get("sizes", [])}
    data = {d["size"]: d for d in results.get("data", [])}
    compile_ = results.get("compile") or {}
    out = []
    for key, text in GOALS:
        status, figure = "not measured", "-"
        if key == "build_vs_limit":
            ratios = {n: _ratio(sizes[n]["northstar"]["min"], sizes[n]["handwritten"]["min"])
                      for n in (TEN_M, HUNDRED_M) if n in sizes}
            ratios = {n: r for n, r in ratios.items() if r is not None}
            if ratios:
                status = _met(all(r <= LIMIT_RATIO for r in ratios.values()))
                figure = ", ".join(f"{_events(n)}: {r:.2f}x" for n, r in ratios.items())
                if len(ratios) < 2:
                    figure += " (the other size not measured)"
        elif key == "dbt_3x_at_1m":
            s = sizes.get(M)
            speedup = s and s.get("dbt") and _ratio(s["dbt"]["min"], s["northstar"]["min"])
            if speedup:
                status, figure = _met(speedup >= DBT_SPEEDUP_1M), f"dbt / northstar = {speedup:.2f}x"
        elif key == "dbt_every_size":
            speedups = {n: _ratio(s["dbt"]["min"], s["northstar"]["min"]) for n, s in sizes.items() if s.get("dbt")}
            speedups = {n: r for n, r in speedups.items() if r is not None}
            if speedups:
                status = _met(all(r > 1 for r in speedups.values()))
                figure = ", ".join(f"{_events(n)}: {r:.2f}x" for n, r in sorted(speedups.items()))
        elif key == "warm_compile":
            warm = (compile_.get("northstar_warm") or {}).get("min")
            if warm is not None:
                status, figure = _met(warm < WARM_COMPILE_S), f"{warm:.2f} s"
        elif key == "cold_compile":
            cold = (compile_.get("northstar_cold") or {}).get("min")
            dbt = (compile_.get("dbt_total") or {}).get("min")
            if cold is not None and dbt is not None:
                status, figure = _met(cold < dbt), f"{cold:.2f} s vs {dbt:.2f} s ({dbt / cold:.2f}x)"
        elif key == "rss_100m":
            s = sizes.get(HUNDRED_M)
            rss = s and s["northstar"]["peak_rss_mb"]
            if rss:
                status, figure = _met(rss < RSS_LIMIT_MB), _mb(rss)
        elif key == "demo_data_100m":
            d = data.get(HUNDRED_M)
            if d:
                status, figure = _met(d["seconds"] < DEMO_DATA_S), f"{d['seconds']:.0f} s, {_mb(d['peak_rss_mb'])}"
        out.append({"goal": key, "text": text, "status": status, "figure": figure})
    return out


def _met(ok: bool) -> str:
    return "met" if ok else "missed"


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


# --- blocks -------------------------------------------------------------------------------------------------------


def render_blocks(results: dict, *, plot: Path | None, report_dir: Path) -> dict[str, str]:
    sizes = results.get("sizes", [])
    goals = evaluate_goals(results)
    return {
        "summary": _summary(results, goals),
        "machine": _machine(results),
        "versions": _versions(results),
        "commands": _commands(results),
        "data": _data(results),
        "build-vs-limit": _build_vs_limit(sizes),
        "build-vs-dbt": _build_vs_dbt(results, sizes),
        "nightly": _nightly(sizes),
        "compile": _compile(results.get("compile")),
        "plot": (f"![Build time vs events: northstar, the hand-written limit, dbt-duckdb]"
                 f"({os.path.relpath(plot, report_dir)})" if plot else "_No plot was drawn (--no-plot, or no bench "
                 "virtualenv with matplotlib)._"),
        "goals": _goals(goals),
        "profiles": _profiles(results, goals),
    }


def _summary(results: dict, goals: list[dict]) -> str:
    checks = [(s["size"], name, c) for s in results.get("sizes", []) for name, c in s["checks"].items()]
    lines = [f"Run {results.get('started_at', '?')} .. {results.get('finished_at', '?')}, sizes "
             f"{', '.join(_events(s['size']) for s in results.get('sizes', [])) or 'none'}, "
             f"{results.get('settings', {}).get('runs', '?')} run(s) per tool and size.",
             "",
             f"**Value checks: {'all passed' if results.get('values_equal') else 'FAILED'}** "
             f"({len(checks)} comparisons, relative tolerance {results.get('settings', {}).get('rel_tol', 1e-9)}). "
             f"Goals: {sum(g['status'] == 'met' for g in goals)} met, {sum(g['status'] == 'missed' for g in goals)} "
             f"missed, {sum(g['status'] == 'not measured' for g in goals)} not measured."]
    for size, name, check in checks:
        if not check["passed"]:
            lines.append(f"- {_events(size)} {name}: {check['mismatches']} mismatches, {check['unexpected_rows']} "
                         f"unexpected rows, e.g. `{check['examples'][:2]}`")
    for error in results.get("errors", []):
        lines.append(f"- error: {error.get('tool')} {('at ' + _events(error['size'])) if 'size' in error else ''} "
                     f"exited {error.get('returncode')}")
    venv = results.get("bench_venv")
    if venv and venv.get("status") == "failed":
        lines.append(f"- the dbt virtualenv failed to install ({venv.get('step')}); dbt was skipped. Log tail:\n\n"
                     f"```\n{venv.get('log_tail', '')}\n```")
    return "\n".join(lines)


def _machine(results: dict) -> str:
    m = results.get("machine", {})
    return _table(["", ""], [
        ["CPU", m.get("cpu", "?")],
        ["cores", f"{m.get('cores')} ({m.get('usable_cores', m.get('cores'))} usable)"],
        ["memory", f"{m.get('memory_gb')} GB"],
        ["OS", m.get("platform", "?")],
        ["Python", m.get("python", "?")],
        ["load average (1, 5, 15 min) at start / end",
         f"{_load(m.get('loadavg_start'))} / {_load(m.get('loadavg_end'))}"],
    ])


def _load(values: list | None) -> str:
    return " ".join(f"{v:.2f}" for v in values) if values else "?"


def _versions(results: dict) -> str:
    rows = [[k, v] for k, v in results.get("versions", {}).items()]
    venv = results.get("bench_venv")
    if venv:
        rows.append(["bench virtualenv", f"{venv.get('status')}: {', '.join(venv.get('requirements', []))}"])
    settings = results.get("settings", {})
    rows.append(["settings", f"DuckDB threads {settings.get('duckdb_threads')}, memory limit "
                             f"{settings.get('memory_limit')} for all three; dbt threads {settings.get('dbt_threads')}; "
                             f"seed {settings.get('seed')}"])
    return _table(["component", "version"], rows)


def _commands(results: dict) -> str:
    lines = []
    sizes = results.get("sizes", [])
    if results.get("data"):
        lines += ["Data (once per size):", "", "```sh", results["data"][-1]["command"], "```", ""]
    if sizes:
        lines += [f"Per size and run (shown for {_events(sizes[-1]['size'])}; output directories are removed "
                  "before each run, so every run is cold):", "", "```sh"]
        lines += list(sizes[-1]["commands"].values())
        lines += ["```", ""]
    compile_ = results.get("compile")
    if compile_:
        lines += ["Compile experiment (cold: `target/` removed first; warm: after editing one metric):", "", "```sh"]
        lines += list(compile_["commands"].values())
        lines += ["```"]
    return "\n".join(lines) or "_Nothing was run._"


def _data(results: dict) -> str:
    rows = [[_events(d["size"]), f"{d['rows']:,}", f"{d['parquet_mb']:,.0f} MB", _s(d["seconds"]),
             _mb(d["peak_rss_mb"]), "reused from an earlier run" if d.get("reused") else ""]
            for d in results.get("data", [])]
    return _table(["events", "rows written", "Parquet", "demo-data time", "peak RSS", ""], rows) if rows else "-"


def _build_vs_limit(sizes: list[dict]) -> str:
    rows = []
    for s in sizes:
        ours, hand = s["northstar"], s["handwritten"]
        check = s["checks"].get("northstar_vs_handwritten")
        rows.append([_events(s["size"]), str(s["rounds"]), _s(ours["min"]), _s(ours["median"]), _mb(ours["peak_rss_mb"]),
                     _s(hand["min"]), _s(hand["median"]), _mb(hand["peak_rss_mb"]),
                     _x(ours["min"], hand["min"]), _x(ours["median"], hand["median"]), _check(check)])
    return _table(["events", "runs", "northstar min", "median", "peak RSS", "handwritten min", "median", "peak RSS",
                   "build / handwritten (min)", "(median)", "values equal"], rows) if rows else "-"


def _nightly(sizes: list[dict]) -> str:
    rows = []
    for s in sizes:
        nightly = s.get("northstar_nightly")
        if not nightly:
            continue
        nodes = {n["node"]: n for n in s.get("profiles", {}).get("northstar_nightly", {}).get("nodes", [])}
        events = nodes.get("staging.stg_events", {})
        rows.append([_events(s["size"]), _s(nightly["min"]), _mb(nightly["peak_rss_mb"]),
                     f"{_s(events.get('seconds'))} ({events.get('mode') or '-'})", _s(s["northstar"]["min"]),
                     _s(s["handwritten"]["min"]), _x(nightly["min"], s["handwritten"]["min"]),
                     _check(s["checks"].get("northstar_nightly_vs_handwritten"))])
    if not rows:
        return "_No nightly run._"
    return _table(["events", "nightly build", "peak RSS", "stg_events", "full build (min)", "handwritten (min)",
                   "nightly / handwritten", "values equal"], rows)


def _build_vs_dbt(results: dict, sizes: list[dict]) -> str:
    rows = []
    for s in sizes:
        if not s.get("dbt"):
            continue
        ours, dbt = s["northstar"], s["dbt"]
        rows.append([_events(s["size"]), str(s["rounds"]), _s(ours["min"]), _s(ours["median"]), _mb(ours["peak_rss_mb"]),
                     _s(dbt["min"]), _s(dbt["median"]), _mb(dbt["peak_rss_mb"]),
                     _x(dbt["min"], ours["min"]), _x(dbt["median"], ours["median"]),
                     _check(s["checks"].get("dbt_vs_handwritten"))])
    if not rows:
        venv = results.get("bench_venv") or {}
        return f"_dbt not run ({venv.get('status', 'skipped with --no-dbt')})._"
    return _table(["events", "runs", "northstar min", "median", "peak RSS", "dbt run min", "median", "peak RSS",
                   "dbt / northstar (min)", "(median)", "values equal"], rows)


def _compile(compile_: dict | None) -> str:
    if not compile_:
        return "_Not run (--no-compile)._"
    rows = []
    for label, key in (("northstar compile, cold (fresh process, no target/)", "northstar_cold"),
                       (f"northstar compile, warm (after editing {compile_['edited_metric']})", "northstar_warm"),
                       ("dbt parse --no-partial-parse", "dbt_parse"), ("dbt compile (after that parse)", "dbt_compile"),
                       ("dbt parse + dbt compile", "dbt_total")):
        m = compile_.get(key)
        if m:
            rows.append([label, _s(m["min"]), _s(m["median"]), _mb(m["peak_rss_mb"]), "ok" if m["ok"] else "FAILED"])
    table = _table(["step", "min", "median", "peak RSS", "exit"], rows)
    cold, warm = compile_.get("northstar_cold", {}).get("min"), compile_.get("northstar_warm", {}).get("min")
    dbt = (compile_.get("dbt_total") or {}).get("min")
    notes = [f"{compile_['metrics']:,} metrics over a {compile_['events']:,}-event warehouse."]
    if cold and dbt:
        notes.append(f"dbt parse + compile / northstar cold compile = {dbt / cold:.2f}x.")
    if cold and warm:
        notes.append(f"Warm / cold = {warm / cold:.2f}.")
    return table + "\n\n" + " ".join(notes)


def _goals(goals: list[dict]) -> str:
    marks = {"met": "met", "missed": "**missed**", "not measured": "not measured"}
    return _table(["goal", "figure", "status"], [[g["text"], g["figure"], marks[g["status"]]] for g in goals])


def _profiles(results: dict, goals: list[dict]) -> str:
    missed = [g for g in goals if g["status"] == "missed"]
    if not missed:
        return "_No goal was missed in this run._"
    sizes = {s["size"]: s for s in results.get("sizes", [])}
    out = []
    for goal in missed:
        out += [f"### Missed: {goal['text']}", "", f"Figure: {goal['figure']}.", ""]
        key = goal["goal"]
        if key in ("build_vs_limit", "rss_100m"):
            for n in ((TEN_M, HUNDRED_M) if key == "build_vs_limit" else (HUNDRED_M,)):
                if n in sizes:
                    out += _build_profile(sizes[n], with_dbt=False)
        elif key in ("dbt_3x_at_1m", "dbt_every_size"):
            for n, s in sorted(sizes.items()):
                if s.get("dbt") and (key == "dbt_every_size" or n == M):
                    out += _build_profile(s, with_dbt=True)
        elif key in ("warm_compile", "cold_compile"):
            out += _compile_profile(results.get("compile") or {}, "warm" if key == "warm_compile" else "cold")
        elif key == "demo_data_100m":
            d = next((d for d in results.get("data", []) if d["size"] == HUNDRED_M), None)
            if d:
                out += [f"demo-data: {_s(d['seconds'])}, peak RSS {_mb(d['peak_rss_mb'])}, "
                        f"{d['parquet_mb']:,.0f} MB of Parquet.", ""]
        out += ["What would close it: _see the analysis below (hand-written)._", ""]
    return "\n".join(out)


def _build_profile(size: dict, *, with_dbt: bool) -> list[str]:
    prof = size.get("profiles", {})
    lines = [f"**{_events(size['size'])} events**: min (peak RSS) northstar {_s(size['northstar']['min'])} "
             f"({_mb(size['northstar']['peak_rss_mb'])}), handwritten {_s(size['handwritten']['min'])} "
             f"({_mb(size['handwritten']['peak_rss_mb'])})"
             + (f", dbt {_s(size['dbt']['min'])} ({_mb(size['dbt']['peak_rss_mb'])})" if with_dbt else "")
             + ". The breakdowns below are of the last run.", ""]
    ours = prof.get("northstar")
    if ours:
        build = ours.get("build_seconds") or 0.0
        lines += [f"northstar: process {_s(ours['process_seconds'])} = build {_s(build)} (nodes {_s(ours['nodes_seconds'])}"
                  f", compile + score + publish {_s(build - ours['nodes_seconds'])}) + start-up and the scorecard "
                  f"print {_s(ours['process_seconds'] - build)}.", ""]
        lines += [_table(["northstar node", "seconds", "rows"],
                         [[n["node"], _s(n["seconds"]), f"{n['rows']:,}" if n.get("rows") is not None else ""]
                          for n in ours["nodes"][:10]]), ""]
    hand = prof.get("handwritten")
    if hand:
        lines += [_table(["handwritten step", "seconds"], [[k, _s(v)] for k, v in hand.items()]), ""]
    dbt = prof.get("dbt")
    if with_dbt and dbt:
        lines += [f"dbt: process {_s(dbt['process_seconds'])}, of which `dbt run` reports {_s(dbt['run_seconds'])} "
                  f"(models {_s(dbt['nodes_seconds'])}).", ""]
        lines += [_table(["dbt model", "seconds"], [[n["node"], _s(n["seconds"])] for n in dbt["nodes"][:10]]), ""]
    return lines


def _compile_profile(compile_: dict, which: str) -> list[str]:
    prof = (compile_.get("profiles") or {}).get(which)
    if not prof:
        return ["_No profile was recorded._", ""]
    lines = [f"cProfile of one extra {which} `northstar compile` (total {_s(prof['total'])} under the profiler), "
             "top functions by cumulative time (the frames around `main()` left out):", "",
             _table(["function", "calls", "cumulative s"],
                    [[f"`{r['function']}`", f"{r['calls']:,}", f"{r['cumulative']:.3f}"] for r in prof["top"]]), ""]
    if prof.get("top_own"):
        lines += ["Top functions by own time:", "",
                  _table(["function", "calls", "own s"],
                         [[f"`{r['function']}`", f"{r['calls']:,}", f"{r['own']:.3f}"] for r in prof["top_own"]]), ""]
    return lines


# --- formatting ---------------------------------------------------------------------------------------------------


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _events(n: int) -> str:
    for unit, div in (("M", 1_000_000), ("k", 1_000)):
        if n >= div:
            value = n / div
            return f"{value:g}{unit}" if value == int(value) or value >= 100 else f"{value:.1f}{unit}"
    return str(n)


def _s(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.2f} s" if seconds < 100 else f"{seconds:,.0f} s"


def _mb(mb: float | None) -> str:
    return "-" if mb is None else (f"{mb:,.0f} MB" if mb < 10_240 else f"{mb / 1024:,.1f} GB")


def _x(a: float | None, b: float | None) -> str:
    r = _ratio(a, b)
    return "-" if r is None else f"{r:.2f}x"


def _check(check: dict | None) -> str:
    if check is None:
        return "not checked"
    if check["passed"]:
        return f"yes ({check['compared']:,})"
    return f"**NO** ({check['mismatches']} of {check['compared']:,} differ, {check['unexpected_rows']} unexpected rows)"
