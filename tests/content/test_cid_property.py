"""Property test: the streaming importer agrees with a deliberately simple, independent implementation.

The reference below is a literal transcription of boxo's `balanced.Layout` / `fillNodeRec` (whole file in
memory, recursion, its own protobuf writer), sharing no code with paris_node.content.cid/dagpb. Tiny chunk
sizes and link limits give multi-level DAGs from a few hundred bytes. The DAG is also decoded back and its
Tsizes and blocksizes are checked to sum up.
"""

from __future__ import annotations

import hashlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multiformats import multibase

from paris_node.content import dagpb
from paris_node.content.blockstore import Blockstore
from paris_node.content.cid import FileImporter, ImportProfile, block_links, cid_from_bytes, parse_cid
from paris_node.content.dag import add_bytes, iter_file


def _v(n: int) -> bytes:
    out = b""
    while True:
        if n < 0x80:
            return out + bytes([n])
        out += bytes([n & 0x7F | 0x80])
        n >>= 7


def _ld(field: int, payload: bytes) -> bytes:
    return _v(field << 3 | 2) + _v(len(payload)) + payload


class RefBuilder:
    """boxo balanced layout, transcribed: nodes are (cid bytes, block, tsize, filesize)."""

    def __init__(self, data: bytes, chunk: int, max_links: int, version: int, raw: bool) -> None:
        self.chunks = [data[i : i + chunk] for i in range(0, len(data), chunk)] or [b""]
        self.i, self.max_links, self.version, self.raw = 0, max_links, version, raw
        self.blocks: dict[bytes, bytes] = {}

    def done(self) -> bool:
        return self.i >= len(self.chunks)

    def cid(self, codec: int, block: bytes) -> bytes:
        mh = b"\x12\x20" + hashlib.sha256(block).digest()
        return mh if (self.version == 0 and codec == 0x70) else b"\x01" + bytes([codec]) + mh

    def leaf(self):
        data = self.chunks[self.i]
        self.i += 1
        if self.raw:
            c = b"\x01\x55\x12\x20" + hashlib.sha256(data).digest()
            self.blocks[c] = data
            return c, len(data), len(data)
        unixfs = _v(1 << 3) + _v(2) + (_ld(2, data) if data else b"") + _v(3 << 3) + _v(len(data))
        block = _ld(1, unixfs)
        c = self.cid(0x70, block)
        self.blocks[c] = block
        return c, len(block), len(data)

    def commit(self, children):
        links = b"".join(_ld(2, _ld(1, c) + _ld(2, b"") + _v(3 << 3) + _v(t)) for c, t, _ in children)
        fsize = sum(f for _, _, f in children)
        unixfs = _v(1 << 3) + _v(2) + _v(3 << 3) + _v(fsize) + b"".join(_v(4 << 3) + _v(f) for _, _, f in children)
        block = links + _ld(1, unixfs)
        c = self.cid(0x70, block)
        self.blocks[c] = block
        return c, len(block) + sum(t for _, t, _ in children), fsize

    def fill(self, children, depth):
        while len(children) < self.max_links and not self.done():
            children.append(self.leaf() if depth == 1 else self.fill([], depth - 1))
        return self.commit(children)

    def layout(self):
        root = self.leaf()
        depth = 1
        while not self.done():
            root = self.fill([root], depth)
            depth += 1
        return root


def ref_cid(data: bytes, p: ImportProfile) -> str:
    c = RefBuilder(data, p.chunk_size, p.max_links, p.cid_version, p.raw_leaves).layout()[0]
    return multibase.encode(c, "base58btc")[1:] if c[0] == 0x12 else multibase.encode(c, "base32")


profiles = st.builds(
    ImportProfile,
    name=st.just("test"),
    cid_version=st.sampled_from([0, 1]),
    chunk_size=st.integers(1, 64),
    max_links=st.integers(2, 5),
    raw_leaves=st.booleans(),
).filter(lambda p: not (p.cid_version == 0 and p.raw_leaves))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=1500), profile=profiles, cuts=st.lists(st.integers(0, 1500), max_size=6))
def test_streaming_importer_matches_reference(data, profile, cuts):
    imp = FileImporter(profile)
    blocks = []
    prev = 0
    for c in sorted(set(x for x in cuts if x <= len(data))) + [len(data)]:
        blocks += imp.update(data[prev:c])  # arbitrary split points: streaming must not change the DAG
        prev = c
    root, rest = imp.finish()
    ref = RefBuilder(data, profile.chunk_size, profile.max_links, profile.cid_version, profile.raw_leaves)
    ref_root = ref.layout()[0]
    assert root == cid_from_bytes(ref_root)
    blocks += rest
    assert {c for c, _ in blocks} == {cid_from_bytes(c) for c in ref.blocks}
    _check_dag_sizes(dict(blocks), root, len(data))


def _check_dag_sizes(blocks: dict[str, bytes], root: str, size: int) -> None:
    """Tsize = block length + children's Tsizes; filesize = sum of blocksizes = bytes under the node."""

    def visit(cid: str) -> tuple[int, int]:  # (tsize, file bytes)
        block = blocks[cid]
        if parse_cid(cid).codec == 0x55:
            return len(block), len(block)
        node = dagpb.decode_pbnode(block)
        fs = dagpb.decode_unixfs(node.data)
        tsize, fbytes = len(block), len(fs.data)
        assert len(fs.blocksizes) == len(node.links)
        for link, bs in zip(node.links, fs.blocksizes, strict=True):
            t, f = visit(cid_from_bytes(link.cid))
            assert link.tsize == t and bs == f and link.name == ""
            tsize += t
            fbytes += f
        assert fs.filesize == fbytes
        return tsize, fbytes

    assert visit(root)[1] == size


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=3000), profile=profiles)
def test_store_round_trip(tmp_path_factory, data, profile):
    store = Blockstore(tmp_path_factory.mktemp("bs"))
    root = add_bytes(store, data, profile)
    assert b"".join(iter_file(store, root)) == data


def test_reference_depth_is_real():
    """Guard that the property test reaches several DAG levels (2 links, 1-byte chunks, 9 bytes: depth 4)."""
    p = ImportProfile("t", 1, 1, 2, True)
    imp = FileImporter(p)
    blocks = imp.update(b"abcdefghi")
    root, rest = imp.finish()
    by = dict(blocks + rest)
    depth, cid = 0, root
    while parse_cid(cid).codec == 0x70:
        cid = block_links(cid, by[cid])[0]
        depth += 1
    assert depth == 4 and root == ref_cid(b"abcdefghi", p)
