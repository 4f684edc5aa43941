"""Block exchange between real p2pd daemons on 127.0.0.1: honest, lying, stalling and vanishing providers.

Every test starts its own P2P instances (each is a p2pd process) and shuts them down in `finally`.
Files use a tiny import profile (16 KiB chunks, 4 links) so a 1 MiB file is a multi-level DAG of 90 blocks.
"""

import asyncio
import os
import time
from contextlib import asynccontextmanager

import pytest
from hivemind.p2p import P2P

from paris_node.content.blockstore import Blockstore
from paris_node.content.cid import ImportProfile, verify_block
from paris_node.content.dag import add_file, export_file, walk_dag
from paris_node.content.errors import FetchError
from paris_node.content.exchange import (
    PROTOCOL,
    BlockServer,
    FetchTimeout,
    FrameTooLarge,
    PenaltyBox,
    fetch_dag,
)
from paris_node.content.exchange_server import block_bytes
from paris_node.content.exchange_wire import encode_frame_header, read_request

pytestmark = [pytest.mark.swarm, pytest.mark.timeout(120)]

GHOST = "QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN"  # a peer no daemon here can reach
TINY = ImportProfile("tiny-test", 0, 16 * 1024, 4, False)


class SpyStore(Blockstore):
    """Records every block that reaches either storing method, and whether its bytes were genuine, to prove
    nothing unverified reaches disk (fetch_dag verifies once, then stores through put_local)."""

    def __init__(self, root):
        super().__init__(root)
        self.puts: list[tuple[str, bool]] = []

    def _record(self, cid, data):
        try:
            verify_block(cid, data)
            ok = True
        except ValueError:
            ok = False
        self.puts.append((cid, ok))

    def put(self, cid, data):
        self._record(cid, data)
        super().put(cid, data)

    def put_local(self, cid, pieces):
        self._record(cid, b"".join(bytes(p) for p in pieces))
        super().put_local(cid, pieces)


class TamperingServer(BlockServer):
    async def load(self, cid):
        data = block_bytes(await super().load(cid))
        return None if data is None else bytes([data[0] ^ 1]) + data[1:]


class StallingServer(BlockServer):
    async def load(self, cid):
        await asyncio.sleep(3600)


class CountingServer(BlockServer):
    """Serves `limit` blocks, then sets `reached` and stalls (the test then kills its daemon)."""

    def __init__(self, *a, limit: int, **kw):
        super().__init__(*a, **kw)
        self.limit = limit
        self.reached = asyncio.Event()

    async def load(self, cid):
        if self.blocks_served >= self.limit:
            self.reached.set()
            await asyncio.sleep(3600)
        return await super().load(cid)


@pytest.fixture
def dag(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(1024 * 1024 + 123))
    store = Blockstore(tmp_path / "provider")
    root = add_file(store, src, TINY)
    return src, store, root


@asynccontextmanager
async def p2ps(n: int):
    """n daemons, each connected to the first."""
    nodes: list[P2P] = []
    try:
        nodes.append(await P2P.create())
        first = [str(m) for m in await nodes[0].get_visible_maddrs()]
        for _ in range(n - 1):
            nodes.append(await P2P.create(initial_peers=first))
        yield nodes
    finally:
        for node in nodes:
            await node.shutdown()


async def _fetch_and_check(client, store_dir, root, src, providers, **kw):
    store = SpyStore(store_dir)
    stats = await fetch_dag(client, store, root, providers, deadline_s=60, **kw)
    out = store_dir / "out.bin"
    export_file(store, root, out)
    assert out.read_bytes() == src.read_bytes()
    assert all(ok for _, ok in store.puts), "an unverified block reached the store"
    assert len(store.puts) == stats.blocks_fetched, "a block reached the store around the spy"
    return stats, store


async def test_fetch_multi_block_dag_from_two_providers(dag, tmp_path):
    src, pstore, root = dag
    total = len(set(walk_dag(pstore, root)))
    assert total > 40
    async with p2ps(3) as (client, a, b):
        for node in (a, b):
            await BlockServer(node, pstore).start()
        providers = [a.peer_id.to_base58(), b.peer_id, GHOST]  # a stale provider record among them
        stats, _ = await _fetch_and_check(client, tmp_path / "c", root, src, providers, stall_timeout_s=5)
    assert stats.blocks_fetched == total and stats.blocks_rejected == 0
    assert set(stats.by_provider) == {a.peer_id.to_base58(), b.peer_id.to_base58()}, "want-list not split"
    assert set(stats.dropped) == {GHOST}


async def test_tampered_block_rejected_and_fetched_from_honest_provider(dag, tmp_path):
    src, pstore, root = dag
    async with p2ps(3) as (client, evil, honest):
        await TamperingServer(evil, pstore).start()
        await BlockServer(honest, pstore).start()
        box = PenaltyBox()
        stats, store = await _fetch_and_check(
            client, tmp_path / "c", root, src, [evil.peer_id, honest.peer_id], penalties=box
        )
    bad = evil.peer_id.to_base58()
    assert stats.blocks_rejected >= 1 and bad in stats.dropped and "BlockMismatch" in stats.dropped[bad]
    assert box.is_banned(bad) and not box.is_banned(honest.peer_id.to_base58())
    assert stats.by_provider.get(bad, 0) == 0
    assert not list((tmp_path / "c").rglob("*.tmp")), "partial files left behind"


async def test_stalling_provider_hits_deadline_and_falls_back(dag, tmp_path):
    src, pstore, root = dag
    async with p2ps(3) as (client, slow, honest):
        await StallingServer(slow, pstore).start()
        await BlockServer(honest, pstore).start()
        t0 = time.monotonic()
        stats, _ = await _fetch_and_check(
            client, tmp_path / "c", root, src, [slow.peer_id, honest.peer_id], stall_timeout_s=1.0
        )
        assert time.monotonic() - t0 < 15
    assert "PeerStalled" in stats.dropped[slow.peer_id.to_base58()]
    # Alone, a staller makes the fetch fail with a clear error instead of hanging.
    async with p2ps(2) as (client, slow):
        await StallingServer(slow, pstore).start()
        with pytest.raises(FetchError, match="every provider failed"):
            await fetch_dag(client, Blockstore(tmp_path / "d"), root, [slow.peer_id], stall_timeout_s=0.5)
        with pytest.raises(FetchTimeout):
            await fetch_dag(client, Blockstore(tmp_path / "d"), root, [slow.peer_id], deadline_s=0.5)


async def _oversize_handler(info, reader, writer):
    cids = await read_request(reader, 5.0)
    head = encode_frame_header(cids[0], b"")
    writer.write(head[:2] + (64 * 1024 * 1024).to_bytes(4, "big") + head[6:])  # claims 64 MiB, sends none
    await writer.drain()
    await asyncio.sleep(3600)


async def _truncating_handler(info, reader, writer):
    cids = await read_request(reader, 5.0)
    writer.write(encode_frame_header(cids[0], b"x" * 100_000) + b"x" * 50_000)
    await writer.drain()
    writer.close()


async def test_oversize_frame_rejected_without_reading(dag, tmp_path):
    _, _, root = dag
    async with p2ps(2) as (client, liar):
        await liar.add_binary_stream_handler(PROTOCOL, _oversize_handler)
        t0 = time.monotonic()
        with pytest.raises(FetchError) as e:
            await fetch_dag(client, Blockstore(tmp_path / "c"), root, [liar.peer_id], stall_timeout_s=20)
        assert time.monotonic() - t0 < 5, "waited for the claimed bytes instead of rejecting the header"
        assert FrameTooLarge.__name__ in str(e.value)


async def test_truncated_stream_falls_back(dag, tmp_path):
    src, pstore, root = dag
    async with p2ps(3) as (client, cutter, honest):
        await cutter.add_binary_stream_handler(PROTOCOL, _truncating_handler)
        await BlockServer(honest, pstore).start()
        stats, _ = await _fetch_and_check(client, tmp_path / "c", root, src, [cutter.peer_id, honest.peer_id])
    assert "ended inside the frame" in stats.dropped[cutter.peer_id.to_base58()]


async def test_resume_after_provider_killed(dag, tmp_path):
    src, pstore, root = dag
    total = len(set(walk_dag(pstore, root)))
    cstore = Blockstore(tmp_path / "c")
    async with p2ps(1) as (client,):
        maddrs = [str(m) for m in await client.get_visible_maddrs()]
        provider = await P2P.create(initial_peers=maddrs)
        try:
            server = CountingServer(provider, pstore, limit=30)
            await server.start()
            task = asyncio.create_task(
                fetch_dag(client, cstore, root, [provider.peer_id], stall_timeout_s=2, deadline_s=30)
            )
            await asyncio.wait_for(server.reached.wait(), 20)
        finally:
            await provider.shutdown()  # the provider dies mid-transfer
        with pytest.raises(FetchError):
            await task
        have = sum(cstore.has(c) for c in set(walk_dag(pstore, root)))
        assert 0 < have < total
        again = await P2P.create()  # restarted: a fresh daemon over the same store, not yet connected
        try:
            server2 = BlockServer(again, pstore)
            await server2.start()
            addr = str((await again.get_visible_maddrs())[0])  # as a provider record's addrs carry it
            stats, _ = await _fetch_and_check(client, tmp_path / "c", root, src, [addr])
        finally:
            await again.shutdown()
    assert stats.blocks_fetched == total - have == server2.blocks_served, "re-fetched blocks it already had"


def test_penalised_provider_skipped_when_others_exist():
    from paris_node.content.exchange_client import _DagFetch

    box = PenaltyBox()
    box.penalise("12D3KooWBNFYHJJgL61289gueoZGwJaUCTHi2EDa4ETpc5TtmEX7")
    run = _DagFetch(
        None,
        None,
        "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o",
        ["12D3KooWBNFYHJJgL61289gueoZGwJaUCTHi2EDa4ETpc5TtmEX7", GHOST],
        2,
        16,
        1.0,
        box,
    )
    assert list(run.live) == [GHOST]
