"""DhtSource's content path: fetched only when missing, every block checked against its CID, size capped."""

from __future__ import annotations

import pytest

from paris_node.content.blockstore import Blockstore
from paris_node.content.dag import add_bytes
from paris_node.dashboard import source as source_mod
from paris_node.dashboard.source import DhtSource
from paris_node.errors import ParisError


class CopyExchange:
    """Stands in for ExchangeService.fetch: copies every block of `remote` through the local store's checked put."""

    def __init__(self, remote: Blockstore, local: Blockstore, tamper: bytes | None = None):
        self.remote, self.local, self.tamper, self.calls = remote, local, tamper, []

    def fetch(self, cid, peers, deadline_s):
        self.calls.append(cid)
        self.local.put(cid, self.tamper if self.tamper is not None else self.remote.get(cid))


def test_content_is_fetched_once_and_verified(tmp_path):
    remote, local = Blockstore(tmp_path / "remote"), Blockstore(tmp_path / "local")
    cid = add_bytes(remote, b"a small manifest", "unixfs-v1-2025")
    ex = CopyExchange(remote, local)
    src = DhtSource(None, "run", ex, local)
    assert src.content(cid, ["peer"]) == b"a small manifest"
    assert src.content(cid, ["peer"]) == b"a small manifest" and ex.calls == [cid]  # held: not fetched again
    assert src.has(cid)


def test_a_lying_peer_never_gets_its_bytes_read(tmp_path):
    remote, local = Blockstore(tmp_path / "remote"), Blockstore(tmp_path / "local")
    cid = add_bytes(remote, b"the real bytes", "unixfs-v1-2025")
    src = DhtSource(None, "run", CopyExchange(remote, local, tamper=b"<script>other bytes</script>"), local)
    with pytest.raises((ParisError, ValueError)):
        src.content(cid, ["peer"])
    assert not src.has(cid)


def test_content_over_the_cap_is_refused(tmp_path, monkeypatch):
    store = Blockstore(tmp_path / "local")
    cid = add_bytes(store, b"x" * 5000, "unixfs-v1-2025")
    monkeypatch.setattr(source_mod, "MAX_CONTENT", 1000)
    with pytest.raises(ValueError, match="over 1000 bytes"):
        DhtSource(None, "run", None, store).content(cid, [])
