"""Shared helpers for content tests: Kubo's deterministic test data and a fresh blockstore."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from paris_node.content.blockstore import Blockstore


def chacha_stream(seed: str):
    """Kubo's test-harness data: ChaCha20 keystream, key = SHA-256(seed), zero nonce, counter 0."""
    key = hashlib.sha256(seed.encode()).digest()
    return Cipher(algorithms.ChaCha20(key, b"\0" * 16), None).encryptor()


def det_bytes(seed: str, n: int) -> bytes:
    return chacha_stream(seed).update(b"\0" * n)


@pytest.fixture
def store(tmp_path) -> Blockstore:
    return Blockstore(tmp_path / "blocks")
