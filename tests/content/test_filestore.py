"""No-copy references (filestore.py): a file installed from the store is held once, and never served wrong."""

import os

import pytest

from paris_node.content.blockstore import Blockstore
from paris_node.content.cid import DAG_PB, RAW, parse_cid
from paris_node.content.dag import add_file, export_file, missing_blocks, walk_dag
from paris_node.content.errors import BlockMismatch, BlockNotFound
from paris_node.content.exchange_server import BlockServer, block_bytes
from paris_node.fsutil import tree_bytes

SIZE = 3 * 1024 * 1024 + 12345  # 4 raw leaves of 1 MiB under a dag-pb root (unixfs-v1-2025)


@pytest.fixture
def installed(tmp_path):
    """A store holding a 3 MiB file's DAG, the file installed at `out`, and its leaves referenced."""
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(SIZE))
    store = Blockstore(tmp_path / "store")
    root = add_file(store, src, "unixfs-v1-2025")
    out = tmp_path / "cache" / "model.safetensors"
    export_file(store, root, out)
    src.unlink()
    leaves = [c for c in walk_dag(store, root) if parse_cid(c).codec == RAW]
    assert len(leaves) == 4 and parse_cid(root).codec == DAG_PB
    freed = store.reference_file(root, out)
    assert freed == SIZE
    return store, root, out, leaves


def test_an_installed_file_is_stored_once_and_still_reads_back_whole(installed, tmp_path):
    store, root, out, leaves = installed
    assert tree_bytes(store.root, out.parent) < 1.1 * SIZE  # store + cache together: the bytes about once
    st = store.stat()
    assert st["referenced_bytes"] == SIZE and st["bytes"] < 4096  # only the dag-pb root is a copy
    assert all(store.has(c) for c in leaves) and missing_blocks(store, root) == []
    export_file(store, root, tmp_path / "again.bin")  # every block read through its reference, re-verified
    assert (tmp_path / "again.bin").read_bytes() == out.read_bytes()
    assert store.verify() == []
    assert store.reference_file(root, out) == 0  # already references: nothing to do


def _flip_keeping_identity(path, offset: int) -> None:
    """Flip one byte in place and put size and mtime back: only the hash can tell (the worst case)."""
    st = os.stat(path)
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 1]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


async def test_a_changed_file_is_never_served_or_read_as_the_block(installed):
    store, root, out, leaves = installed
    server = BlockServer(None, store)  # no p2p needed to ask it what it would send
    second = leaves[1]
    assert block_bytes(await server.load(second)) == store.get(second)
    _flip_keeping_identity(out, 1024 * 1024 + 7)  # inside the second leaf
    assert await server.load(second) is None  # not-have, never the changed bytes
    with pytest.raises(BlockNotFound):
        store.get(second)
    assert not store.has(second) and missing_blocks(store, root) == [second]  # the reference was dropped
    assert store.get(leaves[0]) and store.get(leaves[2])  # the unchanged leaves still read fine


def test_verify_reports_a_changed_file_and_repair_drops_the_reference(installed):
    store, root, out, leaves = installed
    _flip_keeping_identity(out, 5)
    assert store.verify() == [leaves[0]]
    assert store.verify(repair=True) == [leaves[0]]
    assert missing_blocks(store, root) == [leaves[0]] and store.verify() == []


def test_a_replaced_or_removed_file_makes_its_blocks_missing_at_once(installed):
    store, root, out, leaves = installed
    data = out.read_bytes()
    os.chmod(out, 0o644)
    out.unlink()
    out.write_bytes(data)  # same bytes, another file: the references name the old one
    assert missing_blocks(store, root) == leaves  # one stat each, no read needed to know
    assert store.reference_file(root, out) == 0  # a reinstall points them at the new file (after hashing it)
    assert missing_blocks(store, root) == [] and store.get(leaves[3]) == data[3 << 20 :]
    os.chmod(out, 0o644)
    out.unlink()
    assert not any(store.has(c) for c in leaves)


def test_a_file_that_does_not_hold_the_blocks_is_refused_and_nothing_changes(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(SIZE))
    store = Blockstore(tmp_path / "store")
    root = add_file(store, src, "unixfs-v1-2025")
    before = store.stat()
    other = tmp_path / "other.bin"
    other.write_bytes(os.urandom(SIZE))
    with pytest.raises(BlockMismatch):
        store.reference_file(root, other)
    assert store.stat() == before and not list(store.root.glob("*/*.ref"))


def test_a_crash_between_reference_and_removal_leaves_the_block_held(installed):
    store, root, out, leaves = installed
    # As if the process died after the references were durable but before the block files went: both exist.
    data = store.get(leaves[0])
    store._path(parse_cid(leaves[0])).write_bytes(data)
    assert store.get(leaves[0]) == data and store.verify() == []
    assert len(list(store.cids())) == len(set(store.cids()))  # one CID, listed once
    store.delete(leaves[0])
    assert not store.has(leaves[0])


def test_gc_removes_references_nobody_pins(installed):
    store, root, out, leaves = installed
    store.pin(root)
    assert store.gc() == (0, 0) and all(store.has(c) for c in leaves)
    store.unpin(root)
    removed, _ = store.gc()
    assert removed == 5 and not list(store.root.glob("*/*.ref")) and out.exists()


def test_a_touched_file_is_missing_until_verify_repair_points_at_it_again(installed):
    store, root, out, leaves = installed
    os.utime(out, ns=(0, 10**18))  # same bytes, another mtime: has() cannot tell without reading
    assert missing_blocks(store, root) == leaves
    assert store.get(leaves[0]) == out.read_bytes()[: 1 << 20]  # a read hashes, so the bytes still serve
    assert store.verify(repair=True) == [] and missing_blocks(store, root) == []


@pytest.mark.swarm
@pytest.mark.timeout(120)
async def test_a_holder_serves_referenced_blocks_and_never_a_changed_one(installed, tmp_path):
    from test_exchange import p2ps  # tests/content is on sys.path (no __init__.py)

    from paris_node.content.errors import FetchError
    from paris_node.content.exchange import fetch_dag

    store, root, out, leaves = installed
    async with p2ps(2) as (provider, client):
        server = BlockServer(provider, store)
        await server.start()
        good = Blockstore(tmp_path / "good")
        await fetch_dag(client, good, root, [provider.peer_id], deadline_s=60)
        export_file(good, root, tmp_path / "got.bin")
        assert (tmp_path / "got.bin").read_bytes() == out.read_bytes()
        _flip_keeping_identity(out, 2 * 1024 * 1024 + 3)  # inside the third leaf
        other = Blockstore(tmp_path / "other")
        with pytest.raises(FetchError, match=leaves[2]):
            await fetch_dag(client, other, root, [provider.peer_id], deadline_s=60)
        assert not other.has(leaves[2]) and other.verify() == []  # answered not-have: nothing wrong stored
        await server.stop()
