"""The dependency graph drawn as SVG (blueprints.graph): levels as columns, one labelled arrow
per wired pair, readable with 3 templates or 30, every text escaped."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET

from blueprints.graph import LINE_HEIGHT, NODE_WIDTH, Node, dependency_graph_svg

SVG = "{http://www.w3.org/2000/svg}"


def wire(source, output, target, variable) -> dict:
    return {"source_template": source, "source_output": output, "target_template": target,
            "target_variable": variable}


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # noqa: S314 - our own output; well-formed, or this raises


def boxes(root: ET.Element) -> dict[str, tuple[float, float, float, float]]:
    """Each node's rectangle (x, y, width, height) by its full label (the node's title)."""
    found = {}
    for group in root.iter(f"{SVG}g"):
        if "graph-node" not in group.get("class", ""):
            continue
        rect = group.find(f"{SVG}rect")
        label = group.find(f"{SVG}title").text.split(" (")[0]
        found[label] = tuple(float(rect.get(k)) for k in ("x", "y", "width", "height"))
    return found


def demo() -> str:
    levels = [[Node(1, "VPC", "create_vpc", url="#template-1")],
              [Node(2, "EKS Cluster", "create_eks_cluster", status="done"),
               Node(3, "RDS Database", "create_rds_database", status="error")]]
    edges = [wire(1, "vpc_id", 2, "vpc_id"), wire(1, "private_subnet_ids", 2, "subnet_ids"),
             wire(1, "vpc_id", 3, "vpc_id")]
    return dependency_graph_svg(levels, edges, title="Production Environment")


def test_levels_are_columns_and_each_wired_pair_is_one_labelled_arrow():
    root = parse(demo())
    placed = boxes(root)
    assert placed["VPC"][0] < placed["EKS Cluster"][0] == placed["RDS Database"][0]
    edges = [g for g in root.iter(f"{SVG}g") if g.get("class") == "graph-edge"]
    assert len(edges) == 2  # VPC→EKS carries two wires, VPC→RDS one
    labels = [[t.text for t in g.iter(f"{SVG}text")] for g in edges]
    assert ["vpc_id → vpc_id", "private_subnet_ids → subnet_ids"] in labels
    assert ["vpc_id → vpc_id"] in labels
    for group in edges:
        path = group.find(f"{SVG}path")
        assert path.get("marker-end") == "url(#graph-arrow)"
    assert root.find(f"{SVG}defs/{SVG}marker").get("id") == "graph-arrow"
    headings = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "graph-level"]
    assert headings == ["Level 0", "Level 1"]
    assert root.find(f"{SVG}title").text == "Production Environment"


def test_an_arrow_runs_from_its_source_to_its_target():
    root = parse(demo())
    placed = boxes(root)
    for group in root.iter(f"{SVG}g"):
        if group.get("class") != "graph-edge":
            continue
        numbers = [float(n) for n in
                   group.find(f"{SVG}path").get("d").replace("M", " ").replace("C", " ")
                   .replace("L", " ").replace(",", " ").split()]
        start_x, end_x, end_y = numbers[0], numbers[-2], numbers[-1]
        vpc = placed["VPC"]
        assert start_x == vpc[0] + vpc[2]
        target = "EKS Cluster" if "subnet" in ET.tostring(group, encoding="unicode") \
            else "RDS Database"
        box = placed[target]
        assert box[0] - 3 <= end_x <= box[0] and box[1] < end_y < box[1] + box[3]


def test_status_and_links_become_classes_and_anchors():
    root = parse(demo())
    classes = {g.find(f"{SVG}title").text.split(" (")[0]: g.get("class")
               for g in root.iter(f"{SVG}g") if "graph-node" in g.get("class", "")}
    assert classes == {"VPC": "graph-node", "EKS Cluster": "graph-node node-done",
                       "RDS Database": "graph-node node-error"}
    links = [a.get("href") for a in root.iter(f"{SVG}a")]
    assert links == ["#template-1"]


def test_thirty_templates_stay_readable_no_box_or_label_overlaps():
    levels = [[Node(level * 10 + i, f"template {level}-{i}", "create_res") for i in range(10)]
              for level in range(3)]
    edges = [wire(a.key, "res_id", b.key, f"upstream_{a.key}")
             for a, b in itertools.product(levels[0], levels[1]) if (a.key + b.key) % 3 == 0]
    edges += [wire(a.key, "subnets", b.key, f"items_{a.key}")
              for a, b in itertools.product(levels[1] + levels[0], levels[2])
              if (a.key * b.key) % 7 == 0]
    root = parse(dependency_graph_svg(levels, edges))
    placed = boxes(root)
    assert len(placed) == 30
    for column in levels:
        rects = sorted((placed[node.label] for node in column), key=lambda r: r[1])
        assert len({r[0] for r in rects}) == 1  # one column per level
        for upper, lower in itertools.pairwise(rects):
            assert upper[1] + upper[3] < lower[1]  # no two boxes overlap
    # Labels entering one node never share a line, and sit beside that node.
    by_target: dict[float, list[float]] = {}
    for text in root.iter(f"{SVG}text"):
        if text.get("class") == "graph-label":
            by_target.setdefault(float(text.get("x")), []).append(float(text.get("y")))
    for ys in by_target.values():
        ys.sort()
        assert all(b - a >= LINE_HEIGHT - 0.01 for a, b in itertools.pairwise(ys))
    width = float(root.get("width"))
    assert width < 3 * NODE_WIDTH + 3 * 260  # grows with levels, not with templates


def test_every_text_is_escaped():
    hostile = '<script>alert("x")</script>&'
    svg = dependency_graph_svg(
        [[Node(1, hostile, hostile, status='"><x', url='javascript:"x"')], [Node(2, "b")]],
        [wire(1, hostile, 2, "v")], title=hostile,
    )
    root = parse(svg)
    assert "<script" not in svg and '"><x' not in svg
    assert any(t.text and t.text.startswith("<script>") for t in root.iter(f"{SVG}title"))


def test_long_names_are_shortened_in_the_box_and_whole_in_the_tooltip():
    name = "a template with a rather long descriptive name"
    root = parse(dependency_graph_svg([[Node(1, name)]], []))
    texts = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "graph-name"]
    assert texts[0].endswith("…") and len(texts[0]) < len(name)
    assert name in [t.text for t in root.iter(f"{SVG}title")]


def test_no_templates_is_an_empty_drawing():
    root = parse(dependency_graph_svg([], []))
    assert not list(root.iter(f"{SVG}rect"))
