"""`paris-node status` summary from hand-built verified records (pure)."""

from paris_node.identity import Identity
from paris_node.records import PointerPayload, StatusPayload, sign_record
from paris_node.swarm.claims import ACTIVE, Lease
from paris_node.swarm.report import format_report, swarm_report

A, B = Identity.from_seed(b"a" * 32), Identity.from_seed(b"b" * 32)
T = 1_700_000_000_000
CID = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"


def test_report_joins_owner_status_and_newest_pointer():
    leases = [Lease("expert/0", A.node_id, T, 3, 30_000, ACTIVE, T + 9000)]
    statuses = [
        sign_record(A, StatusPayload(role="expert", peer=A.peer_id, version="0", job="expert/0", step=5), "r", T),
        sign_record(A, StatusPayload(role="expert", peer=A.peer_id, version="0", job="expert/0", step=9), "r", T + 1),
        sign_record(B, StatusPayload(role="standby", peer=B.peer_id, version="0"), "r", T),
    ]
    pointers = {
        "expert/0": [
            sign_record(A, PointerPayload(job="expert/0", manifest_cid=CID, step=8, seq=1), "r", T),
            sign_record(A, PointerPayload(job="expert/0", manifest_cid="bafkreiold0000", step=4, seq=0), "r", T),
        ]
    }
    rep = swarm_report("r", ["expert/0", "router"], leases, statuses, pointers, T + 10_000)
    row0, row1 = rep["jobs"]
    assert (row0["owner"], row0["state"], row0["step"], row0["checkpoint"], row0["checkpoint_step"]) == (
        A.node_id,
        "active",
        9,
        CID,
        8,
    )
    assert row1["owner"] is None and row1["state"] == "free"
    assert rep["standbys"] == [B.node_id]
    text = format_report(rep)
    assert "expert/0" in text and "free" in text and "standbys: z6Mk" in text


def test_a_lease_flood_and_a_high_step_pointer_do_not_fool_the_report():
    now = T + 100_000
    honest = Lease("expert/0", A.node_id, T, 30, 30_000, ACTIVE, now - 1000)
    flood_keys = [Identity.from_seed(bytes([60 + i]) * 32) for i in range(40)]
    flood = [Lease("expert/0", k.node_id, T - 50_000, 0, 600_000, ACTIVE, now - 500) for k in flood_keys]
    statuses = [sign_record(A, StatusPayload(role="expert", peer=A.peer_id, version="0", job="expert/0"), "r", now)]
    pointers = {
        "expert/0": [
            sign_record(A, PointerPayload(job="expert/0", manifest_cid=CID, step=80, seq=1), "r", now),
            sign_record(
                B, PointerPayload(job="expert/0", manifest_cid="bafkreievil000", step=1_000_400, seq=0), "r", now
            ),
        ]
    }
    row = swarm_report("r", ["expert/0"], [honest, *flood], statuses, pointers, now)["jobs"][0]
    assert row["owner"] == A.node_id and row["checkpoint_step"] == 80 and row["checkpoint"] == CID


def test_after_a_graceful_stop_the_last_owners_checkpoint_is_still_shown():
    now = T + 100_000
    gone = Lease("router", A.node_id, T, 50, 20_000, ACTIVE, now - 2000)  # its release may not have reached us
    claimant = Lease("router", B.node_id, now - 3000, 0, 20_000, "claiming", now - 3000)
    statuses = [sign_record(A, StatusPayload(role="offline", peer=A.peer_id, version="0"), "r", now - 1000)]
    pointers = {"router": [sign_record(A, PointerPayload(job="router", manifest_cid=CID, step=80, seq=1), "r", now)]}
    row = swarm_report("r", ["router"], [gone, claimant], statuses, pointers, now)["jobs"][0]
    assert row["owner"] == B.node_id and row["checkpoint_step"] == 80  # the offline node no longer owns it
