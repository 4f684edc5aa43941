"""CARv1 (content archive) export and a streaming, verifying reader.

A CARv1 is `varint(len) dag-cbor{"roots": [cid], "version": 1}` followed by sections
`varint(len(cid) + len(block)) || cid || block`. The header is the only dag-cbor we ever meet, so a tiny
CBOR subset is written here instead of taking a dependency. The reader is push-based (`CarDecoder.feed`) so the
same code serves files, sockets and aiohttp bodies, with memory bounded by one block.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from paris_node.content import dagpb
from paris_node.content.blockstore import Blockstore, atomic_write
from paris_node.content.cid import (
    DAG_PB,
    IDENTITY,
    MAX_BLOCK_SIZE,
    cid_from_bytes,
    decode_cid_bytes,
    parse_cid,
    verify_block,
)
from paris_node.content.dag import missing_blocks, walk_dag
from paris_node.content.dagpb import read_varint, varint
from paris_node.content.errors import BlockTooLarge, CorruptDag, MalformedCid, TruncatedStream

__all__ = ["CarDecoder", "car_header", "import_car", "iter_car", "read_car", "scope_cids", "write_car"]

MAX_HEADER = 64 * 1024
_SECTION_OVERHEAD = 128  # CID bytes + slack on top of a block


def _cbor_head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes([major << 5 | n])
    for size, extra in ((1, 24), (2, 25), (4, 26), (8, 27)):
        if n < 1 << (8 * size):
            return bytes([major << 5 | extra]) + n.to_bytes(size, "big")
    raise ValueError("integer too large for CBOR")


def car_header(roots: list[str]) -> bytes:
    """The length-prefixed dag-cbor header; map keys in dag-cbor order (shorter first: roots, version)."""
    body = _cbor_head(5, 2) + _cbor_head(3, 5) + b"roots" + _cbor_head(4, len(roots))
    for r in roots:
        cid = b"\x00" + parse_cid(r).binary  # tag 42: identity-multibase prefix + binary CID
        body += b"\xd8\x2a" + _cbor_head(2, len(cid)) + cid
    body += _cbor_head(3, 7) + b"version" + _cbor_head(0, 1)
    return varint(len(body)) + body


SCOPES = ("block", "entity", "all")
ByteRange = tuple[int, int | None]  # (from, to) as in `entity-bytes=from:to`; to None = `*`; negatives from the end


def _unixfs(store: Blockstore, cid: str) -> tuple[dagpb.PBNode, dagpb.UnixFSData] | None:
    """The dag-pb node and its UnixFS data, or None for a raw block or a dag-pb node without UnixFS data."""
    if parse_cid(cid).codec != DAG_PB:
        return None
    node = dagpb.decode_pbnode(store.get(cid))
    return (node, dagpb.decode_unixfs(node.data)) if node.data is not None else None


def entity_size(store: Blockstore, root: str) -> int | None:
    """The byte length of the file at `root` (raw block or UnixFS file), None if it is not a file."""
    if parse_cid(root).codec != DAG_PB:
        return len(store.get(root))
    fs = _unixfs(store, root)
    if fs is None or fs[1].type not in (dagpb.UNIXFS_FILE, dagpb.UNIXFS_RAW):
        return None
    node, data = fs
    return data.filesize if data.filesize is not None else len(data.data) + sum(data.blocksizes)


def resolve_range(rng: ByteRange, size: int) -> tuple[int, int] | None:
    """`entity-bytes` as an inclusive [lo, hi] inside a `size`-byte entity; None if nothing of it is inside."""
    lo, hi = rng
    lo = size + lo if lo < 0 else lo
    hi = size - 1 if hi is None else (size + hi if hi < 0 else hi)
    lo, hi = max(lo, 0), min(hi, size - 1)
    return (lo, hi) if lo <= hi else None


def _range_cids(store: Blockstore, cid: str, lo: int, hi: int, depth: int = 0) -> Iterator[str]:
    """The blocks needed to verify bytes [lo, hi] of the file node `cid` (offsets relative to it), DFS order."""
    if depth > 32:
        raise CorruptDag(f"DAG deeper than 32 levels at {cid}")
    yield cid
    fs = _unixfs(store, cid)
    if fs is None:
        return
    node, data = fs
    if data.blocksizes and len(data.blocksizes) != len(node.links):
        raise CorruptDag(f"{cid}: {len(node.links)} links but {len(data.blocksizes)} blocksizes")
    off = len(data.data)
    for link, size in zip(node.links, data.blocksizes, strict=False):
        if off + size > lo and off <= hi:  # the child's bytes [off, off+size) meet [lo, hi]
            child = cid_from_bytes(link.cid)
            yield from _range_cids(store, child, max(lo - off, 0), min(hi - off, size - 1), depth + 1)
        off += size


def scope_cids(
    store: Blockstore, root: str, scope: str = "all", entity_bytes: ByteRange | None = None
) -> Iterator[str]:
    """The CIDs a CAR of `root` carries for `dag-scope` / `entity-bytes` (trustless gateway spec), DFS order.

    block: the root only. entity: a whole file (raw or UnixFS), or just the root of anything else (a
    directory is enumerated by its root block). all: the whole DAG. `entity-bytes` implies entity and keeps
    only the blocks needed to verify that byte range of a file (ignored for non-files; a range wholly
    outside the file gives the root block only).
    """
    if scope not in SCOPES:
        raise ValueError(f"dag-scope must be one of {', '.join(SCOPES)}")
    if entity_bytes is not None:
        size = entity_size(store, root)
        if size is None:
            scope, entity_bytes = "entity", None
        else:
            span = resolve_range(entity_bytes, size)
            yield from [root] if span is None else _range_cids(store, root, *span)
            return
    if scope == "block":
        yield root
    elif scope == "entity" and entity_size(store, root) is None:
        yield root  # not a file: the block that enumerates it
    else:
        yield from walk_dag(store, root)


def iter_car(
    store: Blockstore,
    root: str,
    dedupe: bool = True,
    scope: str = "all",
    entity_bytes: ByteRange | None = None,
) -> Iterator[bytes]:
    """CARv1 of the DAG (or of the part `scope` / `entity_bytes` select) in DFS order as byte pieces. Identity
    CIDs are never included (their bytes are in the CID). A block missing mid-way ends the iteration with
    BlockNotFound after what was already yielded (the gateway turns this into a truncated response)."""
    yield car_header([root])
    seen: set[bytes] = set()
    for cid in scope_cids(store, root, scope, entity_bytes):
        info = parse_cid(cid)
        if info.mh_code == IDENTITY:
            continue
        if dedupe:
            if info.multihash in seen:
                continue
            seen.add(info.multihash)
        data = store.get(cid)
        cid_b = info.binary
        yield varint(len(cid_b) + len(data)) + cid_b
        yield data


def import_car(store: Blockstore, path: str | os.PathLike, pin: bool = True) -> tuple[list[str], int, list[str]]:
    """Read a CARv1 file into the store, every block verified against its CID before it is stored.

    Returns (roots, blocks stored, CIDs still missing under the roots). Roots are pinned when `pin`. A
    tampered block raises BlockMismatch and a cut-off file TruncatedStream; blocks before it stay (verified).
    """
    stored = 0
    with open(path, "rb") as f:
        roots, blocks = read_car(f)
        for cid, block in blocks:  # read_car verified the bytes against the CID
            store.put_local(cid, [block])
            stored += 1
    store.sync()
    missing = [c for r in roots for c in missing_blocks(store, r)]
    if pin:
        for r in roots:
            store.pin(r)
    return roots, stored, missing


def write_car(store: Blockstore, root: str, out: str | os.PathLike | BinaryIO) -> int:
    """Write the DAG under `root` as a CARv1 to a path (atomically) or a binary stream; returns bytes written."""
    if isinstance(out, (str, os.PathLike)):
        return atomic_write(Path(out), iter_car(store, root))
    n = 0
    for piece in iter_car(store, root):
        out.write(piece)
        n += len(piece)
    return n


class _Cbor:
    """Just enough CBOR to read a CAR header: ints, byte/text strings, arrays, maps, tag 42, simple values."""

    def __init__(self, buf: bytes) -> None:
        self.buf, self.pos = buf, 0

    def _arg(self, info: int) -> int:
        if info < 24:
            return info
        size = {24: 1, 25: 2, 26: 4, 27: 8}.get(info)
        if size is None or self.pos + size > len(self.buf):
            raise CorruptDag("bad CBOR length in CAR header")
        v = int.from_bytes(self.buf[self.pos : self.pos + size], "big")
        self.pos += size
        return v

    def item(self, depth: int = 0) -> object:
        if depth > 8 or self.pos >= len(self.buf):
            raise CorruptDag("CAR header is truncated or nested too deeply")
        ib = self.buf[self.pos]
        self.pos += 1
        major, info = ib >> 5, ib & 31
        if major == 7:
            return {20: False, 21: True, 22: None}.get(info, None)
        n = self._arg(info)
        if major == 0:
            return n
        if major in (2, 3):
            if self.pos + n > len(self.buf):
                raise CorruptDag("CAR header string runs past its end")
            s = self.buf[self.pos : self.pos + n]
            self.pos += n
            return s if major == 2 else s.decode("utf-8", "replace")
        if major == 4:
            return [self.item(depth + 1) for _ in range(n)]
        if major == 5:
            return {self.item(depth + 1): self.item(depth + 1) for _ in range(n)}
        if major == 6:
            val = self.item(depth + 1)
            if n == 42 and isinstance(val, bytes) and val[:1] == b"\x00":
                return str(decode_cid_bytes(val[1:])[0])
            return val
        raise CorruptDag(f"unsupported CBOR major type {major} in CAR header")


class CarDecoder:
    """Push CAR bytes in with feed(); get verified (cid, block) pairs out. close() detects truncation."""

    def __init__(self, max_block: int = MAX_BLOCK_SIZE) -> None:
        self.roots: list[str] | None = None
        self._buf = bytearray()
        self._max = max_block

    def feed(self, data: bytes) -> list[tuple[str, bytes]]:
        self._buf += data
        out: list[tuple[str, bytes]] = []
        pos = 0
        while True:
            try:
                n, body = read_varint(self._buf, pos)
            except CorruptDag:
                if len(self._buf) - pos > 10:
                    raise
                break  # length prefix not complete yet
            limit = MAX_HEADER if self.roots is None else self._max + _SECTION_OVERHEAD
            if n > limit or n == 0:
                what = "header" if self.roots is None else "section"
                raise BlockTooLarge(f"CAR {what} claims {n} bytes (cap {limit})")
            if body + n > len(self._buf):
                break
            section = bytes(self._buf[body : body + n])
            pos = body + n
            if self.roots is None:
                self.roots = self._header(section)
            else:
                out.append(self._section(section))
        del self._buf[:pos]
        return out

    def close(self) -> None:
        """Raise TruncatedStream if the CAR stopped inside the header or a section."""
        if self.roots is None:
            raise TruncatedStream("CAR stream ended before its header")
        if self._buf:
            raise TruncatedStream(f"CAR stream ended inside a block section ({len(self._buf)} stray bytes)")

    @staticmethod
    def _header(section: bytes) -> list[str]:
        try:
            hdr = _Cbor(section).item()
        except MalformedCid as e:
            raise CorruptDag(f"CAR header root is not a valid CID: {e}") from None
        if not isinstance(hdr, dict) or hdr.get("version") != 1:
            raise CorruptDag("not a CARv1 header (version must be 1)")
        roots = hdr.get("roots")
        if not isinstance(roots, list) or not all(isinstance(r, str) for r in roots):
            raise CorruptDag("CAR header roots must be a list of CIDs")
        return roots

    @staticmethod
    def _section(section: bytes) -> tuple[str, bytes]:
        info, pos = decode_cid_bytes(section)
        block = section[pos:]
        verify_block(info, block)
        return str(info), block


def read_car(stream: BinaryIO, read_size: int = 1024 * 1024) -> tuple[list[str], Iterator[tuple[str, bytes]]]:
    """Read a CARv1 from a binary stream: (roots, iterator of verified (cid, block)).

    The header is read eagerly; blocks are read lazily. A tampered block raises BlockMismatch and a cut-off
    stream TruncatedStream when the iterator reaches it.
    """
    dec = CarDecoder()
    prefix = b""
    while True:  # header length varint, byte by byte, so no block is read before the caller iterates
        b = stream.read(1)
        if not b:
            raise TruncatedStream("CAR stream ended before its header")
        prefix += b
        if not b[0] & 0x80 or len(prefix) > 9:
            break
    n, _ = read_varint(prefix, 0)
    if n > MAX_HEADER:
        raise BlockTooLarge(f"CAR header claims {n} bytes (cap {MAX_HEADER})")
    body = stream.read(n)
    pending = dec.feed(prefix + body)
    if dec.roots is None:
        raise TruncatedStream("CAR stream ended inside its header")

    def blocks() -> Iterator[tuple[str, bytes]]:
        yield from pending
        while data := stream.read(read_size):
            yield from dec.feed(data)
        dec.close()

    return dec.roots, blocks()
