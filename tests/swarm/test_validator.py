"""The Ed25519 record validator and key layout, without a network."""

import dataclasses

import pytest
from hivemind.dht.validation import DHTRecord
from hivemind.utils import MSGPackSerializer

from paris_node.errors import UsageError
from paris_node.identity import Identity
from paris_node.records import LeasePayload, PointerPayload, ProviderPayload, StatusPayload, now_ms, sign_record
from paris_node.swarm import keys
from paris_node.swarm.validator import ParisValidator, decode_entry

A, B = Identity.from_seed(b"a" * 32), Identity.from_seed(b"b" * 32)
NOW = now_ms() - 1000
V = ParisValidator(skew_ms=3000)
CID = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"


def lease(who=A, job="expert/0", ttl_ms=30_000, peer=None):
    return LeasePayload(job=job, peer=peer or who.peer_id, lease_start_ms=NOW, seq=0, ttl_ms=ttl_ms, state="claiming")


def entry(key: str, subkey: str, value: bytes, expiration_s: float = NOW / 1000 + 30) -> DHTRecord:
    return DHTRecord(
        keys.dht_key_id(key), MSGPackSerializer.dumps(subkey), MSGPackSerializer.dumps(value), expiration_s
    )


def signed(payload, who=A, run="r1"):
    return sign_record(who, payload, run=run, issued_ms=NOW).to_bytes()


def test_key_layout_is_namespaced_by_run_and_rejects_bad_ids():
    assert keys.lease_key("r1", "expert/3") == "paris/v1/r1/lease/expert/3"
    assert keys.status_key("r1") == "paris/v1/r1/status"
    assert keys.pointer_key("r1", "router") == "paris/v1/r1/ckpt/router"
    assert keys.provider_key("r1", CID) == f"paris/v1/r1/provider/{CID}"
    assert keys.jobs_for(2) == ["expert/0", "expert/1", "router"]
    assert keys.subkey_for(A) == keys.subkey_for(A.peer_id) == keys.subkey_for(A.node_id) == A.node_id
    for bad_job in ("expert/01", "expert/-1", "expert/1024", "experts/1", "Router"):
        with pytest.raises(ValueError):
            keys.lease_key("r1", bad_job)
    with pytest.raises(UsageError):
        keys.status_key("a/b")


def test_own_records_of_every_dht_kind_are_accepted():
    assert V.validate(entry(keys.lease_key("r1", "expert/0"), A.node_id, signed(lease())))
    status = StatusPayload(role="expert", peer=A.peer_id, version="0.1.0", job="expert/0")
    assert V.validate(entry(keys.status_key("r1"), A.node_id, signed(status)))
    ptr = PointerPayload(job="router", manifest_cid=CID, step=3, seq=1)
    assert V.validate(entry(keys.pointer_key("r1", "router"), A.node_id, signed(ptr), NOW / 1000 + 3600))
    prov = ProviderPayload(peer=A.peer_id, cids=[CID])
    assert V.validate(entry(keys.provider_key("r1", CID), A.node_id, signed(prov), NOW / 1000 + 600))


def test_cannot_write_under_another_nodes_subkey():
    assert not V.validate(entry(keys.lease_key("r1", "expert/0"), B.node_id, signed(lease())))


def test_forged_signature_is_rejected():
    good = signed(lease(who=B), who=B)
    forged = good.replace(B.node_id.encode(), A.node_id.encode())  # claims to be A, signed by B
    assert not V.validate(entry(keys.lease_key("r1", "expert/0"), A.node_id, forged))
    tampered = good.replace(b'"claiming"', b'"active"')
    assert not V.validate(entry(keys.lease_key("r1", "expert/0"), B.node_id, tampered))


def test_record_for_another_run_or_job_or_outside_the_run_is_rejected():
    value = signed(lease(), run="r2")
    assert not V.validate(entry(keys.lease_key("r1", "expert/0"), A.node_id, value))
    assert not V.validate(entry(keys.lease_key("r1", "expert/1"), A.node_id, signed(lease())))
    outside = signed(lease(job="expert/5000"))  # a job no key can name
    assert not V.validate(entry(keys.lease_key("r1", "expert/0"), A.node_id, outside))


def test_absurd_ttl_and_overlong_expiration_are_rejected():
    assert not V.validate(entry(keys.lease_key("r1", "expert/0"), A.node_id, signed(lease(ttl_ms=10**9))))
    assert not V.validate(entry(keys.lease_key("r1", "expert/0"), A.node_id, signed(lease(ttl_ms=10))))
    # a replayed lease cannot be given a longer life than it was signed for
    assert not V.validate(entry(keys.lease_key("r1", "expert/0"), A.node_id, signed(lease()), NOW / 1000 + 3600))


def test_peer_field_must_be_the_signer_and_garbage_is_rejected():
    assert not V.validate(entry(keys.lease_key("r1", "expert/0"), A.node_id, signed(lease(peer=B.peer_id))))
    assert not V.validate(entry(keys.lease_key("r1", "expert/0"), A.node_id, b"not a record"))
    plain = dataclasses.replace(
        entry(keys.lease_key("r1", "expert/0"), A.node_id, signed(lease())), subkey=MSGPackSerializer.dumps(None)
    )
    assert not V.validate(plain)


def test_decode_entry_checks_the_same_rules_for_readers():
    key = keys.lease_key("r1", "expert/0")
    e = decode_entry(key, A.node_id, signed(lease()), NOW / 1000 + 30, kind="lease", run="r1")
    assert e.record.signer == A.node_id
    with pytest.raises(ValueError):
        decode_entry(key, B.node_id, signed(lease()), NOW / 1000 + 30, kind="lease", run="r1")


def test_verdicts_are_cached_by_exact_bytes_and_changed_bytes_are_checked_again(monkeypatch):
    import paris_node.swarm.validator as validator_mod

    calls = []
    real = validator_mod.decode_record
    monkeypatch.setattr(validator_mod, "decode_record", lambda *a, **k: calls.append(1) or real(*a, **k))
    v = ParisValidator(skew_ms=3000)
    good = entry(keys.lease_key("r1", "expert/0"), A.node_id, signed(lease()))
    for _ in range(5):  # the same record from five peers: checked once
        assert v.validate(good)
    assert len(calls) == 1 and v.cache.hits == 4
    bad = entry(keys.lease_key("r1", "expert/0"), B.node_id, signed(lease()))  # someone else's subkey
    assert not v.validate(bad) and not v.validate(bad) and len(calls) == 2  # a rejection is cached too
    other_expiry = dataclasses.replace(good, expiration_time=good.expiration_time - 1)
    assert v.validate(other_expiry) and len(calls) == 3  # another expiration: checked again
    flipped = signed(lease()).replace(b'"claiming"', b'"active"')  # other bytes, same key: checked (and refused)
    assert not v.validate(entry(keys.lease_key("r1", "expert/0"), A.node_id, flipped)) and len(calls) == 4


def test_future_records_are_refused_but_not_remembered():
    v = ParisValidator(skew_ms=3000)
    future = sign_record(A, lease(), run="r1", issued_ms=now_ms() + 60_000).to_bytes()
    rec = entry(keys.lease_key("r1", "expert/0"), A.node_id, future, (now_ms() + 60_000 + 30_000) / 1000)
    assert not v.validate(rec) and not v.validate(rec)
    assert v.cache.hits == 0  # refused each time by the check itself: once the clock catches up it may pass


def test_oversized_values_are_refused_before_parsing():
    v = ParisValidator(skew_ms=3000)
    huge = entry(keys.lease_key("r1", "expert/0"), A.node_id, b"x" * (17 * 1024))
    assert not v.validate(huge) and v.cache.misses == 0


def test_decode_entry_caches_per_exact_entry():
    key = keys.lease_key("r1", "expert/0")
    value, exp = signed(lease()), NOW / 1000 + 30
    first = decode_entry(key, A.node_id, value, exp, kind="lease", run="r1")
    assert decode_entry(key, A.node_id, value, exp, kind="lease", run="r1") is first
    with pytest.raises(Exception, match="run"):
        decode_entry(key, A.node_id, value, exp, kind="lease", run="r2")  # another context: its own verdict
    with pytest.raises(Exception, match="subkey"):
        decode_entry(key, 12345, value, exp, kind="lease", run="r1")  # a non-string subkey from a peer
