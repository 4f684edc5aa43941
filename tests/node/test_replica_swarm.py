"""A checkpoint outlives its only owner, with real processes on 127.0.0.1 (p2pd, DHT, exchange, training).

First test: one job (K=1). Its owner trains to the run's step budget and is stopped cleanly (SIGTERM) while it
is the only holder of its latest checkpoint: it says so and waits. A new node joins, claims the freed job, fetches that
checkpoint (state included) from the leaving node and resumes from its step, not from 0; once the newcomer
holds it, the old owner exits. Second test: the same on an open run, where the newcomer never saw the old owner's
lease (it resumes from a copy a current owner vouches for). Every process is in its own process group and
killed at the end.
"""

from __future__ import annotations

import dataclasses
import re
import signal
import time

import pytest
from test_node_swarm import Node
from tiny_swarm import build_tiny_run, start_owners, tiny_spec

from paris_node.home import Home
from paris_node.identity import load_or_create

pytestmark = [pytest.mark.swarm, pytest.mark.timeout(400)]
BUDGET = 20
COMMON = ["--lease-ttl", "20", "--settle", "1.5", "--no-progress", "--threads", "1", "--mirror-every", "1"]


def test_the_only_owner_leaves_and_a_new_node_resumes_from_its_last_step(tmp_path):
    spec = tiny_spec("replica", samples=96, experts=1, steps=BUDGET)
    # Publishers are listed: on an open run a node that joins after the owner left never saw its lease, and the
    # fetcher's selection (node/selection.py) refuses such a signer's pointer; the listed tier does not need it.
    a_id, b_id = (load_or_create(Home(tmp_path / n).ensure().identity_path) for n in ("a", "b"))
    spec = dataclasses.replace(spec, publishers=(a_id.node_id, b_id.node_id))
    run = build_tiny_run(tmp_path / "a", spec, a_id)
    nodes: list[Node] = []
    try:
        a = Node("a", tmp_path / "a", "--run", run, "--handoff-wait", "120", *COMMON)
        nodes.append(a)
        maddr = a.maddr
        a.wait_event("claimed", 120, job="expert/0")
        a.wait_published("expert/0", BUDGET, 180)
        a.wait_line(r"reached step \d+ \(the run's budget\)", 60)

        a.proc.send_signal(signal.SIGTERM)
        a.wait_line(rf"only holder of expert/0 step {BUDGET}", 60)  # it says so, and waits

        b = Node("b", tmp_path / "b", "--run", run, "--join", maddr, *COMMON)
        nodes.append(b)
        b.wait_event("claimed", 120, job="expert/0")
        resumed = b.wait_event("took_over", 180, job="expert/0")["step"]
        assert resumed == BUDGET  # from the leaving owner's last checkpoint, not from scratch

        assert a.proc.wait(120) == 0  # it left once another node held the checkpoint
        a.wait_line(r"every checkpoint and shard held here has another holder now", 5)
    finally:
        for n in nodes:
            n.kill()


def test_on_an_open_run_a_node_that_joins_after_the_owner_left_resumes_from_a_vouched_copy(tmp_path):
    """Open run, K=2 (expert/0, expert/1, router). The owner of expert/0 finishes and leaves once another owner
    holds a verified copy; a node that joins afterwards never saw that owner's lease, yet resumes from its step:
    a current owner's status vouches for the copy it verified (node/selection.py, tier 'vouched')."""
    budget = 60
    spec = tiny_spec("replica-open", samples=192, lr=1e-3, steps=budget, publish_every_steps=20, fine_clusters=16)
    run = build_tiny_run(tmp_path / "a", spec)
    nodes: dict[str, Node] = {}

    def start(name: str, args: list[str]) -> Node:
        nodes[name] = Node(name, tmp_path / name, *args, "--handoff-wait", "120", *COMMON)
        return nodes[name]

    try:
        _, owners = start_owners(start, run)
        leaver = nodes[owners["expert/0"]]
        others = [n for name, n in nodes.items() if n is not leaver]
        leaver.wait_published("expert/0", budget, 240)
        leaver.wait_line(r"reached step \d+ \(the run's budget\)", 60)
        deadline = time.monotonic() + 180  # an owner of another job tops the replicas up to 2 holders
        while not any(re.search(rf"mirrored expert/0 step {budget} ", line) for n in others for line in n.seen):
            assert time.monotonic() < deadline, "no other owner mirrored expert/0's last checkpoint"
            for n in others:
                n.published()
            time.sleep(0.5)

        leaver.proc.send_signal(signal.SIGTERM)
        assert leaver.proc.wait(120) == 0  # another holder exists: it leaves at once
        via = others[0].maddr  # the leaver may be `a`
        d = Node("d", tmp_path / "d", "--run", run, "--join", via, *COMMON)
        nodes["d"] = d
        d.wait_event("claimed", 120, job="expert/0")
        resumed = d.wait_event("took_over", 180, job="expert/0")["step"]
        assert resumed == budget  # from the departed owner's checkpoint, vouched for by the owner that kept it
    finally:
        for n in nodes.values():
            n.kill()
