"""Files in and out of the blockstore: add (streaming import), read back (verifying), walk and find gaps."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

from paris_node.content import dagpb
from paris_node.content.blockstore import Blockstore, atomic_write
from paris_node.content.cid import (
    DAG_PB,
    FileImporter,
    ImportProfile,
    block_links,
    cid_from_bytes,
    parse_cid,
    verify_block,
)
from paris_node.content.errors import BlockNotFound, CorruptDag
from paris_node.errors import UsageError

__all__ = ["add_bytes", "add_file", "check_regular_file", "export_file", "iter_file", "missing_blocks", "walk_dag"]

_READ_SIZE = 4 * 1024 * 1024
_MAX_DEPTH = 32  # far beyond any real file (1024^32 chunks); stops a hostile, self-deepening DAG


def check_regular_file(path: str | os.PathLike) -> Path:
    """`add` takes one regular file: name the path and the fix for anything else."""
    p = Path(path)
    try:
        mode = p.stat().st_mode
    except FileNotFoundError:
        raise UsageError(f"{p}: no such file; pass the path of a regular file to add") from None
    if stat.S_ISDIR(mode):
        raise UsageError(f"{p} is a directory; add its files one by one (directories are not supported)")
    if not stat.S_ISREG(mode):
        raise UsageError(f"{p} is not a regular file (device, pipe or socket); copy it to a file first")
    return p


def add_file(
    store: Blockstore | None, path: str | os.PathLike, profile: ImportProfile | str = "kubo-default", pin: bool = False
) -> str:
    """Import a file as `ipfs add` would and store its blocks (store=None: only compute the CID)."""
    p = check_regular_file(path)
    # block_views: leaves are written straight from the read buffer (no copy), and not hashed a second time.
    imp = FileImporter(profile, emit_blocks=store is not None, block_views=True)
    buf = bytearray(_READ_SIZE)
    with open(p, "rb") as f:
        while n := f.readinto(buf):
            for cid, pieces in imp.update(memoryview(buf)[:n]):
                store.put_local(cid, pieces)
    root, rest = imp.finish()
    for cid, pieces in rest:
        store.put_local(cid, pieces)
    if store is not None:
        store.sync()  # every block durable before its CID is handed out
        if pin:
            store.pin(root)
    return root


def add_bytes(store: Blockstore, data: bytes, profile: ImportProfile | str = "kubo-default", pin: bool = False) -> str:
    imp = FileImporter(profile)
    blocks = imp.update(data)
    root, rest = imp.finish()
    for cid, block in blocks + rest:
        store.put(cid, block)
    store.sync()
    if pin:
        store.pin(root)
    return root


def _get_verified(store: Blockstore, cid: str) -> bytes:
    data = store.get(cid)
    verify_block(cid, data)
    return data


def iter_file(store: Blockstore, cid: str) -> Iterator[bytes]:
    """Yield the file's bytes in order, verifying every block and every size the DAG states."""
    total = 0
    expected = None
    for depth, chunk, filesize in _iter_node(store, cid, 0):
        if depth == 0 and filesize is not None:
            expected = filesize
        if chunk:
            total += len(chunk)
            yield chunk
    if expected is not None and total != expected:
        raise CorruptDag(f"{cid}: DAG states {expected} bytes but its leaves hold {total}")


def _iter_node(store: Blockstore, cid: str, depth: int) -> Iterator[tuple[int, bytes, int | None]]:
    if depth > _MAX_DEPTH:
        raise CorruptDag(f"DAG deeper than {_MAX_DEPTH} levels at {cid}")
    info = parse_cid(cid)
    data = _get_verified(store, cid)
    if info.codec != DAG_PB:
        yield depth, data, len(data) if depth == 0 else None
        return
    node = dagpb.decode_pbnode(data)
    if node.data is None:
        raise CorruptDag(f"{cid}: dag-pb node without UnixFS data (not a file)")
    fs = dagpb.decode_unixfs(node.data)
    if fs.type not in (dagpb.UNIXFS_FILE, dagpb.UNIXFS_RAW):
        raise CorruptDag(f"{cid} is a UnixFS node of type {fs.type}, not a file (directories are not supported)")
    if fs.blocksizes and len(fs.blocksizes) != len(node.links):
        raise CorruptDag(f"{cid}: {len(node.links)} links but {len(fs.blocksizes)} blocksizes")
    yield depth, fs.data, fs.filesize
    for i, link in enumerate(node.links):
        child = cid_from_bytes(link.cid)
        got = 0
        for item in _iter_node(store, child, depth + 1):
            got += len(item[1])
            yield item
        if fs.blocksizes and got != fs.blocksizes[i]:
            raise CorruptDag(f"{cid}: child {child} holds {got} bytes, the parent says {fs.blocksizes[i]}")


def export_file(store: Blockstore, cid: str, out_path: str | os.PathLike) -> int:
    """Write the file to `out_path` atomically (complete and verified, or not at all); returns its size."""
    out = Path(out_path)
    if out.is_dir():
        raise UsageError(f"{out} is a directory; pass a file path to -o")
    out.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(out, iter_file(store, cid))


def walk_dag(store: Blockstore, root: str) -> Iterator[str]:
    """Every CID of the DAG in depth-first pre-order (duplicates included); BlockNotFound if one is absent."""
    stack = [root]
    while stack:
        cid = stack.pop()
        yield cid
        if parse_cid(cid).codec == DAG_PB:
            stack.extend(reversed(block_links(cid, store.get(cid))))


def missing_blocks(store: Blockstore, root: str) -> list[str]:
    """CIDs needed next to complete the DAG: absent blocks whose parents are present (root first if absent)."""
    missing: list[str] = []
    seen: set[bytes] = set()
    stack = [root]
    while stack:
        cid = stack.pop()
        info = parse_cid(cid)
        if info.multihash in seen:
            continue
        seen.add(info.multihash)
        if not store.has(cid):
            missing.append(cid)
            continue
        if info.codec == DAG_PB:
            try:
                stack.extend(reversed(block_links(info, store.get(cid))))
            except BlockNotFound:
                missing.append(cid)
    return missing
