"""A malicious peer joined to a live swarm of real node processes (issue 16), one swarm for the whole module.

Real `paris-node start` processes on 127.0.0.1 (p2pd, DHT, block exchange, training on the tiny preset): owners
of expert/0, expert/1 and the router plus two standbys. The attacker (tests/node/malicious_peer.py, its own DHT
identity) then, all at once: publishes a pointer for a job it never held at step 1,000,400; spams 30 garbage
pointers per job from sybil keys; floods expert/0 with 1,000 valid sybil leases; and serves malformed DHT
values for every lease, pointer and status key. Honest nodes must keep training, `status` and `fetch --all`
must keep working and pick the honest checkpoints without downloading the spam, and after a `kill -9` of
expert/0's owner the standby must take the job over within TTL + settle (plus polling slack), from an honest
checkpoint, and keep training it, although 50 more sybil leases whose keys publish statuses saying they train
expert/0 were stored just before the kill (watchers saw them written into an occupied job). Last, the owner of
expert/1 turns attacker (the frozen-job attack): it publishes all-zero weights inside its lease and goes away; the
checkpoint must be refused by its score and the job taken over from an honest checkpoint and trained on.
"""

from __future__ import annotations

import json
import re
import time

import pytest
from malicious_peer import MaliciousPeer, ZeroCheckpointOwner
from test_node_swarm import COMMON, TTL, Node, cli

from paris_node.data.manifest import RunSpec, build_run
from paris_node.home import Home
from paris_node.identity import load_or_create
from paris_node.swarm import keys

pytestmark = [pytest.mark.swarm, pytest.mark.timeout(480)]
BUDGET = 100_000
SETTLE = 1.5
MIRRORED = re.compile(r"mirrored expert/1 step (\d+) ")
SQUATTING = re.compile(r"ignoring (\d+) lease\(s\) on expert/0 written while")
TAKEOVER_S = TTL + SETTLE + 5 + 2 + 3 + 25  # TTL + settle + poll + jitter + skew, plus slack for 2 loaded cores


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    root = tmp_path_factory.mktemp("attack")
    spec = RunSpec(
        name="attack", dataset="shapes:192", samples=192, experts=2, expert_preset="tiny", router_preset="tiny",
        batch=8, lr=1e-3, ema=0.9, steps=BUDGET, publish_every_steps=10, fine_clusters=16,
    )  # fmt: skip
    home = Home(root / "a").ensure()
    run, _ = build_run(spec, home, load_or_create(home.identity_path))
    nodes: dict[str, Node] = {}
    mallory = None
    try:
        # a (the run's creator, every shard, the address everyone joins) trains the router: the tests kill experts
        nodes["a"] = Node("a", root / "a", "--run", run, "--claim", "router", *COMMON)
        maddr = nodes["a"].maddr
        for name in ("b", "c"):
            nodes[name] = Node(name, root / name, "--run", run, "--join", maddr, *COMMON)
        deadline = time.monotonic() + 120
        owners = {nodes[n].wait_for("claimed", deadline)["job"]: n for n in ("a", "b", "c")}
        assert sorted(owners) == ["expert/0", "expert/1", "router"]
        for name in ("d", "e"):  # two standbys: each kill test needs one
            nodes[name] = Node(name, root / name, "--run", run, "--join", maddr, *COMMON)
            nodes[name].wait_for("standby", time.monotonic() + 90)
        ids = {n: nodes[n].ready()["node_id"] for n in nodes}
        for job, name in owners.items():  # an honest checkpoint of every job exists before the attack
            nodes[name].wait_published(job, 40, 150)
        jobs = keys.jobs_for(2)
        mallory = MaliciousPeer(root, run, [maddr])
        mallory.takeover_pointer("expert/0")
        spam = mallory.spam_pointers(jobs, per_job=30, step=50)
        assert mallory.stored >= 0.9 * len(spam)  # the attack really is in the DHT
        assert mallory.flood_leases("expert/0", 1000) >= 900
        assert mallory.poison(jobs) == 1 + 2 * len(jobs)
        yield {"root": root, "run": run, "maddr": maddr, "nodes": nodes, "owners": owners, "ids": ids, "spam": spam}
    finally:
        if mallory is not None:
            mallory.close()
        for node in nodes.values():
            node.kill()


def test_status_and_fetch_keep_working_and_pick_the_honest_checkpoints(attacked):
    """Under the whole attack. (Once intermittent: a fresh `status` named no owner for the router when the lease
    copy it read had missed renewals; fixed by re-reading such a job on its own, membership.lagging_jobs. Outputs
    are kept under the module's tmp folder for diagnosis: status.out/.err, fetch.out.)"""
    s = attacked
    report = cli(
        s["root"] / "reader", "--log-level", "debug", "status", "--run", s["run"], "--experts", "2",
        "--join", s["maddr"], "--json",
    )  # fmt: skip
    (s["root"] / "status.out").write_text(report.stdout)  # kept for diagnosis if it fails
    (s["root"] / "status.err").write_text(report.stderr)
    assert report.returncode == 0, report.stderr[-2000:]
    rows = {r["job"]: r for r in json.loads(report.stdout)["jobs"]}
    for job, name in s["owners"].items():
        assert rows[job]["owner"] == s["ids"][name], (job, report.stdout[-3000:])  # not a flood key
        assert rows[job]["checkpoint_step"] is None or rows[job]["checkpoint_step"] < 1_000_000

    got = cli(s["root"] / "reader", "fetch", "--all", "--run", s["run"], "--join", s["maddr"], "--json")
    (s["root"] / "fetch.out").write_text(got.stdout)
    assert got.returncode == 0, got.stdout[-2000:] + got.stderr[-3000:]
    verdicts = json.loads(got.stdout)["checkpoints"]
    ok = {v["job"]: v for v in verdicts if v["verdict"] == "ok"}
    assert sorted(ok) == ["expert/0", "expert/1", "router"]
    for job, v in ok.items():
        assert v["signer"] == s["ids"][s["owners"][job]] and v["step"] < 1_000_000
    tried = [v for v in verdicts if v["verdict"] != "ok" and not v["reason"].startswith("skipped")]
    assert not [v for v in tried if v["cid"] in s["spam"]], "a spam pointer was downloaded"
    skipped = [v for v in verdicts if v["reason"].startswith("skipped")]
    assert len(skipped) >= 3 * 30  # every spam pointer (and the takeover pointer) reported, none downloaded
    # each verdict carries its code (protocol/selection.md, "Verdict codes"); a skipped one, a pre-download code
    assert {v["code"] for v in ok.values()} <= {"accepted", "already-held"}
    before_download = {"wrong-job", "publisher", "not-eligible", "step-budget", "rollback", "rate-bound"}
    without_download = {"penalised", "cooling", "vouched-fallback", "skipped-budget"}
    assert {v["code"] for v in skipped} <= before_download | without_download


def test_standby_takes_over_a_crashed_owner_under_the_attack(attacked):
    s = attacked
    nodes, owners = s["nodes"], s["owners"]
    victim = nodes[owners["expert/0"]]
    survivors = [n for n in nodes.values() if n is not victim]
    for n in survivors:
        n.published()
    # sybil leases that look worked: each key also says, in its own status, that it trains expert/0. By the serving
    # rule alone one of them would inherit the job at the crash (its backdated start beats any new claim); the
    # watchers saw them written into an occupied job and ignore them. A second attacker process stores them: the
    # first one's own storage serves malformed values for the status key.
    (s["root"] / "mallory2").mkdir(exist_ok=True)
    sybil = MaliciousPeer(s["root"] / "mallory2", s["run"], [s["maddr"]])
    try:
        before = {n.name: len(n.seen) for n in survivors}
        assert sybil.flood_leases("expert/0", 50, serving=50) >= 90  # leases and statuses

        def ignored(n) -> int:
            n.published()  # reads the lines that arrived
            return sum(int(m[1]) for line in n.seen[before[n.name] :] if (m := SQUATTING.search(line)))

        deadline = time.monotonic() + 60
        while min(ignored(n) for n in survivors) < 45 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert min(ignored(n) for n in survivors) >= 45, {n.name: ignored(n) for n in survivors}
        marks = {n.name: n.mark() for n in survivors}
        victim.kill()
        t0 = time.monotonic()
        successor = None
        while successor is None and time.monotonic() < t0 + TAKEOVER_S + 60:
            successor = next((n for n in survivors if n.events("claimed", marks[n.name], job="expert/0")), None)
            time.sleep(0.2)  # polling the survivors' events with a deadline
        took = time.monotonic() - t0
    finally:
        sybil.close()
    assert successor is not None, "nobody took over expert/0 (the lease flood or the DHT attack squats it)"
    assert took <= TAKEOVER_S, f"takeover took {took:.0f} s"
    first = successor.wait_published("expert/0", 0, 120, since=marks[successor.name])
    assert first < BUDGET  # it keeps training the job (the attacker's step 1,000,400 would have stopped it)
    resumed = [ev["step"] for ev in successor.events("took_over", marks[successor.name], job="expert/0")]
    assert all(r < first for r in resumed)  # resumed (if at all) from an honest checkpoint, then trained on


def mirrored_steps(nodes) -> list[int]:
    for n in nodes:
        n.published()  # reads the lines that arrived
    return [int(m[1]) for n in nodes for line in n.seen if (m := MIRRORED.search(line))]


def test_a_lease_owner_cannot_freeze_its_job_with_an_all_zero_checkpoint(attacked):
    s = attacked
    job, nodes = "expert/1", s["nodes"]
    victim = nodes[s["owners"][job]]
    survivors = [n for n in nodes.values() if n is not victim and n.proc.poll() is None]
    # a standby holds an honest copy first (standbys mirror every job's latest checkpoint)
    deadline = time.monotonic() + 120
    while not mirrored_steps(survivors) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert mirrored_steps(survivors), "no standby mirrored expert/1"
    marks = {n.name: n.mark() for n in survivors}
    lines = {n.name: len(n.seen) for n in survivors}  # its log: the refusal is a diagnostic line, not an event
    victim.kill()  # the owner goes quiet: its lease stays valid until it expires (TTL)
    published = [(step, cid) for j, step, cid in victim.published() if j == job]
    attacker = ZeroCheckpointOwner(s["root"], Home(s["root"] / victim.name), s["run"], job)
    # newer than anything the owner wrote, within the budget and the rate bound: only its score can refuse it
    zero_cid = attacker.prepare(parent=max(published)[1])  # signed inside the lease
    zero_step = attacker.step
    try:
        attacker.serve([s["maddr"]])
        successor = None
        deadline = time.monotonic() + TAKEOVER_S + 60
        while successor is None and time.monotonic() < deadline:
            successor = next((n for n in survivors if n.events("claimed", marks[n.name], job=job)), None)
            time.sleep(0.2)  # polling the survivors' events with a deadline
        assert successor is not None, "nobody took over expert/1"
        first = successor.wait_published(job, 0, 180, since=marks[successor.name])
        log = successor.seen[lines[successor.name] :]
        # the successor refused the zero checkpoint: by its score, or (when its mirror had scored it first) because
        # the signer is penalised for it; it resumed from an honest one
        refused = [line for line in log if f"not resuming from step {zero_step}" in line]
        assert refused and ("zero predictor" in refused[0] or "penalised" in refused[0]), log[-30:]
        resumed = [ev["step"] for ev in successor.events("took_over", marks[successor.name], job=job)]
        assert resumed and resumed[0] < zero_step and resumed[0] % 10 == 0, log[-30:]  # an honest publication
        assert resumed[0] < first < BUDGET  # and keeps training the job

        # expert/1 only: expert/0's fresh fetch under its serving sybils is the next test
        got = cli(s["root"] / "reader", "fetch", "1", "--run", s["run"], "--join", s["maddr"], "--json")
        assert got.returncode == 0, got.stdout[-2000:] + got.stderr[-3000:]
        verdicts = [v for v in json.loads(got.stdout)["checkpoints"] if v["job"] == job]
        ok = [v for v in verdicts if v["verdict"] == "ok"]
        assert ok and ok[0]["cid"] != zero_cid, verdicts
        # refused by its score, or before any download when this fresh reader no longer finds the departed
        # owner's lease in the DHT (its record lapsed: then the signer is not eligible for the job)
        zero = [v for v in verdicts if v["cid"] == zero_cid]
        assert all(v["code"] in ("score-margin", "not-eligible") for v in zero), zero
    finally:
        attacker.close()


def test_a_fresh_fetch_finds_the_owner_of_a_job_flooded_with_serving_sybils(attacked):
    s = attacked
    if not (s["root"] / "mallory2").exists():
        pytest.skip("the serving sybil flood (the takeover test) did not run")
    # alone, a fresh reader cannot tell the 50 serving sybil leases (still live) from the successor's: all look
    # equally old to it and a hash they outnumber decides. It trusts the peer it joined through, whose status names
    # the owner its own watch sees (swarm/claims.attested); that watch ignored the sybils as squatters.
    got = cli(s["root"] / "fresh", "fetch", "0", "--run", s["run"], "--join", s["maddr"], "--json")
    assert got.returncode == 0, got.stdout[-2000:] + got.stderr[-1000:]
    ok = [v for v in json.loads(got.stdout)["checkpoints"] if v["verdict"] == "ok"]
    assert ok and ok[0]["job"] == "expert/0" and ok[0]["step"] < 1_000_000, ok
    assert ok[0]["signer"] in s["ids"].values()  # an honest node's checkpoint
    report = cli(s["root"] / "fresh", "status", "--run", s["run"], "--experts", "2", "--join", s["maddr"], "--json")
    assert report.returncode == 0, report.stderr[-2000:]
    row = next(r for r in json.loads(report.stdout)["jobs"] if r["job"] == "expert/0")
    assert row["owner"] in s["ids"].values(), row  # not a sybil key
