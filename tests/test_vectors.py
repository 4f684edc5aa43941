"""The JSON test vectors in protocol/vectors are the spec's examples: they must verify, and the generator must
still produce them byte for byte (so code changes cannot silently change the wire format)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from paris_node import errors
from paris_node.identity import Identity
from paris_node.records import decode_record, signing_bytes

ROOT = Path(__file__).resolve().parent.parent
VECTORS = json.loads((ROOT / "protocol" / "vectors" / "records.json").read_text())


def test_keys():
    for k in VECTORS["keys"]:
        ident = Identity.from_seed(bytes.fromhex(k["seed"]))
        assert ident.public.hex() == k["public"]
        assert ident.node_id == k["node_id"]
        assert ident.peer_id == k["peer_id"]
        assert ident.to_libp2p_bytes().hex() == k["libp2p_private_key"]


@pytest.mark.parametrize("vec", VECTORS["valid"], ids=lambda v: v["kind"])
def test_valid(vec):
    rec = decode_record(vec["record"].encode(), now=VECTORS["issued_ms"])
    assert rec.kind == vec["kind"]
    assert signing_bytes(rec.unsigned()).hex() == vec["signing_bytes"]
    assert rec.sig == vec["signature"]
    assert signing_bytes(rec.unsigned()).startswith(VECTORS["domain_tag"].encode())


@pytest.mark.parametrize("vec", VECTORS["invalid"], ids=lambda v: v["name"])
def test_invalid(vec):
    with pytest.raises(getattr(errors, vec["error"])):
        decode_record(vec["record"].encode(), now=vec.get("now_ms", VECTORS["issued_ms"]))


def test_generator_reproduces_vectors():
    script = ROOT / "scripts" / "gen_protocol_vectors.py"
    assert subprocess.run([sys.executable, str(script), "--check"]).returncode == 0
