"""Hand-written protobuf for dag-pb (PBNode/PBLink) and UnixFS file nodes, byte-identical to boxo.

No maintained Python library produces exactly what `ipfs add` writes, so the few encodings we need are
written out here. Encoding follows boxo/go-merkledag: Links (field 2) before Data (field 1); every link has
Hash, an empty Name (`12 00`) and Tsize; UnixFS fields in field order, Data omitted when empty, filesize always
present, blocksizes as unpacked varints. Decoding accepts any field order and skips unknown fields, because
blocks from other implementations must still be readable.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from paris_node.content.errors import CorruptDag

UNIXFS_RAW = 0
UNIXFS_DIRECTORY = 1
UNIXFS_FILE = 2


def varint(n: int) -> bytes:
    """Unsigned LEB128 (protobuf / multiformats varint)."""
    assert n >= 0
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def read_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Decode a varint at `pos`; returns (value, next position). Raises CorruptDag on truncation/overlong."""
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise CorruptDag("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise CorruptDag("varint longer than 64 bits")


def _field_bytes(tag: int, payload: bytes) -> bytes:
    return bytes([tag]) + varint(len(payload)) + payload


def unixfs_file(filesize: int, data_len: int = 0, blocksizes: Sequence[int] = ()) -> tuple[bytes, bytes]:
    """UnixFS File message split around its Data payload: returns (before_data, after_data).

    The chunk itself goes between the two parts, so callers can hash or write a leaf without copying it.
    """
    head = b"\x08\x02"  # Type = File
    if data_len:
        head += b"\x12" + varint(data_len)
    tail = b"\x18" + varint(filesize) + b"".join(b"\x20" + varint(s) for s in blocksizes)
    return head, tail


def leaf_parts(chunk_len: int) -> tuple[bytes, bytes]:
    """A dag-pb leaf `PBNode{Data=UnixFS{File, Data=chunk, filesize}}` as (prefix, suffix) around the chunk."""
    head, tail = unixfs_file(chunk_len, chunk_len)
    inner_len = len(head) + chunk_len + len(tail)
    return b"\x0a" + varint(inner_len) + head, tail


def internal_node(links: Sequence[tuple[bytes, int]], blocksizes: Sequence[int]) -> bytes:
    """Internal file node: links are (binary CID, Tsize); blocksizes are the children's file sizes."""
    out = bytearray()
    for cid_bytes, tsize in links:
        link = b"\x0a" + varint(len(cid_bytes)) + cid_bytes + b"\x12\x00\x18" + varint(tsize)
        out += _field_bytes(0x12, link)
    head, tail = unixfs_file(sum(blocksizes), 0, blocksizes)
    out += _field_bytes(0x0A, head + tail)
    return bytes(out)


@dataclass
class PBLink:
    cid: bytes  # binary CID (v0: bare multihash)
    name: str | None
    tsize: int | None


@dataclass
class PBNode:
    links: list[PBLink] = field(default_factory=list)
    data: bytes | None = None


@dataclass
class UnixFSData:
    type: int
    data: bytes = b""
    filesize: int | None = None
    blocksizes: list[int] = field(default_factory=list)


def _fields(buf: bytes | memoryview) -> Iterator[tuple[int, int, object]]:
    """Yield (field number, wire type, value) for a protobuf message; value is int or a bytes slice."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = read_varint(buf, pos)
        num, wt = key >> 3, key & 7
        if wt == 0:
            val, pos = read_varint(buf, pos)
        elif wt == 2:
            n, pos = read_varint(buf, pos)
            if pos + n > end:
                raise CorruptDag("length-delimited field runs past the end of the block")
            val, pos = bytes(buf[pos : pos + n]), pos + n
        elif wt == 1:
            pos += 8
            val = None
        elif wt == 5:
            pos += 4
            val = None
        else:
            raise CorruptDag(f"unsupported protobuf wire type {wt}")
        if pos > end:
            raise CorruptDag("field runs past the end of the block")
        yield num, wt, val


def decode_pbnode(block: bytes) -> PBNode:
    """Parse a dag-pb block. Raises CorruptDag if it is not valid protobuf of the PBNode shape."""
    node = PBNode()
    for num, wt, val in _fields(block):
        if num == 2 and wt == 2:
            link = PBLink(b"", None, None)
            for lnum, lwt, lval in _fields(val):
                if lnum == 1 and lwt == 2:
                    link.cid = lval
                elif lnum == 2 and lwt == 2:
                    link.name = lval.decode("utf-8", "replace")
                elif lnum == 3 and lwt == 0:
                    link.tsize = lval
            if not link.cid:
                raise CorruptDag("dag-pb link without a Hash")
            node.links.append(link)
        elif num == 1 and wt == 2:
            node.data = val
        else:
            raise CorruptDag(f"unexpected dag-pb field {num}")
    return node


def decode_unixfs(data: bytes) -> UnixFSData:
    """Parse the UnixFS Data message of a dag-pb node."""
    out = UnixFSData(type=-1)
    for num, wt, val in _fields(data):
        if num == 1 and wt == 0:
            out.type = val
        elif num == 2 and wt == 2:
            out.data = val
        elif num == 3 and wt == 0:
            out.filesize = val
        elif num == 4 and wt == 0:
            out.blocksizes.append(val)
        elif num == 4 and wt == 2:  # packed, tolerated on read
            pos = 0
            while pos < len(val):
                v, pos = read_varint(val, pos)
                out.blocksizes.append(v)
    if out.type < 0:
        raise CorruptDag("UnixFS node without a Type")
    return out
