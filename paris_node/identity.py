"""Node identity: one Ed25519 key that is the record signer *and* the libp2p peer identity.

The key file is the libp2p `PrivateKey` protobuf that hivemind's `identity_path` accepts:
`08 01 12 40 || seed(32) || public(32)` (KeyType=Ed25519, Data=64 bytes). Because the same key
authenticates the libp2p connection, a record's signer and the peer that sent it can be tied.

Two names are derived from the public key:
- node id: multibase base58btc of multicodec `ed25519-pub` (0xed 0x01) + key, e.g. `z6Mk...`
  (the did:key form); this is what signed records name as their signer.
- peer id: base58btc of the identity multihash of the libp2p `PublicKey` protobuf, e.g. `12D3KooW...`.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from multiformats import multibase

from paris_node.errors import IdentityError
from paris_node.fsutil import atomic_write

_LIBP2P_PRIV_PREFIX = bytes([0x08, 0x01, 0x12, 0x40])
_LIBP2P_PUB_PREFIX = bytes([0x08, 0x01, 0x12, 0x20])
_ED25519_PUB_MULTICODEC = bytes([0xED, 0x01])


def _b58(data: bytes) -> str:
    return multibase.encode(data, "base58btc")[1:]


def node_id_from_public(public: bytes) -> str:
    """The node id (`z6Mk...`) of a raw 32-byte Ed25519 public key."""
    assert len(public) == 32
    return multibase.encode(_ED25519_PUB_MULTICODEC + public, "base58btc")


def public_from_node_id(node_id: str) -> bytes:
    """Inverse of `node_id_from_public`; ValueError for anything that is not an Ed25519 node id."""
    if not isinstance(node_id, str) or not node_id.startswith("z"):
        raise ValueError(f"not a node id (expected 'z6Mk...'): {node_id!r}")
    try:
        raw = multibase.decode(node_id)
    except Exception as e:  # multibase raises several types for bad alphabets
        raise ValueError(f"not a node id: {node_id!r} ({e})") from None
    if len(raw) != 34 or raw[:2] != _ED25519_PUB_MULTICODEC:
        raise ValueError(f"not an Ed25519 node id: {node_id!r}")
    return bytes(raw[2:])


def peer_id_from_public(public: bytes) -> str:
    """The libp2p peer id (`12D3KooW...`): identity multihash of the PublicKey protobuf, base58btc."""
    proto = _LIBP2P_PUB_PREFIX + public
    return _b58(bytes([0x00, len(proto)]) + proto)


def signer_peer(node_id: str) -> str:
    """A signer's libp2p peer id: the same Ed25519 key, so a record's signer is always a provider to try."""
    return peer_id_from_public(public_from_node_id(node_id))


def peer_id_to_node_id(peer_id: str) -> str:
    """Map a libp2p Ed25519 peer id back to the node id of the same key."""
    raw = multibase.decode("z" + peer_id)
    if len(raw) != 38 or raw[:2] != bytes([0x00, 36]) or raw[2:6] != _LIBP2P_PUB_PREFIX:
        raise ValueError(f"not an Ed25519 libp2p peer id: {peer_id!r}")
    return node_id_from_public(bytes(raw[6:]))


def verify_signature(public: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True)
class Identity:
    """An Ed25519 key pair with the names derived from it."""

    seed: bytes
    public: bytes

    @classmethod
    def generate(cls) -> Identity:
        return cls.from_seed(os.urandom(32))

    @classmethod
    def from_seed(cls, seed: bytes) -> Identity:
        assert len(seed) == 32
        key = Ed25519PrivateKey.from_private_bytes(seed)
        return cls(seed=seed, public=key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    @property
    def node_id(self) -> str:
        return node_id_from_public(self.public)

    @property
    def peer_id(self) -> str:
        return peer_id_from_public(self.public)

    def sign(self, message: bytes) -> bytes:
        return Ed25519PrivateKey.from_private_bytes(self.seed).sign(message)

    def to_libp2p_bytes(self) -> bytes:
        return _LIBP2P_PRIV_PREFIX + self.seed + self.public

    @classmethod
    def from_libp2p_bytes(cls, data: bytes, source: str = "key file") -> Identity:
        if len(data) != 68 or data[:4] != _LIBP2P_PRIV_PREFIX:
            raise IdentityError(
                f"{source} is not an Ed25519 libp2p private key (expected 68 bytes starting 08 01 12 40, "
                f"got {len(data)} bytes). Move it away and run `paris-node id` to create a new one, "
                "or restore the original file."
            )
        ident = cls.from_seed(data[4:36])
        if ident.public != data[36:]:
            raise IdentityError(
                f"{source} is corrupt: its public key does not match its seed. Restore it from a backup, "
                "or move it away to create a new identity."
            )
        return ident


def load_or_create(path: Path) -> Identity:
    """Load the node key at `path`, creating it (mode 0600) on first use.

    Refuses a file that other users can read or write: the key signs everything this node publishes.
    """
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        ident = Identity.generate()
        with contextlib.suppress(FileExistsError):  # another process created the key meanwhile: keep theirs
            atomic_write(path, ident.to_libp2p_bytes(), mode=0o600, exclusive=True)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise IdentityError(
            f"{path} is accessible by other users (mode {mode:04o}); it holds this node's private key. "
            f"Fix it with: chmod 600 {path}"
        )
    if not path.is_file():
        raise IdentityError(f"{path} is not a regular file; move it away to create a new identity.")
    return Identity.from_libp2p_bytes(path.read_bytes(), source=str(path))
