"""ExchangeService on two real hivemind DHT nodes: blocks travel on the DHT's own libp2p host.

Each hivemind.DHT runs in a forked child process with its own p2pd; the services attach to those
daemons from a loop thread and are driven from this (synchronous) test thread, as the node does.
"""

import os

import pytest
from hivemind import DHT

from paris_node.content.blockstore import Blockstore
from paris_node.content.dag import add_file, export_file
from paris_node.content.exchange import ExchangeService

pytestmark = [pytest.mark.swarm, pytest.mark.timeout(90)]


@pytest.fixture
def two_dhts():
    dhts = []
    try:
        dhts.append(DHT(start=True, host_maddrs=["/ip4/127.0.0.1/tcp/0"]))
        peers = [str(m) for m in dhts[0].get_visible_maddrs()]
        dhts.append(DHT(start=True, host_maddrs=["/ip4/127.0.0.1/tcp/0"], initial_peers=peers))
        yield dhts
    finally:
        for dht in dhts:
            dht.shutdown()


def test_service_fetch_between_dht_nodes(two_dhts, tmp_path):
    dht_a, dht_b = two_dhts
    src = tmp_path / "ckpt.bin"
    src.write_bytes(os.urandom(3 * 1024 * 1024 + 5))
    store_a = Blockstore(tmp_path / "a")
    root = add_file(store_a, src, "unixfs-v1-2025")  # 4 leaves under one root
    store_b = Blockstore(tmp_path / "b")
    provider = dht_a.peer_id.to_base58()  # what a provider record carries
    with ExchangeService(dht_a, store_a), ExchangeService(dht_b, store_b) as client:
        stats = client.fetch(root, [provider], deadline_s=30)
        assert stats.blocks_fetched == 5 and stats.by_provider == {provider: 5}
        again = client.fetch(root, [provider], deadline_s=30)  # everything local: nothing on the wire
        assert again.blocks_fetched == 0
    export_file(store_b, root, tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == src.read_bytes()
    # A fetch-only service (no handler registered) works the same way.
    store_c = Blockstore(tmp_path / "c")
    with ExchangeService(dht_a, store_a), ExchangeService(dht_b, store_c, serve=False) as fetch_only:
        assert fetch_only.fetch(root, [provider], deadline_s=30).blocks_fetched == 5
