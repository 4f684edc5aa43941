"""CIDs identical to `ipfs add`: import profiles, a streaming balanced-DAG importer, CID parsing and checks.

Pure: no disk, no network. CID parsing and printing live in cidcodec.py (re-exported here); the dag-pb and
UnixFS protobuf (dagpb.py) and the balanced layout below are written by hand because no maintained
library reproduces boxo's importer. Layout (boxo `balanced.Layout`): fixed-size chunks become leaves; leaves
are grouped `max_links` to a node, nodes `max_links` to a parent, and so on; every subtree but the right-most
is full, and a single-chunk file is its own leaf. Filling a group eagerly as soon as it holds `max_links`
children builds exactly the nodes boxo builds, so the importer keeps only one partial group per level.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from paris_node.content import dagpb
from paris_node.content.cidcodec import (
    DAG_PB,
    IDENTITY,
    MAX_BLOCK_SIZE,
    RAW,
    SHA2_256,
    CidInfo,
    block_links,
    cid_from_bytes,
    cid_str_from_binary,
    decode_cid_bytes,
    multihash_of,
    parse_cid,
    to_v1,
    verify_block,
)
from paris_node.content.errors import BlockMismatch, BlockTooLarge, MalformedCid, UnsupportedCid
from paris_node.errors import UsageError

__all__ = [
    "DAG_PB",
    "DEFAULT_PUBLISH_PROFILE",
    "IDENTITY",
    "RAW",
    "SHA2_256",
    "MAX_BLOCK_SIZE",
    "PROFILES",
    "BlockMismatch",
    "BlockTooLarge",
    "CidInfo",
    "FileImporter",
    "ImportProfile",
    "MalformedCid",
    "UnsupportedCid",
    "block_links",
    "cid_from_bytes",
    "decode_cid_bytes",
    "file_cid",
    "multihash_of",
    "parse_cid",
    "resolve_profile",
    "to_v1",
    "verify_block",
]

MAX_CHUNK_SIZE = 1024 * 1024  # boxo's chunker limit
_READ_SIZE = 4 * 1024 * 1024


@dataclass(frozen=True)
class ImportProfile:
    """How a file becomes a DAG. Named like `ipfs add` flags so a profile maps one-to-one onto a Kubo call."""

    name: str
    cid_version: int
    chunk_size: int
    max_links: int
    raw_leaves: bool

    def __post_init__(self) -> None:
        if self.cid_version not in (0, 1):
            raise ValueError(f"cid_version must be 0 or 1, not {self.cid_version}")
        if not 1 <= self.chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk size must be 1..{MAX_CHUNK_SIZE} bytes, not {self.chunk_size}")
        if self.max_links < 2:
            raise ValueError(f"max_links must be >= 2, not {self.max_links}")


PROFILES: dict[str, ImportProfile] = {
    "kubo-default": ImportProfile("kubo-default", 0, 256 * 1024, 174, False),
    "cid-v1": ImportProfile("cid-v1", 1, 256 * 1024, 174, True),
    "unixfs-v1-2025": ImportProfile("unixfs-v1-2025", 1, 1024 * 1024, 1024, True),
}
DEFAULT_PUBLISH_PROFILE = "unixfs-v1-2025"


def resolve_profile(profile: ImportProfile | str) -> ImportProfile:
    if isinstance(profile, ImportProfile):
        return profile
    try:
        return PROFILES[profile]
    except KeyError:
        raise UsageError(f"unknown import profile {profile!r}; choose one of {', '.join(PROFILES)}") from None


class FileImporter:
    """Streaming `ipfs add` for one file: feed bytes with update(), then finish() for the root.

    Memory: one partial chunk plus at most `max_links` pending links per DAG level. With emit_blocks=False
    only CIDs are computed (no block bytes are assembled), which is what `--only-hash` needs. With
    block_views=True each emitted block is a tuple of byte pieces (leaves point into the caller's buffer) that
    stays valid only until the next update() call: no copy is made, which matters because a fresh 1 MiB
    allocation per block costs more in page faults than hashing it on some machines (see bench_content.py).
    """

    def __init__(
        self, profile: ImportProfile | str = "kubo-default", *, emit_blocks: bool = True, block_views: bool = False
    ) -> None:
        self.profile = resolve_profile(profile)
        self._emit = emit_blocks
        self._views = block_views
        self._buf = bytearray()
        self._levels: list[list[tuple[bytes, int, int]]] = [[]]  # per height: (binary cid, tsize, filesize)
        self._leaves = 0
        self._out: list[tuple[str, bytes]] = []
        self._done = False
        leaf_version = 1 if self.profile.raw_leaves else self.profile.cid_version
        self._leaf_prefix = b"" if leaf_version == 0 else b"\x01" + bytes([RAW if self.profile.raw_leaves else DAG_PB])
        self._node_prefix = b"" if self.profile.cid_version == 0 else b"\x01\x70"
        self._full_parts = dagpb.leaf_parts(self.profile.chunk_size)
        self.size = 0

    def update(self, data: bytes | bytearray | memoryview) -> list[tuple[str, bytes]]:
        """Add bytes; returns the blocks completed by them as (cid, block bytes)."""
        assert not self._done, "update() after finish()"
        mv = memoryview(data).cast("B")
        self.size += len(mv)
        cs = self.profile.chunk_size
        if self._buf:
            take = cs - len(self._buf)
            self._buf += mv[:take]
            mv = mv[take:]
            if len(self._buf) == cs:
                self._leaf(self._buf)
                self._buf = bytearray()
        while len(mv) >= cs:
            self._leaf(mv[:cs])
            mv = mv[cs:]
        if len(mv):
            self._buf += mv
        out, self._out = self._out, []
        return out

    def finish(self) -> tuple[str, list[tuple[str, bytes]]]:
        """Flush the last chunk and close every partial level; returns (root CID, remaining blocks)."""
        assert not self._done, "finish() called twice"
        self._done = True
        if self._buf or self._leaves == 0:
            self._leaf(self._buf)
            self._buf = bytearray()
        depth, cap = 0, 1
        while cap < self._leaves:
            cap *= self.profile.max_links
            depth += 1
        for h in range(depth):
            if self._levels[h]:
                node = self._node(self._levels[h])
                self._levels[h] = []
                self._level(h + 1).append(node)
        top = self._levels[depth]
        assert len(top) == 1 and not any(self._levels[:depth]), "balanced layout invariant"
        return cid_str_from_binary(top[0][0]), self._out

    def _level(self, h: int) -> list[tuple[bytes, int, int]]:
        while len(self._levels) <= h:
            self._levels.append([])
        return self._levels[h]

    def _push(self, h: int, entry: tuple[bytes, int, int]) -> None:
        level = self._level(h)
        level.append(entry)
        if len(level) == self.profile.max_links:
            node = self._node(level)
            self._levels[h] = []
            self._push(h + 1, node)

    def _leaf(self, chunk: bytes | bytearray | memoryview) -> None:
        self._leaves += 1
        n = len(chunk)
        if self.profile.raw_leaves:
            digest = hashlib.sha256(chunk).digest()
            block = (chunk,) if self._views else bytes(chunk) if self._emit else b""
            tsize = n
        else:
            prefix, suffix = self._full_parts if n == self.profile.chunk_size else dagpb.leaf_parts(n)
            h = hashlib.sha256(prefix)
            h.update(chunk)
            h.update(suffix)
            digest = h.digest()
            if self._views:
                block = (prefix, chunk, suffix)
            else:
                block = b"".join((prefix, chunk, suffix)) if self._emit else b""  # one copy
            tsize = len(prefix) + n + len(suffix)
        cid = self._leaf_prefix + b"\x12\x20" + digest
        if self._emit:
            self._out.append((cid_str_from_binary(cid), block))
        self._push(0, (cid, tsize, n))

    def _node(self, children: list[tuple[bytes, int, int]]) -> tuple[bytes, int, int]:
        block = dagpb.internal_node([(c, t) for c, t, _ in children], [f for _, _, f in children])
        cid = self._node_prefix + b"\x12\x20" + hashlib.sha256(block).digest()
        if self._emit:
            self._out.append((cid_str_from_binary(cid), (block,) if self._views else block))
        return cid, len(block) + sum(t for _, t, _ in children), sum(f for _, _, f in children)


def file_cid(
    source: str | os.PathLike | bytes | bytearray | memoryview, profile: ImportProfile | str = "kubo-default"
) -> str:
    """The root CID `ipfs add --only-hash -Q` prints for a file (path) or for bytes; streams files."""
    imp = FileImporter(profile, emit_blocks=False)
    if isinstance(source, (bytes, bytearray, memoryview)):
        imp.update(source)
    else:
        buf = bytearray(_READ_SIZE)
        with open(Path(source), "rb") as f:
            while n := f.readinto(buf):
                imp.update(memoryview(buf)[:n])
    return imp.finish()[0]
