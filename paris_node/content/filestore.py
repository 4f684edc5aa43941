"""No-copy block references (as Kubo's filestore): a raw block whose bytes lie inside a file installed elsewhere.

A reader installs a chunked checkpoint file into its cache once the file matches the signed manifest; the raw
leaves of the file's DAG need not then be kept a second time in the store. `Blockstore.reference_file(root,
path)` replaces each such leaf's block file by a reference `<shard>/<KEY>.ref`: JSON naming the installed file,
the leaf's offset and size, and the file's identity when the reference was made (device, inode, size, mtime).
Crash safety: every reference is written and made durable (file and folder fsynced) before the block file it
replaces is removed, so a crash leaves a block held twice or once, never not at all.

Reading a referenced block (`Blockstore.get`, hence serving it to peers, exporting or installing it) reads those
bytes and hashes them against the CID every time. Bytes that changed are never read as the block: `get` raises
BlockNotFound (and drops the reference) when they no longer hash to the CID, and `has` is False as soon as the
file's identity differs (one stat, no read), so `missing_blocks`, `verify --repair` and the fetcher get the
block again, from the swarm if need be. `verify(repair=True)` points a reference whose file changed identity
but still holds the bytes at the file as it is now.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from paris_node import fsutil
from paris_node.content import dagpb
from paris_node.content.cidcodec import DAG_PB, MAX_BLOCK_SIZE, RAW, CidInfo, cid_from_bytes, parse_cid, verify_block
from paris_node.content.errors import BlockMismatch, CorruptDag

if TYPE_CHECKING:
    from paris_node.content.blockstore import Blockstore

__all__ = ["REF_SUFFIX", "FileRef", "Leaf", "raw_leaves", "reference_file"]

REF_SUFFIX = ".ref"
_MAX_DEPTH = 32  # as dag.py: far beyond any real file


class Leaf(NamedTuple):
    info: CidInfo
    offset: int
    size: int


@dataclass(frozen=True)
class FileRef:
    """Where a block's bytes lie: `size` bytes at `offset` of the file `path`, as it was when referenced."""

    path: str
    offset: int
    size: int
    dev: int
    ino: int
    file_size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str | os.PathLike, offset: int, size: int) -> FileRef:
        st = os.stat(path)
        return cls(str(Path(path).resolve()), offset, size, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> FileRef:
        """Parse a reference file; ValueError for anything this module did not write."""
        try:
            d = json.loads(data)
            ref = cls(str(d["path"]), *(int(d[k]) for k in ("offset", "size", "dev", "ino", "file_size", "mtime_ns")))
        except (KeyError, TypeError, json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"not a block reference: {e}") from None
        if not (0 <= ref.size <= MAX_BLOCK_SIZE and 0 <= ref.offset and ref.offset + ref.size <= ref.file_size):
            raise ValueError(f"block reference out of range: {ref}")
        return ref

    def current(self) -> bool:
        """Whether the file is still the one referenced (same identity); cheap: one stat, no read."""
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        now = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        return now == (self.dev, self.ino, self.file_size, self.mtime_ns)

    def read(self, info: CidInfo) -> bytes | None:
        """The block's bytes if the file still holds them (hashed against `info` on every read), else None.

        Whatever the file's identity now: the hash decides (a file touched or copied back still serves)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return None
        try:
            data = os.pread(fd, self.size, self.offset)
        finally:
            os.close(fd)
        try:
            verify_block(info, data)
        except BlockMismatch:
            return None
        return data


def raw_leaves(get: Callable[[CidInfo], bytes], size: Callable[[CidInfo], int], root: str) -> list[Leaf]:
    """(leaf, offset in the file, size) of every raw leaf of the UnixFS file DAG at `root`, in file order.

    `get` reads a dag-pb node; a raw leaf's size comes from its parent's blocksizes (the leaf itself need not be
    held), or from `size` for a file that is one raw block. CorruptDag for a DAG that is not a UnixFS file;
    leaves inside dag-pb blocks (the kubo-default profile) are not raw and are not listed.
    """
    out: list[Leaf] = []
    offset = 0
    stack: list[tuple[CidInfo, int, int | None]] = [(parse_cid(root), 0, None)]
    while stack:
        info, depth, known = stack.pop()
        if depth > _MAX_DEPTH:
            raise CorruptDag(f"DAG deeper than {_MAX_DEPTH} levels at {info}")
        if info.codec == RAW:
            n = size(info) if known is None else known
            out.append(Leaf(info, offset, n))
            offset += n
            continue
        if info.codec != DAG_PB:
            raise CorruptDag(f"{info}: codec {info.codec:#x} in a file DAG")
        node = dagpb.decode_pbnode(get(info))
        if node.data is None:
            raise CorruptDag(f"{info}: dag-pb node without UnixFS data (not a file)")
        fs = dagpb.decode_unixfs(node.data)
        if len(fs.blocksizes) != len(node.links):
            raise CorruptDag(f"{info}: {len(node.links)} links but {len(fs.blocksizes)} blocksizes")
        offset += len(fs.data)
        links = zip(node.links, fs.blocksizes, strict=True)
        stack.extend(reversed([(parse_cid(cid_from_bytes(link.cid)), depth + 1, n) for link, n in links]))
    return out


def reference_file(store: Blockstore, root: str, path: str | os.PathLike) -> int:
    """Hold the raw leaves of the file DAG at `root` as references to `path`; returns the bytes of block files
    removed. Called by `Blockstore.reference_file` under the store's lock (never in the middle of a gc).

    Each leaf's bytes in `path` are hashed against its CID first (BlockMismatch, nothing changed, if the file does
    not hold them); every reference is durable before any block file goes. A leaf already referenced to this
    very file, or whose block file is `path` itself (a hard link), is left as it is; a reference to a file since
    replaced (a repair, a reinstall) is pointed at `path`.
    """
    target = Path(path)
    st = target.stat()
    leaves = raw_leaves(lambda i: store.get(str(i)), lambda i: store.size(str(i)), root)
    todo: dict[bytes, tuple[Path, FileRef]] = {}
    for leaf in leaves:
        block = store._path(leaf.info)
        if leaf.info.multihash in todo:
            continue
        try:
            bst = block.stat()
            if (bst.st_dev, bst.st_ino) == (st.st_dev, st.st_ino):
                continue
        except FileNotFoundError:
            old = store._ref(leaf.info)
            if old is not None and old.current() and old.path == str(target.resolve()):
                continue
        ref = FileRef.of(target, leaf.offset, leaf.size)
        if ref.read(leaf.info) is None:
            raise BlockMismatch(f"{target} does not hold block {leaf.info} at offset {leaf.offset}")
        todo[leaf.info.multihash] = (block, ref)
    for block, ref in todo.values():
        fsutil.atomic_write(block.with_suffix(REF_SUFFIX), ref.to_bytes(), sync_dir=False)
    for folder in {block.parent for block, _ in todo.values()}:
        fsutil.fsync_dir(folder)
    freed = 0
    for block, _ in todo.values():
        try:
            freed += block.stat().st_size
            block.unlink()
        except FileNotFoundError:
            continue  # it was a reference already
    return freed
