"""Blockstore: verified, atomic, deduplicated by multihash, pins and gc, safe across threads."""

from __future__ import annotations

import errno
import os
import threading
import time

import pytest
from conftest import det_bytes

from paris_node.content.blockstore import STALE_TMP_S, Blockstore
from paris_node.content.cid import BlockMismatch, FileImporter, to_v1
from paris_node.content.dag import add_bytes, walk_dag
from paris_node.content.errors import BlockNotFound, StoreFull

HELLO = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"


def _blocks(data: bytes, profile="kubo-default"):
    imp = FileImporter(profile)
    out = imp.update(data)
    root, rest = imp.finish()
    return root, dict(out + rest)


def _files(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_put_get_has_delete(store):
    root, blocks = _blocks(b"hello world\n")
    assert root == HELLO and not store.has(HELLO)
    with pytest.raises(BlockNotFound) as e:
        store.get(HELLO)
    assert isinstance(e.value, KeyError) and HELLO in str(e.value)
    store.put(HELLO, blocks[HELLO])
    assert store.has(HELLO) and store.get(HELLO) == blocks[HELLO]
    assert store.stat() == {"blocks": 1, "bytes": len(blocks[HELLO]), "referenced_bytes": 0}
    store.delete(HELLO)
    assert not store.has(HELLO)


def test_v0_and_v1_share_one_block(store):
    _, blocks = _blocks(b"hello world\n")
    store.put(HELLO, blocks[HELLO])
    v1 = to_v1(HELLO)
    assert store.has(v1) and store.get(v1) == blocks[HELLO]
    store.put(v1, blocks[HELLO])
    assert store.stat()["blocks"] == 1
    assert len(list(store.cids())) == 1


def test_mismatch_writes_nothing(store):
    with pytest.raises(BlockMismatch):
        store.put(HELLO, b"not the block")
    assert not store.has(HELLO)
    assert [f for f in _files(store.root) if not f.endswith("pins.json")] == []


def test_full_disk_leaves_no_partial_block(store, monkeypatch):
    _, blocks = _blocks(b"hello world\n")
    real_write = os.write

    def enospc(fd, data):
        real_write(fd, bytes(data)[:3])  # a partial write reached the temp file before the disk filled
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", enospc)
    with pytest.raises(StoreFull, match="disk full"):
        store.put(HELLO, blocks[HELLO])
    monkeypatch.setattr(os, "write", real_write)
    assert not store.has(HELLO)
    assert _files(store.root) == []  # neither the block nor its temp file


def test_crash_before_rename_leaves_nothing_visible(store, monkeypatch):
    _, blocks = _blocks(b"hello world\n")

    def crash(src, dst):
        raise KeyboardInterrupt  # the process dies between fsync and rename

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        store.put(HELLO, blocks[HELLO])
    monkeypatch.undo()
    assert not store.has(HELLO) and _files(store.root) == []


def test_pins_and_gc_keep_only_reachable(store):
    kept = add_bytes(store, det_bytes("a", 700_000))  # 3 leaves + root
    dropped = add_bytes(store, det_bytes("b", 300_000))
    store.pin(kept)
    assert store.pins() == [kept]
    assert (store.root / "pins.json").is_file()
    before = store.stat()
    removed, freed = store.gc()
    assert removed == 3 and freed > 300_000  # dropped's root + 2 leaves
    assert store.stat()["blocks"] == before["blocks"] - 3
    assert all(store.has(c) for c in walk_dag(store, kept))
    assert not store.has(dropped)
    store.unpin(kept)
    with pytest.raises(KeyError):
        store.unpin(kept)
    assert store.gc()[0] == 4 and store.stat() == {"blocks": 0, "bytes": 0, "referenced_bytes": 0}


def test_gc_keeps_partial_pinned_dag(store):
    root, blocks = _blocks(det_bytes("c", 600_000))
    store.pin(root)  # pinned before its blocks arrive (a fetch in progress)
    leaf = next(iter(blocks))
    store.put(root, blocks[root])
    store.put(leaf, blocks[leaf])
    assert store.gc() == (0, 0)
    assert store.has(root) and store.has(leaf)


def test_threads_put_concurrently(store):
    root, blocks = _blocks(det_bytes("t", 2_000_000), "cid-v1")
    items = list(blocks.items())
    errors = []

    def worker(part):
        try:
            for cid, data in part:
                store.put(cid, data)
                assert store.get(cid) == data
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(items[i::2] + items,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert store.stat()["blocks"] == len(blocks)
    assert not [f for f in _files(store.root) if f.endswith(".tmp")]


def test_reopen_sees_same_content(tmp_path):
    a = Blockstore(tmp_path / "bs")
    root = add_bytes(a, b"persist me", pin=True)
    b = Blockstore(tmp_path / "bs")
    assert b.pins() == [root] and b.has(root)


def _block(seed: str):
    root, blocks = _blocks(det_bytes(seed, 5000))
    return root, blocks[root]


def _tmp_files(store) -> list:
    return list(store.root.rglob(".*.tmp"))


def _held_in_fsync(monkeypatch):
    """Patch os.fsync so the next put stops inside it (its temp file written, not yet renamed)."""
    entered, release = threading.Event(), threading.Event()
    real_fsync = os.fsync

    def fsync(fd):
        if not entered.is_set():
            entered.set()
            assert release.wait(30)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return entered, release


def test_gc_spares_the_temp_file_of_a_put_in_progress(store, monkeypatch):
    cid, data = _block("w")
    entered, release = _held_in_fsync(monkeypatch)
    errors = []
    t = threading.Thread(target=lambda: errors.extend(_catch(store.put, cid, data)))
    t.start()
    try:
        assert entered.wait(30)
        assert len(_tmp_files(store)) == 1
        assert store.gc() == (0, 0)  # gc runs while the put is writing: no lock wait, temp file kept
        assert len(_tmp_files(store)) == 1 and not store.has(cid)
    finally:
        release.set()
        t.join(30)
    assert not errors and store.get(cid) == data and _tmp_files(store) == []


def test_put_cannot_rename_into_place_during_gc(store, monkeypatch):
    """A block appears before gc looks or after it ends, never between its mark and its sweep."""
    cid, data = _block("g")
    real_reachable = store._reachable
    seen = {}

    def reachable(roots):
        t = threading.Thread(target=store.put, args=(cid, data))
        t.start()  # the put can write and fsync, but its rename waits for gc's lock
        t.join(0.5)
        seen["alive"], seen["visible"] = t.is_alive(), store.has(cid)
        seen["thread"] = t
        return real_reachable(roots)

    monkeypatch.setattr(store, "_reachable", reachable)
    assert store.gc() == (0, 0)
    seen["thread"].join(30)
    assert seen["alive"] and not seen["visible"]
    assert store.has(cid), "a block renamed after gc's sweep must be kept"


def test_gc_removes_only_stale_temp_files(store):
    cid, data = _block("s")
    store.put(cid, data)
    shard = store._path(cid).parent
    stale, fresh = shard / ".X.data.aaa.tmp", shard / ".Y.data.bbb.tmp"
    stale.write_bytes(b"crash leftover")
    fresh.write_bytes(b"another process is writing this")
    old = time.time() - STALE_TMP_S - 10
    os.utime(stale, (old, old))
    store.pin(cid)
    assert store.gc() == (0, 0)  # temp files are not blocks: not counted
    assert not stale.exists() and fresh.exists() and store.has(cid)
    os.utime(fresh, (old, old))
    store.gc()
    assert not fresh.exists()


def test_sync_makes_renames_durable_and_is_idempotent(store, monkeypatch):
    cid, data = _block("d")
    store.put(cid, data)
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real_fsync(fd)))
    store.sync()
    assert synced == [str(store._path(cid).parent)]
    store.sync()
    assert len(synced) == 1  # nothing renamed since


def _catch(fn, *args) -> list[Exception]:
    try:
        fn(*args)
    except Exception as e:  # pragma: no cover - reported by the caller
        return [e]
    return []


def test_sync_keeps_a_folder_renamed_into_during_its_fsync(store, monkeypatch):
    cid, data = _block("r")
    store.put(cid, data)
    folder = store._path(cid).parent
    real_fsync = os.fsync

    def fsync(fd):  # another put lands in the same folder while sync() is fsyncing it
        real_fsync(fd)
        monkeypatch.setattr(os, "fsync", real_fsync)
        with store._tmp_lock:
            store._unsynced[folder] += 1

    monkeypatch.setattr(os, "fsync", fsync)
    store.sync()
    assert folder in store._unsynced, "a rename after the fsync began must wait for the next sync"
    store.sync()
    assert folder not in store._unsynced
