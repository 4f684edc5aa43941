"""`/paris/runs/1` answers are hints from peers: whatever is malformed is dropped, never trusted or fatal."""

import json

from paris_node.swarm.runs import MAX_RUNS, _parse

RUN = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"


def test_good_answer_parses():
    data = json.dumps({"runs": [{"run": RUN, "name": "shapes", "experts": 4}]}).encode()
    assert _parse(data) == [{"run": RUN, "name": "shapes", "experts": 4}]


def test_malformed_answers_are_dropped():
    assert _parse(b"not json") == [] and _parse(b"[" * 100_000) == [] and _parse(b'{"runs": 3}') == []
    bad = {"runs": [{"run": "../../etc"}, {"run": 7}, "x", {"name": "no run"}, {"run": RUN, "experts": "4"}]}
    assert _parse(json.dumps(bad).encode()) == [{"run": RUN, "name": "?", "experts": 0}]
    many = {"runs": [{"run": f"run-{i}"} for i in range(100)]}
    assert len(_parse(json.dumps(many).encode())) == MAX_RUNS
