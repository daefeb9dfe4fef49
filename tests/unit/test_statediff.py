"""The step table's diff: nested paths, lists item by item, JSON types told apart."""

from __future__ import annotations

import pytest

from orchestrator.statediff import state_diff


@pytest.mark.parametrize(
    ("old", "new", "changed", "removed"),
    [
        ({"s": {"size": 5, "name": "b"}}, {"s": {"size": 9, "name": "b"}},
         {"s.size": {"old": 5, "new": 9}}, []),
        ({"s": {"ports": [{"a": 1}, {"a": 2}]}}, {"s": {"ports": [{"a": 1}, {"a": 3}]}},
         {"s.ports[1].a": {"old": 2, "new": 3}}, []),
        ({"l": [1, 2]}, {"l": [1, 2, 3]}, {"l": {"old": [1, 2], "new": [1, 2, 3]}}, []),
        ({"s": "9d1e"}, {"s": {"id": "9d1e"}}, {"s": {"old": "9d1e", "new": {"id": "9d1e"}}}, []),
        ({"d": {"a": 1, "b": 2}}, {"d": {"a": 1}}, {}, ["d.b"]),
        ({"k": 1}, {"k": True}, {"k": {"old": 1, "new": True}}, []),
        ({"k": 1}, {"k": 1.0}, {"k": {"old": 1, "new": 1.0}}, []),
        ({}, {"a.b": {"x y": 1}}, {'["a.b"]': {"old": None, "new": {"x y": 1}}}, []),
        ({"v": {"a.b": 1}}, {"v": {"a.b": 2}}, {'v["a.b"]': {"old": 1, "new": 2}}, []),
        ({"same": {"x": [1, {"y": None}]}}, {"same": {"x": [1, {"y": None}]}}, {}, []),
    ],
)
def test_state_diff(old, new, changed, removed):
    assert state_diff(old, new) == (changed, removed)
