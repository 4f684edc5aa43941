import json

import pytest

from paris_node.canonical import canonical_json, parse_canonical, parse_real, real
from paris_node.errors import (
    BadSignature,
    FutureRecord,
    MalformedRecord,
    RecordTooLarge,
    SchemaError,
    UnknownKind,
    UnsupportedVersion,
    WrongContext,
)
from paris_node.identity import Identity
from paris_node.records import (
    DHT_RECORD_CAP,
    LeasePayload,
    PointerPayload,
    ProviderPayload,
    StatusPayload,
    decode_record,
    sign_record,
)

ALICE = Identity.from_seed(b"a" * 32)
BOB = Identity.from_seed(b"b" * 32)


def lease(**kw):
    base = dict(job="expert/0", peer=ALICE.peer_id, lease_start_ms=1000, seq=0, ttl_ms=60_000, state="active")
    return LeasePayload(**{**base, **kw})


def obj(record):
    return json.loads(record.to_bytes())


def enc(o):
    return json.dumps(o, sort_keys=True, separators=(",", ":")).encode()


def test_round_trip_and_typed_body():
    rec = sign_record(ALICE, lease(), run="run1")
    back = decode_record(rec.to_bytes(), kind="lease", run="run1")
    assert back == rec
    assert back.body == lease()
    assert back.signer == ALICE.node_id


def test_unknown_payload_fields_are_ignored():
    rec = sign_record(ALICE, PointerPayload(job="router", manifest_cid="bafy", step=5, seq=1), run="r")
    o = obj(rec)
    o["payload"]["added_in_v1_1"] = "x"
    unsigned = {k: v for k, v in o.items() if k != "sig"}
    from paris_node.records import signing_bytes

    o["sig"] = ALICE.sign(signing_bytes(unsigned)).hex()
    assert decode_record(enc(o)).body == PointerPayload(job="router", manifest_cid="bafy", step=5, seq=1)


def test_canonical_rules():
    assert canonical_json({"b": 1, "a": [True, None, "é"]}) == '{"a":[true,null,"é"],"b":1}'.encode()
    for bad in ({"x": 1.0}, {"x": float("nan")}, {1: 2}, {"x": 2**60}, {"x": object()}):
        with pytest.raises(MalformedRecord):
            canonical_json(bad)
    with pytest.raises(MalformedRecord, match="duplicate"):
        parse_canonical(b'{"a":1,"a":2}')
    with pytest.raises(MalformedRecord):
        parse_canonical(b'{"a":NaN}')
    with pytest.raises(MalformedRecord):
        parse_canonical(b"\xff")
    with pytest.raises(MalformedRecord, match="nested"):
        parse_canonical(b"[" * 5000 + b"]" * 5000)
    assert parse_real(real(0.1234567891)) == pytest.approx(0.1234568)
    with pytest.raises(MalformedRecord):
        real(float("inf"))


def test_rejections_are_typed():
    good = obj(sign_record(ALICE, lease(), run="r"))
    cases = [
        (b"[1,2]", MalformedRecord),
        (b"not json", MalformedRecord),
        (json.dumps(good).encode(), MalformedRecord),  # whitespace: not canonical
        (enc({k: v for k, v in good.items() if k != "signer"}), SchemaError),
        (enc({**good, "seq": 1}), SchemaError),  # unexpected envelope field
        (enc({**good, "issued_ms": True}), SchemaError),
        (enc({**good, "payload": {**good["payload"], "seq": "1"}}), SchemaError),
        (enc({**good, "payload": {k: v for k, v in good["payload"].items() if k != "job"}}), SchemaError),
        (enc({**good, "kind": "nope"}), UnknownKind),
        (enc({**good, "v": 9}), UnsupportedVersion),
        (enc({**good, "signer": BOB.node_id}), BadSignature),
        (enc({**good, "sig": "zz"}), BadSignature),
        (enc({**good, "payload": {**good["payload"], "seq": 9}}), BadSignature),
    ]
    for data, err in cases:
        with pytest.raises(err):
            decode_record(data)


def test_schema_semantics():
    with pytest.raises(SchemaError):
        sign_record(ALICE, lease(state="winning"))
    with pytest.raises(SchemaError):
        sign_record(ALICE, lease(ttl_ms=0))


def test_size_caps():
    with pytest.raises(RecordTooLarge):
        sign_record(ALICE, ProviderPayload(peer=ALICE.peer_id, cids=["bafy" * 10] * 60))
    big = obj(sign_record(ALICE, StatusPayload(role="expert", peer="p", version="1")))
    big["payload"]["pad"] = "x" * DHT_RECORD_CAP
    with pytest.raises(RecordTooLarge):
        decode_record(enc(big))
    with pytest.raises(RecordTooLarge):
        decode_record(b" " * (2 << 20))


def test_future_and_context():
    rec = sign_record(ALICE, lease(), run="r", issued_ms=10_000_000)
    with pytest.raises(FutureRecord):
        decode_record(rec.to_bytes(), now=10_000_000 - 60_000)
    assert decode_record(rec.to_bytes(), now=10_000_000 - 5_000)  # within allowed skew
    with pytest.raises(WrongContext):
        decode_record(rec.to_bytes(), run="other", now=10_000_000)
    with pytest.raises(WrongContext):
        decode_record(rec.to_bytes(), kind="status", now=10_000_000)


def test_a_status_attests_owners_compactly_and_validates_them():
    jobs = [f"expert/{k}" for k in range(8)] + ["router"]  # the Paris configuration: K = 8 and the router
    owners = {job: BOB.node_id[:20] for job in jobs}
    cid = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"
    body = StatusPayload(role="standby", peer=ALICE.peer_id, version="1.0.0", holds=[cid] * 9, owners=owners,
                         addrs=[f"/ip4/127.0.0.1/tcp/40000/p2p/{ALICE.peer_id}"] * 2)  # fmt: skip
    rec = sign_record(ALICE, body)
    assert len(rec.to_bytes()) <= DHT_RECORD_CAP and decode_record(rec.to_bytes()).body.owners == owners
    assert "owners" not in StatusPayload(role="standby", peer="p", version="1").to_dict()  # vectors unchanged
    for bad in ({"expert/0": BOB.node_id}, {"x" * 40: BOB.node_id[:20]}, {f"e/{i}": "A" * 20 for i in range(33)}):
        with pytest.raises(SchemaError):
            sign_record(ALICE, StatusPayload(role="standby", peer="p", version="1", owners=bad))


def test_a_status_too_large_for_the_dht_sheds_its_optional_parts_and_is_still_published():
    """A status over the cap would never be stored, and a node without a status looks absent (its lease stops
    counting): the announcer drops the attested owners first, then the oldest vouched CIDs, until it fits."""
    from paris_node.swarm.announcer import fit_status

    cids = [f"bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fb{i:04d}" for i in range(64)]
    owners = {f"expert/{k}": BOB.node_id[:20] for k in range(32)}
    body = StatusPayload(role="standby", peer=ALICE.peer_id, version="1.0.0", holds=cids, owners=owners)
    with pytest.raises(RecordTooLarge):
        sign_record(ALICE, body)
    fitted = fit_status(ALICE, "run", body)
    assert len(sign_record(ALICE, fitted, run="run").to_bytes()) <= DHT_RECORD_CAP
    assert fitted.owners == {} and fitted.holds == cids[-len(fitted.holds) :] and len(fitted.holds) >= 8
    small = StatusPayload(role="standby", peer=ALICE.peer_id, version="1.0.0", holds=cids[:3], owners=owners)
    assert fit_status(ALICE, "run", small) == small  # what fits is left alone
