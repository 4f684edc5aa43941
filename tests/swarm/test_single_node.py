"""One in-process DHT node: announcer records round-trip through the validator; claim and clean release."""

from __future__ import annotations

import logging
import re
import threading
import time
from itertools import islice

import pytest

from paris_node import __version__
from paris_node.identity import Identity, load_or_create
from paris_node.records import LeasePayload, StatusPayload, sign_record
from paris_node.swarm import keys
from paris_node.swarm.announcer import Announcer
from paris_node.swarm.claims import ClaimRules, _hash, owners
from paris_node.swarm.dht import dht_now_ms, join_command, start_dht, store, visible_maddrs
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


def _put(dht, run: str, who, payload, key: str, ttl_ms: int) -> None:
    now = dht_now_ms()
    record = sign_record(who, payload, run=run, issued_ms=now)
    assert store(dht, key, who.node_id, record.to_bytes(), (now + ttl_ms) / 1e3)


def _worked_claim(dht, run: str, who, job: str, start_ms: int, ttl_ms: int) -> None:
    """An active lease on `job` and a status saying its holder trains it: what a serving owner looks like."""
    lease = LeasePayload(job=job, peer=who.peer_id, lease_start_ms=start_ms, seq=0, ttl_ms=ttl_ms, state="active")
    _put(dht, run, who, lease, keys.lease_key(run, job), ttl_ms)
    status = StatusPayload(role="expert", peer=who.peer_id, version=__version__, job=job)
    _put(dht, run, who, status, keys.status_key(run), 60_000)


def beats(who: Identity, owner: Identity, run: str = "sq", job: str = "expert/0") -> bool:
    """Whether `who`'s lease would win a tie of equal starts against `owner`'s (claims.rank's hash)."""
    return _hash(run, job, who.node_id) < _hash(run, job, owner.node_id)


def test_a_standby_that_watched_the_owner_ignores_leases_written_into_its_job(tmp_path, caplog):
    """Sybil leases stored while an owner holds the job, each key with a status saying it trains the job, would
    inherit the job at the owner's crash by their (backdated) start; a standby that saw them arrive ignores them
    (claims.born_squatting) and takes the job over once the owner's lease expires."""
    caplog.set_level(logging.INFO, logger="paris_node.swarm.membership")
    run, job = "sq", "expert/0"
    owner, standby = Identity.generate(), load_or_create(tmp_path / "b.key")
    dht = start_dht(tmp_path / "b.key")
    stop, crashed = threading.Event(), threading.Event()
    rules = ClaimRules(skew_ms=200, occupied_ms=1_000)
    start = dht_now_ms() - 60_000  # it has held the job for a minute (more than any backdating a reader allows)

    def renew() -> None:  # the owner: renews every second until it "crashes" (stops without releasing)
        while not crashed.wait(1.0):
            _worked_claim(dht, run, owner, job, start, 3_000)

    _worked_claim(dht, run, owner, job, start, 3_000)
    renewer = threading.Thread(target=renew, daemon=True)
    renewer.start()
    ann = Announcer(dht, standby, run).start()
    m = Membership(dht, standby, run, keys.jobs_for(1), claim=0, ttl=3.0, settle=0.3, jitter=0.0, rules=rules,
                   announcer=ann)  # fmt: skip
    got: list[str | None] = []
    claimer = threading.Thread(target=lambda: got.append(m.acquire(stop)), daemon=True)
    try:
        claimer.start()
        poll(lambda: m.history.current_owner(job, dht_now_ms()) == owner.node_id)
        seen = dht_now_ms()
        # the standby has watched for a whole TTL (a lease it sees from now on may backdate itself by at most
        # fresh_clamp_ms, so the owner still wins its view) and seen the owner win for occupied_ms
        poll(lambda: dht_now_ms() - seen > 3_000 + rules.skew_ms + rules.occupied_ms)
        # sybils that would win a fresh reader's tie: the owner's start (both clamp alike) and a smaller hash
        sybils = list(islice((w for w in iter(Identity.generate, None) if beats(w, owner)), 5))
        for who in sybils:
            _worked_claim(dht, run, who, job, start, 600_000)
        ignored = re.compile(r"ignoring (\d+) lease\(s\) on expert/0 written while")  # one line per read
        poll(lambda: sum(int(n) for n in ignored.findall(caplog.text)) == len(sybils))
        assert not got  # still a standby: the owner renews

        # a fresh reader (status, fetch) has watched nothing: alone, it crowns a sybil; trusting the standby it
        # joined through (its status attests its watched view, claims.attested), it names the owner
        def fresh_owner(witnesses: list[str]) -> str | None:
            leases = read_leases(dht, run, [job], witnesses=witnesses)
            won = owners(leases, dht_now_ms(), run=run)
            return won[job].holder if job in won else None

        assert fresh_owner([]) in {w.node_id for w in sybils}
        poll(lambda: fresh_owner([standby.node_id]) == owner.node_id)
        assert fresh_owner([sybils[0].node_id]) != owner.node_id  # the witness is whom the reader joined, no one else
        crashed.set()
        claimer.join(15.0)  # TTL 3 s + skew + poll + settle, with slack
        assert got == [job], "the standby did not take over: a sybil lease inherited the job"
        assert m.owned_job == job
    finally:
        crashed.set()
        stop.set()
        claimer.join(10.0)
        m.release()
        ann.stop()
        dht.shutdown()
