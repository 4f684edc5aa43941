"""Files in and out of the store, DAG walks, and CARv1 export / verifying import."""

from __future__ import annotations

import errno
import io
import os

import pytest
from conftest import det_bytes

from paris_node.content.blockstore import Blockstore
from paris_node.content.car import CarDecoder, car_header, iter_car, read_car, write_car
from paris_node.content.cid import BlockMismatch, FileImporter, file_cid, parse_cid
from paris_node.content.dag import add_bytes, add_file, export_file, iter_file, missing_blocks, walk_dag
from paris_node.content.dagpb import varint
from paris_node.content.errors import BlockNotFound, BlockTooLarge, CorruptDag, StoreFull, TruncatedStream
from paris_node.errors import UsageError

DATA = det_bytes("dag", 1_000_000)  # 4 chunks of 256 KiB: root + 4 leaves


def test_add_file_matches_only_hash_and_reads_back(store, tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(DATA)
    for profile in ("kubo-default", "cid-v1", "unixfs-v1-2025"):
        root = add_file(store, p, profile, pin=True)
        assert root == file_cid(p, profile)
        assert b"".join(iter_file(store, root)) == DATA
    assert len(store.pins()) == 3
    out = tmp_path / "out" / "copy.bin"
    assert export_file(store, root, out) == len(DATA)
    assert out.read_bytes() == DATA


def test_add_refuses_directory_and_device(store, tmp_path):
    with pytest.raises(UsageError, match=str(tmp_path)):
        add_file(store, tmp_path)
    with pytest.raises(UsageError, match="/dev/null"):
        add_file(store, "/dev/null")
    with pytest.raises(UsageError, match="no such file"):
        add_file(store, tmp_path / "nope")


def test_walk_and_missing_blocks(store):
    root = add_bytes(store, DATA)
    cids = list(walk_dag(store, root))
    assert cids[0] == root and len(cids) == 5
    assert missing_blocks(store, root) == []
    store.delete(cids[2])
    store.delete(cids[4])
    assert missing_blocks(store, root) == [cids[2], cids[4]]
    with pytest.raises(BlockNotFound):
        list(walk_dag(store, root))
    with pytest.raises(BlockNotFound):
        b"".join(iter_file(store, root))
    store.delete(root)
    assert missing_blocks(store, root) == [root]


def test_export_is_atomic_on_missing_block_and_full_disk(store, tmp_path, monkeypatch):
    root = add_bytes(store, DATA)
    out = tmp_path / "out.bin"
    leaf = list(walk_dag(store, root))[3]
    data = store.get(leaf)
    store.delete(leaf)
    with pytest.raises(BlockNotFound):
        export_file(store, root, out)
    assert not out.exists() and list(tmp_path.glob(".out.bin*")) == []
    store.put(leaf, data)

    def enospc(fd, buf):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", enospc)
    with pytest.raises(StoreFull):
        export_file(store, root, out)
    monkeypatch.undo()
    assert not out.exists() and list(tmp_path.glob(".out.bin*")) == []


def test_iter_file_detects_corrupt_block_on_disk(store):
    root = add_bytes(store, DATA)
    leaf = list(walk_dag(store, root))[1]
    store._path(leaf).write_bytes(b"bit rot")
    with pytest.raises(BlockMismatch):
        b"".join(iter_file(store, root))


def test_car_header_bytes():
    """dag-cbor {"roots": [CID], "version": 1}: keys in length order, CID as tag 42 with a 0x00 prefix."""
    cid = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
    h = car_header([cid])
    body = b"\xa2\x65roots\x81\xd8\x2a\x58\x23\x00" + parse_cid(cid).binary + b"\x67version\x01"
    assert h == varint(len(body)) + body


@pytest.mark.parametrize("profile", ["kubo-default", "unixfs-v1-2025"])
def test_car_round_trip(store, tmp_path, profile):
    root = add_bytes(store, DATA, profile)
    car = tmp_path / "x.car"
    n = write_car(store, root, car)
    assert n == car.stat().st_size
    with open(car, "rb") as f:
        roots, blocks = read_car(f, read_size=1000)  # small reads: sections span many reads
        other = Blockstore(tmp_path / "other")
        got = [cid for cid, block in blocks if other.put(cid, block) is None]
    assert roots == [root] and got == list(walk_dag(store, root))
    assert b"".join(iter_file(other, root)) == DATA


def test_car_dedupes_repeated_blocks(store):
    root = add_bytes(store, bytes(1_000_000))  # four identical zero chunks -> 3 of 4 leaves are duplicates
    assert len(list(walk_dag(store, root))) == 5
    roots, blocks = read_car(io.BytesIO(b"".join(iter_car(store, root))))
    assert len(list(blocks)) == 3  # root, the 256 KiB zero leaf, the short last leaf


def _car(store, root) -> bytes:
    return b"".join(iter_car(store, root))


def test_car_reader_rejects_tampered_block(store):
    root = add_bytes(store, DATA)
    car = bytearray(_car(store, root))
    car[-10] ^= 1
    roots, blocks = read_car(io.BytesIO(bytes(car)))
    with pytest.raises(BlockMismatch):
        list(blocks)


def test_car_reader_detects_truncation(store):
    root = add_bytes(store, DATA)
    car = _car(store, root)
    roots, blocks = read_car(io.BytesIO(car[:-5]))
    with pytest.raises(TruncatedStream):
        list(blocks)
    with pytest.raises(TruncatedStream):
        read_car(io.BytesIO(car[:3]))


def test_car_reader_caps_claimed_section_size():
    dec = CarDecoder()
    dec.feed(car_header(["QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"]))
    with pytest.raises(BlockTooLarge):
        dec.feed(varint(1024 * 1024 * 1024))  # claims 1 GiB before sending it: refused at once


def test_car_reader_rejects_bad_header():
    with pytest.raises(CorruptDag):
        CarDecoder().feed(varint(3) + b"\xa1\x61x")
    bad_version = b"\xa2\x65roots\x80\x67version\x02"
    with pytest.raises(CorruptDag):
        CarDecoder().feed(varint(len(bad_version)) + bad_version)


def test_importer_memory_is_bounded():
    """Feeding 64 MiB in pieces keeps at most one partial chunk and one partial group per level."""
    imp = FileImporter("kubo-default", emit_blocks=False)
    piece = bytes(1 << 20)
    for _ in range(64):
        imp.update(piece)
    assert len(imp._buf) < 256 * 1024 and sum(len(x) for x in imp._levels) <= 174 * 2


def test_car_header_decodes_with_an_independent_cbor_library(store):
    """cbor2 (a general CBOR library, test-only dependency) must read our header as CARv1 readers do."""
    cbor2 = pytest.importorskip("cbor2")
    root = add_bytes(store, DATA, "cid-v1")
    car = b"".join(iter_car(store, root))
    n, pos = 0, 0
    shift = 0
    while True:
        b = car[pos]
        n |= (b & 0x7F) << shift
        pos += 1
        shift += 7
        if not b & 0x80:
            break
    header = cbor2.loads(car[pos : pos + n])
    assert header["version"] == 1 and len(header["roots"]) == 1
    tag = header["roots"][0]
    assert tag.tag == 42 and tag.value == b"\x00" + parse_cid(root).binary
    assert cbor2.dumps(header, canonical=True) == car[pos : pos + n]  # canonical (dag-cbor) key order
