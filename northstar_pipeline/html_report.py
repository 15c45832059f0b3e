"""The review table as one self-contained HTML page, for people who will never open a terminal.

No script, no stylesheet or font from the network: the page is a file that can be mailed,
attached to a ticket or served as it is. Every text from the project (labels, owners) is
escaped. Values, comparisons and statuses are the scorecard's own, as in ``report``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from .report import MARKER, format_pct, format_value, period_title, status_word
from .tree_svg import render_svg

_STYLE = """
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328; margin: 2rem; }
h1 { font-size: 1.4rem; margin: 0 0 .25rem; }
p.period { margin: 0 0 .25rem; font-weight: 600; }
p.meta { margin: 0 0 1rem; color: #59636e; font-size: .85rem; }
table { border-collapse: collapse; }
th, td { padding: .35rem .7rem; border-bottom: 1px solid #d1d9e0; text-align: left; white-space: nowrap; }
th { font-size: .8rem; text-transform: uppercase; letter-spacing: .03em; color: #59636e; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.kind-north_star td { font-weight: 700; background: #f6f8fa; }
tr.kind-counter td.metric { font-style: italic; }
.pill { display: inline-block; padding: 0 .55rem; border-radius: 1rem; font-size: .8rem; color: #fff; }
.pill.green { background: #1a7f37; } .pill.yellow { background: #9a6700; } .pill.red { background: #cf222e; }
.marker { color: #59636e; }
figure { margin: 0 0 1.5rem; overflow-x: auto; }
svg.spark polyline { fill: none; stroke: #0969da; stroke-width: 1.5; }
svg.spark circle { fill: #0969da; }
"""
SPARK_WIDTH, SPARK_HEIGHT = 96, 22


def render_html(rows: Sequence[Mapping], project: str | None = None) -> str:
    """``rows``: report.scorecard_rows() (one grain and period, in tree order, with ``depth``)."""
    title = period_title(rows)
    first = rows[0] if rows else {}
    meta = " · ".join(part for part in (
        f"as of {first['as_of']}" if first.get("as_of") else "",
        f"built {first['built_at']}" if first.get("built_at") else "",
        f"run {first['run_id']}" if first.get("run_id") else "",
    ) if part)
    heading = f"North Star scorecard{f' · {project}' if project else ''}"
    body = "\n".join(_row(row) for row in rows)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(heading)} · {escape(title)}</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>{escape(heading)}</h1>
<p class="period">{escape(title)}</p>
<p class="meta">{escape(meta)}</p>
<figure>{render_svg(rows) if rows else ""}</figure>
<table>
<thead><tr><th>Metric</th><th>Value</th><th>Previous</th><th>Change</th><th>Target %</th><th>Status</th><th>Trend</th><th>Owner</th></tr></thead>
<tbody>
{body}
</tbody>
</table>
</body>
</html>
"""


def _row(row: Mapping) -> str:
    kind = row["kind"]
    marker = "★" if kind == "north_star" else MARKER.get(row.get("edge") or "", "·")
    indent = 0 if kind == "north_star" else 1.4 * row["depth"]
    status = row.get("status")
    pill = f'<span class="pill {escape(status)}">{escape(status_word(row))}</span>' if status else "-"
    cells = [
        f'<td class="metric" style="padding-left:{indent + 0.7:.1f}rem"><span class="marker">{marker}</span> '
        f'{escape(row["label"])}</td>',
        f'<td class="num">{escape(format_value(row["value"]))}</td>',
        f'<td class="num">{escape(format_value(row["previous_value"]))}</td>',
        f'<td class="num">{escape(format_pct(row["change_pct"]))}</td>',
        f'<td class="num">{escape(format_pct(row["target_pct"], signed=False))}</td>',
        f"<td>{pill}</td>",
        f"<td>{_sparkline(row.get('sparkline'))}</td>",
        f"<td>{escape(row.get('owner') or '-')}</td>",
    ]
    return (f'<tr class="kind-{escape(kind)}" data-metric="{escape(row["metric"])}">' + "".join(cells) + "</tr>")


def _sparkline(values: Sequence[float | None] | None) -> str:
    """An inline SVG line of the last values; a missing value breaks the line."""
    points = list(values or ())
    present = [v for v in points if v is not None]
    if not present:
        return ""
    low, high = min(present), max(present)
    span = (high - low) or 1.0
    step = SPARK_WIDTH / max(len(points) - 1, 1)

    def xy(i: int, value: float) -> tuple[float, float]:
        y = SPARK_HEIGHT - 2 - (value - low) / span * (SPARK_HEIGHT - 4) if high != low else SPARK_HEIGHT / 2
        return round(i * step, 1), round(y, 1)

    segments: list[list[tuple[float, float]]] = [[]]
    for i, value in enumerate(points):
        if value is None:
            segments.append([])
        else:
            segments[-1].append(xy(i, value))
    lines = "".join(f'<polyline points="{" ".join(f"{x},{y}" for x, y in seg)}"/>' for seg in segments if seg)
    last = next(((i, v) for i, v in reversed(list(enumerate(points))) if v is not None))
    cx, cy = xy(*last)
    return (f'<svg class="spark" width="{SPARK_WIDTH}" height="{SPARK_HEIGHT}" viewBox="0 0 {SPARK_WIDTH} '
            f'{SPARK_HEIGHT}" role="img" aria-label="trend">{lines}<circle cx="{cx}" cy="{cy}" r="2"/></svg>')
