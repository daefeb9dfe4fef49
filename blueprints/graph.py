"""A blueprint's dependency graph as server-rendered SVG (no script, no CDN, no inline style:
the page's stylesheet colours it through the class names).

Levels are columns, left to right; a level's templates are stacked in its column, ordered so
that each sits near what it waits for. Every pair of wired templates gets one arrow from the
source's right side to the target's left side, labelled with its wires (`output → variable`,
one line each) on a straight run just before the arrowhead. A node is as tall as the labels of
its incoming arrows need, so labels of different arrows never share a line, whether the graph
has 3 templates or 30.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

NODE_WIDTH = 210
NODE_HEIGHT = 52
COLUMN_GAP = 250
ROW_GAP = 24
MARGIN = 12
HEADING = 22  # room for the level headings above the columns
LINE_HEIGHT = 14
CHAR_WIDTH = 6.4  # the label font's average advance, to size label runs
NODE_CHARS = 22  # what fits in a node's width (bold)
LABEL_CHARS = 34  # what fits in a column gap


@dataclass(frozen=True)
class Node:
    """One template: `key` is what edges refer to; `status` becomes a class (node-done)."""

    key: Any
    label: str
    detail: str = ""
    status: str = ""
    url: str = ""


@dataclass
class Placed:
    node: Node
    level: int
    x: float
    y: float
    height: float


@dataclass
class Arrow:
    source: Any
    target: Any
    lines: list[str]


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def arrows_of(edges: Iterable[Mapping[str, Any]]) -> list[Arrow]:
    """One arrow per (source, target) pair, with a label line per wire, in wiring order."""
    arrows: dict[tuple[Any, Any], Arrow] = {}
    for edge in edges:
        pair = (edge["source_template"], edge["target_template"])
        arrow = arrows.setdefault(pair, Arrow(pair[0], pair[1], []))
        arrow.lines.append(f"{edge['source_output']} → {edge['target_variable']}")
    return list(arrows.values())


def order_levels(levels: list[list[Node]], arrows: list[Arrow]) -> list[list[Node]]:
    """Each level after the first sorted by the mean row of what its nodes wait for (the
    barycentre heuristic: fewer crossings), stable for ties and for nodes that wait for
    nothing."""
    sources: dict[Any, list[Any]] = defaultdict(list)
    for arrow in arrows:
        sources[arrow.target].append(arrow.source)
    row: dict[Any, float] = {}
    ordered = []
    for level in levels:
        def mean_row(item: tuple[int, Node]) -> tuple[float, int]:
            index, node = item
            rows = [row[s] for s in sources.get(node.key, []) if s in row]
            return (sum(rows) / len(rows) if rows else float(index), index)

        level = [node for _, node in sorted(enumerate(level), key=mean_row)]
        row.update({node.key: float(index) for index, node in enumerate(level)})
        ordered.append(level)
    return ordered


def layout(levels: list[list[Node]], arrows: list[Arrow]) -> tuple[dict[Any, Placed], float,
                                                                     float]:
    """Where each node goes, and the drawing's width and height."""
    incoming_lines: dict[Any, int] = defaultdict(int)
    for arrow in arrows:
        incoming_lines[arrow.target] += len(arrow.lines) + 1
    placed: dict[Any, Placed] = {}
    heights = []
    for level_index, level in enumerate(levels):
        x = MARGIN + level_index * (NODE_WIDTH + COLUMN_GAP)
        y = 0.0
        for node in level:
            height = max(NODE_HEIGHT, incoming_lines[node.key] * LINE_HEIGHT + 8)
            placed[node.key] = Placed(node, level_index, x, y, height)
            y += height + ROW_GAP
        heights.append(max(y - ROW_GAP, 0))
    tallest = max(heights, default=0)
    for level_index, level in enumerate(levels):  # centre each column
        offset = MARGIN + HEADING + (tallest - heights[level_index]) / 2
        for node in level:
            placed[node.key].y += offset
    width = MARGIN * 2 + len(levels) * NODE_WIDTH + max(len(levels) - 1, 0) * COLUMN_GAP
    return placed, width, tallest + HEADING + MARGIN * 2


def ports(arrows: list[Arrow], placed: dict[Any, Placed]) -> dict[int, tuple[float, float]]:
    """The y where each arrow leaves its source and enters its target: outgoing arrows
    spread over the source's right side, incoming ones stacked on the target's left side
    with room above each for its label lines; both sorted by the other end's height."""
    leaving: dict[Any, list[int]] = defaultdict(list)
    entering: dict[Any, list[int]] = defaultdict(list)
    for index, arrow in enumerate(arrows):
        leaving[arrow.source].append(index)
        entering[arrow.target].append(index)
    out_y: dict[int, float] = {}
    for key, indexes in leaving.items():
        box = placed[key]
        indexes.sort(key=lambda i: placed[arrows[i].target].y)
        for rank, index in enumerate(indexes):
            out_y[index] = box.y + box.height * (rank + 1) / (len(indexes) + 1)
    in_y: dict[int, float] = {}
    for key, indexes in entering.items():
        box = placed[key]
        indexes.sort(key=lambda i: placed[arrows[i].source].y)
        needed = sum((len(arrows[i].lines) + 1) * LINE_HEIGHT for i in indexes)
        y = box.y + (box.height - needed) / 2
        for index in indexes:
            y += (len(arrows[index].lines) + 1) * LINE_HEIGHT
            in_y[index] = y - LINE_HEIGHT / 2
    return {index: (out_y[index], in_y[index]) for index in range(len(arrows))}


def dependency_graph_svg(
    levels: list[list[Node]], edges: Iterable[Mapping[str, Any]], *, title: str = "",
    id_prefix: str = "graph",
) -> SafeString:
    """The SVG of a plan: `levels` of nodes (level 0 first) and `edges` as
    `blueprints.selectors.edges_of` gives them (source_template, source_output,
    target_template, target_variable; templates by node key). Every text is escaped."""
    arrows = arrows_of(edges)
    levels = order_levels(levels, arrows)
    placed, width, height = layout(levels, arrows)
    arrows = [a for a in arrows if a.source in placed and a.target in placed]
    marker = f"{id_prefix}-arrow"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" role="img" '
        f'width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'aria-labelledby="{escape(id_prefix)}-title">',
        f'<title id="{escape(id_prefix)}-title">{escape(title or "Dependency graph")}</title>',
        f'<defs><marker id="{escape(marker)}" viewBox="0 0 10 10" refX="9" refY="5" '
        'markerWidth="8" markerHeight="8" orient="auto"><path class="graph-arrowhead" '
        'd="M0,0 L10,5 L0,10 z"/></marker></defs>',
    ]
    for index, (start_y, end_y) in ports(arrows, placed).items():
        arrow = arrows[index]
        source, target = placed[arrow.source], placed[arrow.target]
        lines = [shorten(line, LABEL_CHARS) for line in arrow.lines]
        run = min(max(len(line) for line in lines) * CHAR_WIDTH + 16, COLUMN_GAP - 40)
        x0, x1, x2 = source.x + NODE_WIDTH, target.x - run, target.x - 2
        bend = max((x1 - x0) / 2, 30)
        full = "; ".join(arrow.lines)
        parts.append(
            f'<g class="graph-edge"><title>{escape(source.node.label)} → '
            f'{escape(target.node.label)}: {escape(full)}</title>'
            f'<path d="M{x0:.1f},{start_y:.1f} C{x0 + bend:.1f},{start_y:.1f} '
            f'{x1 - bend:.1f},{end_y:.1f} {x1:.1f},{end_y:.1f} L{x2:.1f},{end_y:.1f}" '
            f'marker-end="url(#{escape(marker)})"/>'
        )
        for number, line in enumerate(lines):
            y = end_y - 4 - (len(lines) - 1 - number) * LINE_HEIGHT
            parts.append(f'<text class="graph-label" x="{x2 - 6:.1f}" y="{y:.1f}" '
                         f'text-anchor="end">{escape(line)}</text>')
        parts.append("</g>")
    for level_index in range(len(levels)):
        x = MARGIN + level_index * (NODE_WIDTH + COLUMN_GAP)
        parts.append(f'<text class="graph-level" x="{x:.1f}" y="{MARGIN + 10}">'
                     f'Level {level_index}</text>')
    for box in placed.values():
        node = box.node
        classes = "graph-node" + (f" node-{escape(node.status)}" if node.status else "")
        middle = box.y + box.height / 2
        texts = (
            f'<text class="graph-name" x="{box.x + 12:.1f}" '
            f'y="{middle - (2 if node.detail else -5):.1f}">'
            f'{escape(shorten(node.label, NODE_CHARS))}</text>'
        )
        if node.detail:
            texts += (f'<text class="graph-detail" x="{box.x + 12:.1f}" y="{middle + 14:.1f}">'
                      f'{escape(shorten(node.detail, NODE_CHARS + 6))}</text>')
        tooltip = node.label + (f" ({node.detail})" if node.detail else "")
        shape = (f'<g class="{classes}"><title>{escape(tooltip)}</title>'
                 f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="{NODE_WIDTH}" '
                 f'height="{box.height:.1f}" rx="6"/>{texts}</g>')
        if node.url:
            shape = f'<a href="{escape(node.url)}">{shape}</a>'
        parts.append(shape)
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text above is escaped
