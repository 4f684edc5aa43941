"""The view model (= /api/status) and the page rendered from it: schema, numbers as numbers, escaping."""

from __future__ import annotations

import json
from html.parser import HTMLParser

from dash_helpers import HOSTILE, lease, pointer, run_info, status, swarm_of

from paris_node.dashboard.history import History
from paris_node.dashboard.render import render_page
from paris_node.dashboard.view import FORMAT, CheckpointInfo, SampleInfo, ViewInputs, build_view
from paris_node.identity import Identity
from paris_node.records import now_ms

T = now_ms()
JOB_KEYS = {
    "job", "kind", "owner", "lease_state", "lease_left_s", "held_s", "step", "train_loss", "val_loss",
    "samples_per_s", "status_age_s", "checkpoint", "sample", "history",
}  # fmt: skip
CHECKPOINT_KEYS = {"cid", "step", "signer", "age_s", "verified", "holders", "metrics"}
SAMPLE_KEYS = {"url", "cid", "step", "width", "height", "prompts"}
NODE_KEYS = {"node_id", "role", "job", "step", "version", "error", "age_s"}
RUN_KEYS = {
    "id", "name", "dataset", "experts", "expert_preset", "router_preset", "publishers", "val_loss_threshold",
    "resolution", "samples", "shard_sizes",
}  # fmt: skip


def _inputs(hostile: str = "") -> ViewInputs:
    a, b, c, d = (Identity.generate() for _ in range(4))
    history = History("run")
    history.add("expert/0", 10, T - 20_000, train_loss=0.9, val_loss=0.95)
    history.add("expert/0", 20, T - 10_000, train_loss=0.7, val_loss=0.8)
    ptr = pointer(a, "expert/0", "bafkmanifest0", 20, T - 3000)
    return ViewInputs(
        run=run_info(name="dash" + hostile),
        jobs=["expert/0", "expert/1", "router"],
        leases=[lease(a, "expert/0", T - 2000), lease(b, "expert/1", T - 1000, state="claiming")],
        statuses=[
            status(a, "expert/0", 20, T - 1500, loss="0.7", samples_per_s="123.5"),
            status(a, "expert/0", 10, T - 9000, loss="0.9"),  # older: superseded
            status(b, "expert/1", 0, T - 1000, loss="not-a-number"),
            status(d, None, 0, T - 500, role="standby" + hostile),
            status(c, "router" + hostile, 0, T - 500, role="router"),
        ],
        pointers={"expert/0": [ptr]},
        checkpoints={"bafkmanifest0": CheckpointInfo("bafkmanifest0", a.node_id, 20, T - 3000, {"val_loss": 0.8})},
        holders={"bafkmanifest0": ["12D3KooWpeerB", "12D3KooWpeerA"]},
        samples={"expert/0": SampleInfo(20, "bafkmanifest0", "bafksample0", 64, 16, ("a red circle", hostile))},
        history=history,
        partition=True,
        notes=[f"expert/1: sample of step 5 not shown: not a PNG {hostile}"],
        served_by=a.node_id,
    )


def test_api_status_schema_and_numbers():
    view = json.loads(json.dumps(build_view(_inputs(), T)))  # what /api/status serves
    assert view["format"] == FORMAT and isinstance(view["generated_ms"], int)
    assert set(view["run"]) == RUN_KEYS and view["run"]["experts"] == 2 and view["run"]["publishers"] == "open"
    assert [j["job"] for j in view["jobs"]] == ["expert/0", "expert/1", "router"]
    for j in view["jobs"]:
        assert set(j) == JOB_KEYS
    e0, e1, router = view["jobs"]
    assert e0["lease_state"] == "active" and 55 <= e0["lease_left_s"] <= 60 and e0["held_s"] >= 5
    assert (e0["step"], e0["train_loss"], e0["samples_per_s"], e0["val_loss"]) == (20, 0.7, 123.5, 0.8)
    assert set(e0["checkpoint"]) == CHECKPOINT_KEYS
    assert e0["checkpoint"]["holders"] == ["12D3KooWpeerA", "12D3KooWpeerB"] and e0["checkpoint"]["verified"]
    assert set(e0["sample"]) == SAMPLE_KEYS and e0["sample"]["url"].startswith("/sample/expert-0.png?")
    assert [(p["step"], p["train_loss"], p["val_loss"]) for p in e0["history"]] == [(10, 0.9, 0.95), (20, 0.7, 0.8)]
    assert e1["lease_state"] == "claiming" and e1["train_loss"] is None  # a bad decimal string is null, not text
    assert router["owner"] is None and router["lease_state"] == "free" and router["checkpoint"] is None
    for n in view["nodes"]:
        assert set(n) == NODE_KEYS
    assert len(view["standbys"]) == 1 and view["partition"] == {"url": "/partition.png"}


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def test_peer_strings_are_escaped_everywhere():
    html = render_page(build_view(_inputs(HOSTILE), T))
    parsed = _Tags()
    parsed.feed(html)
    names = [t for t, _ in parsed.tags]
    assert "script" not in names and "iframe" not in names
    assert not [a for _, attrs in parsed.tags for a in attrs if a.startswith("on")]
    assert all(attrs["src"].startswith("/") for t, attrs in parsed.tags if t == "img")  # only our own images
    text = "".join(parsed.text)
    assert text.count(HOSTILE) >= 4  # caption, role, job, note, run name: shown as text
    assert "<script>" not in html


def test_the_page_has_every_part():
    html = render_page(build_view(_inputs(), T), refresh_s=7)
    assert '<meta http-equiv="refresh" content="7">' in html
    assert html.count('class="job-row') == 3
    assert html.count("<svg") == 3 and "polyline" in html
    assert 'src="/sample/expert-0.png?cid=bafksample0"' in html and 'src="/partition.png"' in html
    assert "style=" not in html and "<style" not in html  # the CSP allows no inline style


def test_a_large_swarm_renders_every_job():
    leases, statuses, pointers = swarm_of(100, statuses_per_node=10, t=T)
    inp = ViewInputs(run_info(100), [f"expert/{k}" for k in range(100)], leases, statuses, pointers)
    view = build_view(inp, T)
    assert len(view["jobs"]) == 100 and all(j["step"] == 109 for j in view["jobs"])
    assert render_page(view).count('class="job-row') == 100
