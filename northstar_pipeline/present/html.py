"""The review table as one self-contained HTML page, for people who will never open a terminal.

The markup is a Jinja template in the package (``templates/scorecard.html.j2``, autoescape on);
this module only prepares what it shows. No script, no stylesheet or font from the network: the
page is a file that can be mailed, attached to a ticket or served as it is. Values, comparisons
and statuses are the scorecard's own, as in ``report``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache

import jinja2
from markupsafe import Markup

from northstar_pipeline.present.formatting import MARKER, format_pct, format_value, status_word
from northstar_pipeline.present.rows import period_title
from northstar_pipeline.present.tree_svg import render_svg

TEMPLATE = "scorecard.html.j2"
SPARK_WIDTH, SPARK_HEIGHT = 96, 22


def render_html(rows: Sequence[Mapping], project: str | None = None) -> str:
    """``rows``: rows.scorecard_rows() (one grain and period, in tree order, with ``depth``)."""
    first = rows[0] if rows else {}
    meta = " · ".join(part for part in (
        f"as of {first['as_of']}" if first.get("as_of") else "",
        f"built {first['built_at']}" if first.get("built_at") else "",
        f"run {first['run_id']}" if first.get("run_id") else "",
    ) if part)
    return _environment().get_template(TEMPLATE).render(
        heading=f"North Star scorecard{f' · {project}' if project else ''}",
        title=period_title(rows),
        meta=meta,
        tree_svg=Markup(render_svg(rows)) if rows else "",  # tree_svg escapes every text it draws
        rows=[_row(row) for row in rows],
    ) + "\n"


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("northstar_pipeline.present", "templates"),
                              autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def _row(row: Mapping) -> dict:
    kind = row["kind"]
    return {
        "kind": kind,
        "metric": row["metric"],
        "label": row["label"],
        "marker": "★" if kind == "north_star" else MARKER.get(row.get("edge") or "", "·"),
        "indent": f"{(0 if kind == 'north_star' else 1.4 * row['depth']) + 0.7:.1f}",
        "value": format_value(row["value"]),
        "previous": format_value(row["previous_value"]),
        "change_pct": format_pct(row["change_pct"]),
        "target_pct": format_pct(row["target_pct"], signed=False),
        "status": row.get("status"),
        "status_word": status_word(row),
        "spark": _sparkline(row.get("sparkline")),
        "owner": row.get("owner") or "-",
    }


def _sparkline(values: Sequence[float | None] | None) -> dict | None:
    """Points of an inline SVG line of the last values; a missing value breaks the line."""
    points = list(values or ())
    present = [v for v in points if v is not None]
    if not present:
        return None
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
    last = next(((i, v) for i, v in reversed(list(enumerate(points))) if v is not None))
    return {"width": SPARK_WIDTH, "height": SPARK_HEIGHT, "segments": [s for s in segments if s], "last": xy(*last)}
