import os

import pytest

from paris_node.errors import IdentityError
from paris_node.identity import (
    Identity,
    load_or_create,
    node_id_from_public,
    peer_id_to_node_id,
    public_from_node_id,
    verify_signature,
)


def test_zero_seed_matches_did_key_vector():
    # did:key for the Ed25519 key with an all-zero seed (W3C did:key test suite).
    ident = Identity.from_seed(bytes(32))
    assert ident.node_id == "z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"
    assert ident.peer_id.startswith("12D3KooW")
    assert peer_id_to_node_id(ident.peer_id) == ident.node_id
    assert public_from_node_id(ident.node_id) == ident.public


def test_libp2p_key_file_round_trip():
    ident = Identity.generate()
    raw = ident.to_libp2p_bytes()
    assert raw[:4] == bytes([8, 1, 0x12, 0x40]) and len(raw) == 68
    assert Identity.from_libp2p_bytes(raw) == ident


def test_sign_verify():
    ident = Identity.generate()
    sig = ident.sign(b"msg")
    assert verify_signature(ident.public, sig, b"msg")
    assert not verify_signature(ident.public, sig, b"msG")
    assert not verify_signature(Identity.generate().public, sig, b"msg")


def test_load_or_create_persists_with_0600(tmp_path):
    path = tmp_path / "home" / "identity.key"
    first = load_or_create(path)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert load_or_create(path) == first


def test_refuses_group_readable_key(tmp_path):
    path = tmp_path / "identity.key"
    load_or_create(path)
    os.chmod(path, 0o640)
    with pytest.raises(IdentityError, match="chmod 600"):
        load_or_create(path)


@pytest.mark.parametrize("content", [b"", b"garbage", bytes([8, 1, 0x12, 0x40]) + bytes(64)])
def test_refuses_malformed_key(tmp_path, content):
    path = tmp_path / "identity.key"
    path.write_bytes(content)
    os.chmod(path, 0o600)
    with pytest.raises(IdentityError):
        load_or_create(path)


@pytest.mark.parametrize("bad", ["", "abc", "zzzz", node_id_from_public(bytes(32))[:-2]])
def test_public_from_node_id_rejects(bad):
    with pytest.raises(ValueError):
        public_from_node_id(bad)
