"""One in-process DHT node: announcer records round-trip through the validator; claim and clean release."""

from __future__ import annotations

import threading
import time

import pytest

from paris_node.identity import load_or_create
from paris_node.swarm import keys
from paris_node.swarm.announcer import Announcer
from paris_node.swarm.claims import ClaimRules
from paris_node.swarm.dht import join_command, start_dht, visible_maddrs
from paris_node.swarm.membership import (
    Membership,
    peers_providing,
    read_leases,
    read_pointers,
    read_providers,
    read_statuses,
)

pytestmark = [pytest.mark.swarm, pytest.mark.timeout(90)]
CID = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"


def poll(fn, deadline_s: float = 15.0):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = fn()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met before the deadline")


def test_claim_announce_read_and_release(tmp_path):
    identity = load_or_create(tmp_path / "identity.key")
    dht = start_dht(tmp_path / "identity.key")
    try:
        maddrs = visible_maddrs(dht)
        assert maddrs and all(f"/p2p/{identity.peer_id}" in m for m in maddrs)  # the key file is the peer id
        assert join_command(maddrs).startswith("paris-node start --join /ip4/127.0.0.1/")
        jobs = keys.jobs_for(2)
        ann = Announcer(dht, identity, "one", addrs=maddrs).start()
        m = Membership(
            dht,
            identity,
            "one",
            jobs,
            claim=1,
            ttl=3.0,
            settle=0.3,
            jitter=0.0,
            rules=ClaimRules(skew_ms=200),
            announcer=ann,
        )
        stop = threading.Event()
        assert m.acquire(stop) == "expert/1"
        assert m.owned_job == "expert/1"
        ann.set_status(step=7, loss="0.25")
        ann.provide([CID])
        ann.set_pointer("expert/1", CID, 7)
        st = poll(lambda: [r for r in read_statuses(dht, "one") if r.body.step == 7])
        assert st[0].signer == identity.node_id and st[0].body.role == "expert" and st[0].body.job == "expert/1"
        assert poll(lambda: read_providers(dht, "one", CID))[0].body.cids == [CID]
        # the one lookup of every fetch path: announcers first, then the known holders, each once
        other = "12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq"
        assert peers_providing(dht, "one", CID, also=[other, identity.peer_id]) == [identity.peer_id, other]
        assert peers_providing(dht, "other-run", CID, also=[other]) == [other]  # none announced in that run
        assert poll(lambda: read_pointers(dht, "one", "expert/1"))[0].body.step == 7
        assert read_statuses(dht, "other-run") == []  # namespaced by run
        first = read_leases(dht, "one", jobs)
        assert [(lease.job, lease.state) for lease in first] == [("expert/1", "active")]
        seq0 = first[0].seq
        poll(lambda: read_leases(dht, "one", jobs)[0].seq > seq0, 5)  # heartbeat at TTL/3 with seq+1
        assert not m.lost_event.is_set()
        m.release()
        ann.stop()
        assert [lease.state for lease in read_leases(dht, "one", jobs)] == ["released"]
        assert [r.body.role for r in read_statuses(dht, "one")] == ["offline"]
    finally:
        dht.shutdown()
