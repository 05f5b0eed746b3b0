"""rewardlab's import graph has no circles and no arrow from models/ back up (scripts/check_imports.py)."""

from __future__ import annotations

from tests.conftest import load_script

check = load_script("scripts/check_imports.py")


def test_rewardlab_has_no_import_circles_and_models_import_nothing_above_them():
    graph = check.import_graph()
    assert "rewardlab.models.batching" in graph and "rewardlab.serve.app" in graph
    assert "rewardlab.models.scalar" in graph["rewardlab.models.scorer"]  # edges are read
    assert check.cycles(graph) == []
    assert check.upward_arrows(graph) == []


def test_the_checks_find_a_circle_and_an_arrow_back_up():
    graph = {"rewardlab.a": {"rewardlab.b"}, "rewardlab.b": {"rewardlab.c"}, "rewardlab.c": {"rewardlab.a"},
             "rewardlab.models.x": {"rewardlab.audit.trace"}, "rewardlab.audit.trace": set(), "rewardlab.d": set()}
    assert check.cycles(graph) == [["rewardlab.a", "rewardlab.b", "rewardlab.c"]]
    assert check.upward_arrows(graph) == [("rewardlab.models.x", "rewardlab.audit.trace")]
