"""The metric tree as a standalone SVG picture: boxes coloured by status, edges in the framework's notation.

Formula edges are solid, hypothesis edges dotted, a counter-metric hangs from what it guards
by a thick red edge; a legend under the tree says so. The layout is a plain tidy tree: leaves
side by side in review order (``report.tree_order``), each parent centred over its children, one
row per depth. A long label wraps onto a second line at a space rather than being cut, and the
North Star's star is a path, not a glyph a font may lack.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from northstar_pipeline.present.formatting import format_pct, format_value, status_word

BOX_W, BOX_H, GAP_X, GAP_Y, MARGIN = 224, 82, 20, 56, 16
LEGEND_H = 30
FILL = {"green": "#dafbe1", "yellow": "#fff8c5", "red": "#ffebe9"}
STROKE = {"green": "#1a7f37", "yellow": "#9a6700", "red": "#cf222e"}
NO_FILL, NO_STROKE = "#f6f8fa", "#8c959f"
MAX_LABEL, MAX_NOTE = 30, 38  # characters that fit a box at 12 px and 11 px
STAR = "M0,-6 L1.8,-2 6,-1.8 2.8,1.1 3.7,5.5 0,3.2 -3.7,5.5 -2.8,1.1 -6,-1.8 -1.8,-2 Z"


def render_svg(rows: Sequence[Mapping], title: str = "") -> str:
    """``rows``: one dict per metric in tree order with metric, label, kind, parent, edge and, when built,
    value, change_pct, status, guardrail_breached, owner. A counter-metric's ``parent`` is what it guards."""
    names = [r["metric"] for r in rows]
    by_name = {r["metric"]: r for r in rows}
    children: dict[str, list[str]] = {}
    roots = []
    for row in rows:
        parent = row.get("parent")
        if row["kind"] == "north_star" or parent not in by_name:
            roots.append(row["metric"])
        else:
            children.setdefault(parent, []).append(row["metric"])
    for kids in children.values():  # inputs first, then the counters guarding the parent
        kids.sort(key=lambda n: (by_name[n]["kind"] == "counter", names.index(n)))

    slots: dict[str, float] = {}
    depth: dict[str, int] = {}
    next_slot = 0.0

    def place(name: str, level: int) -> None:
        nonlocal next_slot
        depth[name] = level
        kids = children.get(name, [])
        for kid in kids:
            place(kid, level + 1)
        if kids:
            slots[name] = (slots[kids[0]] + slots[kids[-1]]) / 2
        else:
            slots[name] = next_slot
            next_slot += 1

    for root in roots:
        place(root, 0)
    width = int(2 * MARGIN + max(next_slot, 1) * (BOX_W + GAP_X) - GAP_X)
    width = max(width, 2 * MARGIN + 3 * 250)  # room for the legend
    top = MARGIN + (28 if title else 0)
    tree_bottom = top + (max(depth.values(), default=0) + 1) * (BOX_H + GAP_Y) - GAP_Y
    height = int(tree_bottom + MARGIN + LEGEND_H)

    def corner(name: str) -> tuple[float, float]:
        return MARGIN + slots[name] * (BOX_W + GAP_X), top + depth[name] * (BOX_H + GAP_Y)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="tree" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="system-ui, sans-serif" font-size="12">']
    if title:
        parts.append(f'<text x="{MARGIN}" y="{MARGIN + 14}" font-size="14" font-weight="600">{escape(title)}</text>')
    for parent, kids in children.items():
        px, py = corner(parent)
        for kid in kids:
            kx, ky = corner(kid)
            start, end = (px + BOX_W / 2, py + BOX_H), (kx + BOX_W / 2, ky)
            mid = (start[1] + end[1]) / 2
            parts.append(f'<path class="edge {_edge(by_name[kid])}" d="M{start[0]:.0f},{start[1]:.0f} '
                         f'C{start[0]:.0f},{mid:.0f} {end[0]:.0f},{mid:.0f} {end[0]:.0f},{end[1]:.0f}" '
                         f'fill="none" {_edge_style(by_name[kid])}/>')
    for name in names:
        parts.append(_box(by_name[name], *corner(name)))
    parts.append(_legend(MARGIN, tree_bottom + MARGIN + 12))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _edge(row: Mapping) -> str:
    if row["kind"] == "counter":
        return "guardrail"
    return "formula" if row.get("edge") == "formula" else "hypothesis"


def _edge_style(row: Mapping) -> str:
    return {"formula": 'stroke="#57606a" stroke-width="1.5"',
            "hypothesis": 'stroke="#57606a" stroke-width="1.5" stroke-dasharray="5 4"',
            "guardrail": 'stroke="#cf222e" stroke-width="3"'}[_edge(row)]


def _box(row: Mapping, x: float, y: float) -> str:
    status = row.get("status")
    fill, stroke = FILL.get(status or "", NO_FILL), STROKE.get(status or "", NO_STROKE)
    width = 3 if row["kind"] == "north_star" else 1.5
    lines = _wrap(row["label"], MAX_LABEL)
    line2 = (f"{format_value(row.get('value'), row.get('unit') or '')} · {format_pct(row.get('change_pct'))}"
             if "value" in row else "not built yet")
    line3 = _fit(" · ".join(p for p in (status_word(row) if status else "", row.get("owner") or "") if p), MAX_NOTE)
    dash = ' stroke-dasharray="6 3"' if row["kind"] == "counter" else ""
    cx = x + BOX_W / 2
    label_y = y + (18 if len(lines) == 2 else 24)
    label = "".join(f'<tspan x="{cx:.0f}" dy="{0 if i == 0 else 14}">{escape(text)}</tspan>'
                    for i, text in enumerate(lines))
    star = (f'<path class="star" d="{STAR}" transform="translate({x + 14:.0f},{y + 14:.0f})" fill="#1f2328"/>'
            if row["kind"] == "north_star" else "")
    return (f'<g class="metric" data-metric="{escape(row["metric"])}" data-status="{escape(status or "")}">'
            f'<title>{escape(row["label"])}</title>'
            f'<rect x="{x:.0f}" y="{y:.0f}" width="{BOX_W}" height="{BOX_H}" rx="8" fill="{fill}" '
            f'stroke="{stroke}" stroke-width="{width}"{dash}/>{star}'
            f'<text x="{cx:.0f}" y="{label_y:.0f}" text-anchor="middle" font-weight="600">{label}</text>'
            f'<text x="{cx:.0f}" y="{y + 54:.0f}" text-anchor="middle">{escape(line2)}</text>'
            f'<text x="{cx:.0f}" y="{y + 71:.0f}" text-anchor="middle" fill="#59636e" font-size="11">'
            f'{escape(line3)}</text></g>')


def _legend(x: float, y: float) -> str:
    """Solid formula, dotted hypothesis, thick red guardrail: the same strokes as the edges."""
    items = [("formula", "formula (proven arithmetic)"), ("hypothesis", "hypothesis (tested by correlation)"),
             ("guardrail", "guardrail (counter-metric)")]
    parts = ['<g class="legend">']
    for i, (edge, text) in enumerate(items):
        left = x + i * 250
        style = {"formula": 'stroke="#57606a" stroke-width="1.5"',
                 "hypothesis": 'stroke="#57606a" stroke-width="1.5" stroke-dasharray="5 4"',
                 "guardrail": 'stroke="#cf222e" stroke-width="3"'}[edge]
        parts.append(f'<g class="legend-item" data-edge="{edge}"><path d="M{left:.0f},{y:.0f} h30" {style}/>'
                     f'<text x="{left + 38:.0f}" y="{y + 4:.0f}" font-size="12">{escape(text)}</text></g>')
    parts.append("</g>")
    return "".join(parts)


def _wrap(text: str, limit: int) -> list[str]:
    """One or two lines broken at a space; only a second line still too long is shortened."""
    if len(text) <= limit:
        return [text]
    cut = text.rfind(" ", 0, limit + 1)
    if cut <= 0:
        return [_fit(text, limit)]
    return [text[:cut], _fit(text[cut + 1:], limit)]


def _fit(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"
