"""The read-side repairs of swarm/membership.py that need no network: which lease keys are re-read on their own."""

from __future__ import annotations

from paris_node.swarm.claims import ACTIVE, RELEASED, Lease
from paris_node.swarm.membership import attestation, lagging_jobs, newest_leases, witnesses_of

NOW = 1_700_000_000_000
TTL = 20_000


def lease(job: str, holder: str, issued: int, state: str = ACTIVE, seq: int = 0) -> Lease:
    return Lease(job, holder, NOW - 600_000, seq, TTL, state, issued)


def test_an_expired_copy_of_a_lease_whose_holder_still_serves_the_job_is_re_read():
    stale = lease("router", "b", NOW - TTL - 10_000)  # renewed meanwhile; this replica missed it
    fresh = lease("expert/0", "a", NOW - 2_000)
    serving = {"a": "expert/0", "b": "router", "c": None}
    assert lagging_jobs([stale, fresh], serving, NOW, 3_000) == ["router"]


def test_a_copy_that_missed_a_renewal_is_re_read_before_it_expires():
    """Live when read (within the skew) but expired a few seconds later, when the reader uses it: seen in the
    attack test (22.6 s old at TTL 20 s + 3 s skew)."""
    serving = {"b": "router"}
    assert lagging_jobs([lease("router", "b", NOW - 22_600)], serving, NOW, 3_000) == ["router"]
    assert lagging_jobs([lease("router", "b", NOW - TTL // 2 - 3_001)], serving, NOW, 3_000) == ["router"]
    assert lagging_jobs([lease("router", "b", NOW - TTL // 2)], serving, NOW, 3_000) == []


def test_nothing_is_re_read_when_the_lease_is_live_released_or_its_holder_serves_another_job():
    serving = {"a": "expert/0", "b": "router", "c": "expert/1"}
    assert lagging_jobs([lease("router", "b", NOW - TTL // 3)], serving, NOW, 3_000) == []  # renewed on time
    assert lagging_jobs([lease("router", "b", NOW - 99_000, state=RELEASED)], serving, NOW, 3_000) == []
    assert lagging_jobs([lease("router", "c", NOW - 99_000)], serving, NOW, 3_000) == []  # c serves expert/1
    assert lagging_jobs([lease("router", "x", NOW - 99_000)], serving, NOW, 3_000) == []  # no status at all
    # another holder's live lease on the job: the job is not free, no need to look again
    assert lagging_jobs([lease("router", "b", NOW - 99_000), lease("router", "a", NOW)], serving, NOW, 3_000) == []


def test_newest_leases_keeps_the_latest_write_per_job_and_holder():
    old, new = lease("router", "b", NOW - 30_000, seq=3), lease("router", "b", NOW - 1_000, seq=7)
    other = lease("expert/0", "b", NOW - 30_000)
    assert sorted(newest_leases([old, other, new]), key=lambda x: x.job) == [other, new]


def test_the_attestation_is_the_witnesses_own_latest_status_first_witness_first():
    from paris_node import __version__
    from paris_node.identity import Identity
    from paris_node.records import StatusPayload, sign_record

    w1, w2, liar = (Identity.from_seed(bytes([i]) * 32) for i in (1, 2, 3))

    def status(who, at, owners, role="standby", peer=None):
        body = StatusPayload(role=role, peer=peer or who.peer_id, version=__version__, owners=owners)
        return sign_record(who, body, run="r", issued_ms=at)

    a, b, c = ("A" * 20, "B" * 20, "C" * 20)
    statuses = [
        status(w1, 1, {"expert/0": c}),
        status(w1, 2, {"expert/0": a}),  # its latest counts
        status(w2, 2, {"expert/0": b, "router": b}),
        status(liar, 9, {"expert/0": c, "expert/1": c}, peer=w1.peer_id),  # claims w1's peer id: its key is not w1's
    ]
    assert attestation(statuses, [w1.node_id, w2.node_id]) == {"expert/0": a, "router": b}
    assert attestation(statuses, [w2.node_id, w1.node_id]) == {"expert/0": b, "router": b}
    assert attestation(statuses, []) == {}
    assert attestation([*statuses, status(w1, 3, {"expert/0": a}, role="offline")], [w1.node_id]) == {}


def test_witnesses_are_the_peers_named_in_the_join_addresses():
    from paris_node.identity import Identity

    w = Identity.from_seed(b"w" * 32)
    maddrs = [f"/ip4/127.0.0.1/tcp/4001/p2p/{w.peer_id}", f"/ip4/10.0.0.1/udp/4001/quic/p2p/{w.peer_id}",
              "/ip4/127.0.0.1/tcp/4002", "/ip4/127.0.0.1/tcp/4003/p2p/QmNotAnEd25519PeerId"]  # fmt: skip
    assert witnesses_of(maddrs) == [w.node_id]
    assert witnesses_of([]) == []
