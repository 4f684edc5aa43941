"""Who copies a checkpoint, and who counts as holding one: the pure decisions behind replication."""

from __future__ import annotations

from paris_node.identity import Identity
from paris_node.node.mirror import ESCALATE_MIN_S, escalation, needs_copy
from paris_node.records import ProviderPayload, StatusPayload, sign_record
from paris_node.swarm.report import live_holders

RUN = "bafkreirunforreplicatests"
CID = "bafkreicheckpointmanifest"
NODES = [Identity.from_seed(bytes([i]) * 32) for i in range(1, 6)]
PEERS = [n.peer_id for n in NODES]


def provider(i: int):
    return sign_record(NODES[i], ProviderPayload(peer=PEERS[i], cids=[CID]), run=RUN, issued_ms=1000)


def status(i: int, role: str, at: int):
    return sign_record(NODES[i], StatusPayload(role=role, peer=PEERS[i], version="t"), run=RUN, issued_ms=at)


def test_a_holder_that_went_offline_no_longer_counts():
    providers = [provider(0), provider(1), provider(1)]
    statuses = [status(0, "expert", 1000), status(1, "expert", 1000), status(1, "offline", 2000)]
    assert live_holders(providers, statuses) == [PEERS[0]]
    assert live_holders(providers, [*statuses, status(1, "standby", 3000)]) == [PEERS[0], PEERS[1]]


def test_standbys_copy_everything_owners_only_top_up_and_never_their_own_job():
    me = PEERS[2]
    assert needs_copy([PEERS[0]], PEERS, me, CID, target=2, standby=True, own_job=False)
    assert not needs_copy([PEERS[0]], PEERS, me, CID, target=2, standby=True, own_job=True)
    assert not needs_copy([PEERS[0], me], PEERS, me, CID, target=5, standby=True, own_job=False)
    assert not needs_copy(PEERS[:2], PEERS, me, CID, target=2, standby=False, own_job=False)  # enough holders


def test_a_deficit_is_filled_by_exactly_that_many_owners():
    holders = [PEERS[0]]
    for target, expected in ((2, 1), (3, 2), (9, 4)):
        elected = [p for p in PEERS if needs_copy(holders, PEERS, p, CID, target, standby=False, own_job=False)]
        assert len(elected) == expected and PEERS[0] not in elected
    # every node computes the same election, and another checkpoint elects independently
    a = [p for p in PEERS if needs_copy(holders, PEERS, p, CID, 2, False, False)]
    b = [p for p in PEERS if needs_copy(holders, PEERS, p, CID + "x", 2, False, False)]
    assert len(a) == len(b) == 1


def test_a_checkpoint_that_stays_short_elects_one_more_owner_each_escalation_period():
    """An elected owner may be stuck or refuse the copy: the election widens while the deficit lasts."""
    holders = [PEERS[0]]
    elected = [[p for p in PEERS if needs_copy(holders, PEERS, p, CID, 2, False, False, extra=e)] for e in range(5)]
    assert [len(e) for e in elected] == [1, 2, 3, 4, 4]  # never more than the live nodes not holding it
    assert all(set(a) <= set(b) for a, b in zip(elected, elected[1:], strict=False))  # elected stay elected
    assert not needs_copy(PEERS[:2], PEERS, PEERS[3], CID, 2, False, False, extra=3)  # no deficit, no copy
    # ten rounds, at least ESCALATE_MIN_S, per extra owner
    assert [escalation(s, every_s=1.0) for s in (0, 9.9, 10, 25)] == [0, 0, 1, 2]
    assert escalation(299, every_s=30.0) == 0 and escalation(300, every_s=30.0) == 1
    assert escalation(ESCALATE_MIN_S, every_s=0.1) == 1
