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
