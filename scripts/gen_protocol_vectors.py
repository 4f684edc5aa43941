#!/usr/bin/env python
"""Regenerate protocol/vectors/records.json: keys, canonical bytes and signatures for every record kind.

Ed25519 signatures are deterministic, so running this twice gives identical files; tests/test_vectors.py checks
both that the stored vectors verify and that this generator still reproduces them byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from paris_node.identity import Identity
from paris_node.records import (
    CheckpointPayload,
    LeasePayload,
    PointerPayload,
    ProviderPayload,
    RunPayload,
    StatusPayload,
    sign_record,
    signing_bytes,
)

OUT = Path(__file__).resolve().parent.parent / "protocol" / "vectors" / "records.json"
ISSUED_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
RUN = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


def key(label: str) -> Identity:
    return Identity.from_seed(hashlib.sha256(label.encode()).digest())


def build() -> dict:
    alice, bob = key("paris-node vector key alice"), key("paris-node vector key bob")
    ckpt_cid = "bafybeigmix7t42i6jacydtquhet7srwvgpizfg7gjbq7627d35mjomtu64"
    payloads = [
        LeasePayload(
            job="expert/2", peer=alice.peer_id, lease_start_ms=ISSUED_MS, seq=3, ttl_ms=60_000, state="active"
        ),
        StatusPayload(
            role="expert",
            peer=alice.peer_id,
            version="0.1.0",
            job="expert/2",
            step=1200,
            loss="0.1834",
            samples_per_s="41.5",
            checkpoint=ckpt_cid,
            addrs=["/ip4/127.0.0.1/tcp/4001"],
        ),
        ProviderPayload(peer=alice.peer_id, cids=[ckpt_cid]),
        PointerPayload(job="expert/2", manifest_cid=ckpt_cid, step=1200, seq=7),
        CheckpointPayload(
            job="expert/2",
            step=1200,
            parent=None,
            config_sha256=hashlib.sha256(b"{}").hexdigest(),
            cid_profile="unixfs-v1-2025",
            files={
                "model.safetensors": {
                    "cid": "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e",
                    "size": 11,
                    "sha256": hashlib.sha256(b"hello world").hexdigest(),
                    "role": "weights",
                },
                "config.json": {
                    "cid": "bafkreicecnx2gvntm6fbcrvnc336qze6st5u7qq7457igegamd3bzkx7ri",
                    "size": 2,
                    "sha256": hashlib.sha256(b"{}").hexdigest(),
                    "role": "config",
                },
            },
            metrics={"train_loss": "0.1834", "val_loss": "0.1901"},
            format=2,
        ),
        RunPayload(name="vector-run", experts=4, spec={"dataset": "shapes", "resolution": 16}),
    ]
    keys = [
        {
            "label": name,
            "seed": ident.seed.hex(),
            "public": ident.public.hex(),
            "node_id": ident.node_id,
            "peer_id": ident.peer_id,
            "libp2p_private_key": ident.to_libp2p_bytes().hex(),
        }
        for name, ident in (("alice", alice), ("bob", bob))
    ]
    valid = []
    for p in payloads:
        rec = sign_record(alice, p, run="" if p.KIND == "run" else RUN, issued_ms=ISSUED_MS)
        valid.append(
            {
                "kind": p.KIND,
                "signer": "alice",
                "signing_bytes": signing_bytes(rec.unsigned()).hex(),
                "signature": rec.sig,
                "record": rec.to_bytes().decode(),
            }
        )
    lease = json.loads(valid[0]["record"])
    forged = dict(lease, signer=bob.node_id)  # alice's signature, bob named as signer
    tampered = dict(lease, payload={**lease["payload"], "seq": 4})
    unsigned_bob = {k: v for k, v in lease.items() if k != "sig"}
    future = sign_record(alice, payloads[0], run=RUN, issued_ms=ISSUED_MS + 3_600_000)

    def enc(obj: dict) -> str:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"))

    invalid = [
        {"name": "not json", "record": "{lease", "error": "MalformedRecord"},
        {
            "name": "whitespace (not canonical)",
            "record": json.dumps(lease, sort_keys=True),
            "error": "MalformedRecord",
        },
        {
            "name": "float in payload",
            "record": enc({**lease, "payload": {**lease["payload"], "seq": 1.5}}),
            "error": "MalformedRecord",
        },
        {
            "name": "missing field",
            "record": enc({k: v for k, v in lease.items() if k != "issued_ms"}),
            "error": "SchemaError",
        },
        {"name": "wrong type", "record": enc({**lease, "issued_ms": "yesterday"}), "error": "SchemaError"},
        {"name": "unknown kind", "record": enc({**lease, "kind": "gossip"}), "error": "UnknownKind"},
        {"name": "unknown version", "record": enc({**lease, "v": 2}), "error": "UnsupportedVersion"},
        {"name": "signature by another key than the stated signer", "record": enc(forged), "error": "BadSignature"},
        {"name": "payload changed after signing", "record": enc(tampered), "error": "BadSignature"},
        {
            "name": "signed by bob, claims alice",
            "record": enc({**unsigned_bob, "sig": bob.sign(signing_bytes(unsigned_bob)).hex()}),
            "error": "BadSignature",
        },
        {
            "name": "over the DHT cap",
            "record": enc({**lease, "payload": {**lease["payload"], "pad": "x" * 2048}}),
            "error": "RecordTooLarge",
        },
        {
            "name": "issued one hour in the future",
            "record": future.to_bytes().decode(),
            "error": "FutureRecord",
            "now_ms": ISSUED_MS,
        },
    ]
    return {
        "description": "paris-node record test vectors; see protocol/records.md. Verify each 'valid' record with "
        "now_ms = issued_ms; each 'invalid' one must fail with the named error (now_ms given or issued_ms of valid).",
        "domain_tag": "paris-node/record/v1\n",
        "issued_ms": ISSUED_MS,
        "keys": keys,
        "valid": valid,
        "invalid": invalid,
    }


def main() -> int:
    text = json.dumps(build(), indent=2, ensure_ascii=False) + "\n"
    if "--check" in sys.argv:
        return 0 if OUT.read_text() == text else 1
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
