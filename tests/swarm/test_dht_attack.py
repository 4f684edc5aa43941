"""A malicious DHT replica (its own identity, joined to the swarm) answers finds with malformed values.

Real hivemind DHT processes and p2pd on 127.0.0.1. The attacker holds no record; it plants, in its own DHT
storage, values honest hivemind would never produce and serves them to every find: an empty dictionary whose
maxsize is a string (hivemind 1.1.12's traversal raised TypeError on it and cached it), and an empty
dictionary "expiring" in the far future (it ended every later search with nothing). With the start-up patch
(swarm/hivemind_patch.py) the honest reader gets the honest records, drops the replies, blacklists the sender,
and caches nothing of them.
"""

from __future__ import annotations

import time

import pytest
from hivemind.dht.routing import DHTID
from hivemind.dht.storage import DictionaryDHTValue

from paris_node.identity import load_or_create
from paris_node.records import LeasePayload, sign_record
from paris_node.swarm import hivemind_patch, keys
from paris_node.swarm.dht import dht_now_ms, get_many, start_dht, stop_dht, store, visible_maddrs
from paris_node.swarm.membership import read_leases

pytestmark = [pytest.mark.swarm, pytest.mark.timeout(120)]
RUN = "attack"
JOB = "expert/0"


class _Plant:
    """Runs in the attacker's DHT process: put a malformed dictionary straight into its storage."""

    def __init__(self, key: str, maxsize, expiration: float):
        self.key, self.maxsize, self.expiration = key, maxsize, expiration

    async def __call__(self, _dht, node):
        bad = DictionaryDHTValue()
        bad.maxsize = self.maxsize
        node.protocol.storage.data.pop(DHTID.generate(self.key), None)
        # TimedStorage.store, not store_subkey: a raw value as a malicious implementation would hold it
        super(type(node.protocol.storage), node.protocol.storage).store(DHTID.generate(self.key), bad, self.expiration)
        return True


class _Inspect:
    """Runs in the reader's DHT process: is the attacker blacklisted, and what does the cache hold for the key?"""

    def __init__(self, key: str, attacker: str):
        self.key, self.attacker = key, attacker

    async def __call__(self, _dht, node):
        cached = node.protocol.cache.get(DHTID.generate(self.key))
        banned = any(str(p) == self.attacker for p in node.blacklist.ban_counter)
        shape = None if cached is None else (type(cached.value).__name__, getattr(cached.value, "maxsize", None))
        return banned, shape


def test_malformed_replies_are_dropped_penalised_and_never_cached(tmp_path):
    honest_key, attacker_key, reader_key = (tmp_path / f"{n}.key" for n in ("honest", "attacker", "reader"))
    honest_id = load_or_create(honest_key)
    attacker_id = load_or_create(attacker_key)
    dhts = []
    try:
        honest = start_dht(honest_key)
        dhts.append(honest)
        join = visible_maddrs(honest)
        attacker = start_dht(attacker_key, initial_peers=join)
        dhts.append(attacker)
        lease_key = keys.lease_key(RUN, JOB)
        now = dht_now_ms()
        lease = LeasePayload(job=JOB, peer=honest_id.peer_id, lease_start_ms=now, seq=0, ttl_ms=60_000, state="active")
        record = sign_record(honest_id, lease, run=RUN, issued_ms=now)
        assert store(honest, lease_key, honest_id.node_id, record.to_bytes(), (now + 60_000) / 1000)
        status_key = keys.status_key(RUN)
        # the string-maxsize dictionary on the lease key, the far-future empty one on the status key
        assert attacker.run_coroutine(_Plant(lease_key, "x", time.time() + 3600))
        assert attacker.run_coroutine(_Plant(status_key, 1.0, 1e300))

        reader = start_dht(reader_key, initial_peers=join, client_mode=True)
        dhts.append(reader)
        for _ in range(3):  # repeated reads: nothing bad was cached by the first
            got = get_many(reader, [lease_key, status_key], timeout=20)
            assert got is not None, "the read failed: a malformed reply broke the traversal"
            assert [sub for sub, _, _ in got[lease_key]] == [honest_id.node_id]
            assert got[status_key] == []
        leases = read_leases(reader, RUN, [JOB])
        assert [lease.holder for lease in leases] == [honest_id.node_id]
        banned, shape = reader.run_coroutine(_Inspect(lease_key, attacker_id.peer_id))
        assert banned, "the sender of malformed replies is not penalised"
        assert shape is None or shape[1] != "x"
        _, status_shape = reader.run_coroutine(_Inspect(status_key, attacker_id.peer_id))
        assert status_shape is None
        # the honest replica did not learn the malformed values either (it would serve them onward)
        _, honest_shape = honest.run_coroutine(_Inspect(lease_key, attacker_id.peer_id))
        assert honest_shape is None or honest_shape[1] != "x"
    finally:
        for d in reversed(dhts):
            stop_dht(d)


def test_patch_refuses_another_hivemind_version(monkeypatch):
    monkeypatch.setattr(hivemind_patch, "_applied", False)
    monkeypatch.setattr(hivemind_patch.hivemind, "__version__", "1.1.13")
    with pytest.raises(RuntimeError, match="hivemind==1.1.12"):
        hivemind_patch.apply()
