"""On-disk blockstore: one file per block, keyed by multihash, with recursive pins and garbage collection.

Blocks live at `<root>/<shard>/<KEY>.data` where KEY is the base32 multihash (so the v0 and v1 CIDs of one
block share a file) and shard is the next-to-last two characters of KEY, the same layout as Kubo's flatfs.
Every write goes to a temp file in the same directory, is fsynced and renamed into place: a crash never
leaves a visible partial block, and a full disk raises StoreFull with nothing left behind.

Concurrency: puts write and fsync their temp files in parallel (that is where their time goes); only the
rename into place takes the store lock, which gc holds for its whole run, so a block appears either before
gc looks (and is judged by the pins like any other) or after gc ends (and is kept). gc removes a temp file
only when no put of this process is writing it and it is older than STALE_TMP_S (another process's put).
Durability: a visible block's bytes are always on disk; its directory entry is on disk once `sync()` has run
(fetch_dag and add_file call it before they return), so a crash before that may lose, never corrupt, a block.

A raw leaf of a file installed elsewhere (a checkpoint in the cache) may be held as a reference `<KEY>.ref`
instead of a copy (`reference_file`, see filestore.py): read and hashed against its CID on every `get`.
"""

from __future__ import annotations

import base64
import errno
import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from paris_node import fsutil
from paris_node.content.cid import DAG_PB, IDENTITY, RAW, CidInfo, block_links, parse_cid, verify_block
from paris_node.content.errors import BlockMismatch, BlockNotFound, BlockTooLarge, CorruptDag, StoreFull
from paris_node.content.filestore import REF_SUFFIX, FileRef, reference_file

__all__ = ["Blockstore", "atomic_write"]

_PINS_FILE = "pins.json"
STALE_TMP_S = 600.0  # gc leaves younger temp files alone: another process may be writing them


def atomic_write(path: Path, chunks: Iterable[bytes | memoryview], *, sync_dir: bool = True) -> int:
    """`fsutil.atomic_write` of chunks (returns bytes written) with a full disk reported as StoreFull."""
    try:
        return fsutil.atomic_write(path, chunks, sync_dir=sync_dir)
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise StoreFull(f"disk full while writing {path}: free some space (try `paris-node gc`) and retry") from e
        raise


def _write_and_replace(
    fd: int, tmp: str, path: Path, chunks: Iterable[bytes | memoryview], replace: Callable[[str, Path], None]
) -> int:
    """A block put: fill the open temp file `fd`, fsync, then `replace(tmp, path)` (under the store lock).

    Not `fsutil.atomic_write`: the temp name is registered for gc before the file exists, and the folder fsync
    is batched by `Blockstore.sync()` instead of paid per block.
    """
    try:
        total = fsutil.write_fd(fd, chunks)
        replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            raise StoreFull(f"disk full while writing {path}: free some space (try `paris-node gc`) and retry") from e
        raise
    return total


def _cid_of(p: Path) -> str | None:
    """The CID (v1, raw) a block file or reference stands for, from its name (None: not one of ours)."""
    try:
        mh = base64.b32decode(p.stem + "=" * (-len(p.stem) % 8))
        return str(CidInfo(1, RAW, mh[0], mh[2:]))
    except Exception:
        return None


class Blockstore:
    """Verified block storage under one folder. Safe to use from several threads of one process."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()  # serialises renames into place, pin-file updates and gc
        self._tmp_lock = threading.Lock()  # guards the two sets below (held only for set operations)
        self._writing: set[str] = set()  # names of temp files that puts of this process are writing
        self._unsynced: dict[Path, int] = {}  # shard folder -> renames into it not yet fsynced (see sync())

    # --- blocks ---------------------------------------------------------------------------------------------

    @staticmethod
    def _key(info: CidInfo) -> str:
        return base64.b32encode(info.multihash).decode().rstrip("=")

    def _path(self, cid: str | CidInfo) -> Path:
        info = parse_cid(cid) if isinstance(cid, str) else cid
        key = self._key(info)
        return self.root / key[-3:-1] / f"{key}.data"

    def _ref_path(self, info: CidInfo) -> Path:
        return self._path(info).with_suffix(REF_SUFFIX)

    def _ref(self, info: CidInfo) -> FileRef | None:
        try:
            return FileRef.from_bytes(self._ref_path(info).read_bytes())
        except (FileNotFoundError, ValueError):
            return None

    def _read_ref(self, info: CidInfo) -> bytes | None:
        """A referenced block's bytes, verified; a reference whose file no longer holds them is dropped."""
        ref = self._ref(info)
        if ref is None:
            return None
        data = ref.read(info)
        if data is None:
            self._ref_path(info).unlink(missing_ok=True)
        return data

    def put(self, cid: str, data: bytes | memoryview) -> None:
        """Store a block after checking its hash (BlockMismatch, nothing written, if it does not match)."""
        info = parse_cid(cid)
        verify_block(info, data)
        self._store(info, [data])

    def put_local(self, cid: str, pieces: Sequence[bytes | memoryview]) -> None:
        """Store a block given as pieces, WITHOUT re-hashing: only for blocks whose hash this process has just
        computed itself over these very bytes (the importer in dag.add_file; fetch_dag right after verifying
        a block it received). Anything else, above all bytes from a peer not yet verified, goes through put()."""
        self._store(parse_cid(cid), pieces)

    def _store(self, info: CidInfo, pieces: Sequence[bytes | memoryview]) -> None:
        path = self._path(info)
        if info.mh_code == IDENTITY or path.exists():
            return
        path.parent.mkdir(exist_ok=True)
        # Our own temp name, registered before the file exists, so gc can never see it unregistered.
        tmp = str(path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp")
        with self._tmp_lock:
            self._writing.add(tmp)
        try:
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except OSError as e:
                if e.errno == errno.ENOSPC:
                    raise StoreFull(f"disk full in {self.root}: free space (try `paris-node gc`) and retry") from e
                raise
            _write_and_replace(fd, tmp, path, pieces, self._rename_into_place)  # write + fsync outside the lock
        finally:
            with self._tmp_lock:
                self._writing.discard(tmp)

    def _rename_into_place(self, tmp: str, path: Path) -> None:
        with self._lock:  # never in the middle of a gc
            os.replace(tmp, path)
        with self._tmp_lock:
            self._unsynced[path.parent] = self._unsynced.get(path.parent, 0) + 1

    def sync(self) -> None:
        """Make every block renamed into place so far durable (fsync of their folders' entries).

        Safe to call from several threads at once; a folder leaves the to-do list only after an fsync that began
        after its last rename, so a sync() that returns has covered every rename that finished before it was called.
        """
        with self._tmp_lock:
            todo = dict(self._unsynced)
        for folder, renames in todo.items():
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            with self._tmp_lock:
                if self._unsynced.get(folder) == renames:  # else a rename came in meanwhile: the next sync
                    del self._unsynced[folder]

    def get(self, cid: str) -> bytes:
        info = parse_cid(cid)
        if info.mh_code == IDENTITY:  # the bytes are inside the CID (e.g. the gateway probe bafkqaaa)
            return info.digest
        try:
            return self._path(info).read_bytes()
        except FileNotFoundError:
            data = self._read_ref(info)
        if data is None:
            raise BlockNotFound(f"block {cid} is not in the local store") from None
        return data

    def block_file(self, cid: str) -> Path | None:
        """The file holding a block's bytes (None if absent): a raw block that is a whole file can be hard-linked
        from it. Read-only use: writing to it would corrupt the store."""
        path = self._path(cid)
        return path if path.is_file() else None

    def verify(self, repair: bool = False) -> list[str]:
        """Re-hash every stored block; returns the CIDs (raw, v1) of those whose bytes no longer match.

        With `repair`, those blocks are deleted, so the next fetch of a DAG that needs them gets them again
        (their pins stay; `missing_blocks` names them).
        """
        bad = []
        for p in self._files():
            cid = _cid_of(p)
            if cid is None:
                continue
            if p.suffix == REF_SUFFIX:  # a reference: its file must still hold the bytes
                ref = self._ref(parse_cid(cid))
                if ref is None or ref.read(parse_cid(cid)) is None:
                    bad.append(cid)
                    if repair:
                        p.unlink(missing_ok=True)
                elif repair and not ref.current():  # touched, bytes intact: refer to the file as it is now
                    atomic_write(p, [FileRef.of(ref.path, ref.offset, ref.size).to_bytes()])
                continue
            try:
                verify_block(cid, p.read_bytes())
            except FileNotFoundError:
                continue  # removed meanwhile (gc)
            except (BlockMismatch, BlockTooLarge):
                bad.append(cid)
                if repair:
                    p.unlink(missing_ok=True)
        return bad

    def has(self, cid: str) -> bool:
        """Whether the block is held: its own file, or a reference to a file that is still the one referenced
        (one stat; its bytes are checked when read)."""
        info = parse_cid(cid)
        if info.mh_code == IDENTITY or self._path(info).is_file():
            return True
        ref = self._ref(info)
        return ref is not None and ref.current()

    def delete(self, cid: str) -> None:
        info = parse_cid(cid)
        self._path(info).unlink(missing_ok=True)
        self._ref_path(info).unlink(missing_ok=True)

    def size(self, cid: str) -> int:
        info = parse_cid(cid)
        try:
            return self._path(info).stat().st_size
        except FileNotFoundError:
            ref = self._ref(info)
        if ref is None:
            raise BlockNotFound(f"block {cid} is not in the local store") from None
        return ref.size

    def _files(self) -> Iterator[Path]:
        """Block files and references (a crash in `reference_file` may leave both for one block)."""
        for shard in sorted(self.root.iterdir()):
            if shard.is_dir() and len(shard.name) == 2:
                yield from (
                    p
                    for p in sorted(shard.iterdir())
                    if p.suffix in (".data", REF_SUFFIX) and not p.name.startswith(".")
                )

    def cids(self) -> Iterator[str]:
        """Every stored block as a CIDv1 with codec raw (the store keeps multihashes only, as Kubo does)."""
        seen: set[str] = set()
        for p in self._files():
            cid = _cid_of(p)
            if cid is not None and cid not in seen:
                seen.add(cid)
                yield cid

    def stat(self) -> dict:
        """Size report: number of blocks, the bytes of their own files, and the bytes held as references."""
        blocks = total = referenced = 0
        for p in self._files():
            blocks += 1
            if p.suffix == REF_SUFFIX:
                cid = _cid_of(p)
                ref = None if cid is None else self._ref(parse_cid(cid))
                referenced += ref.size if ref is not None else 0
            else:
                total += p.stat().st_size
        return {"blocks": blocks, "bytes": total, "referenced_bytes": referenced}

    # --- no-copy references ---------------------------------------------------------------------------------

    def reference_file(self, root: str, path: str | os.PathLike) -> int:
        """`path` holds the file of the DAG at `root` (installed and checked): keep its raw leaves as references
        to `path` instead of copies; returns the bytes of block files removed (see `filestore.reference_file`)."""
        with self._lock:  # never in the middle of a gc
            return reference_file(self, root, path)

    # --- pins and gc ----------------------------------------------------------------------------------------

    def pins(self) -> list[str]:
        """Recursively pinned roots, sorted."""
        try:
            data = json.loads((self.root / _PINS_FILE).read_text())
        except FileNotFoundError:
            return []
        return sorted(data.get("recursive", []))

    def _write_pins(self, pins: Iterable[str]) -> None:
        body = json.dumps({"recursive": sorted(set(pins))}, indent=1).encode()
        atomic_write(self.root / _PINS_FILE, [body])

    def pin(self, root_cid: str) -> None:
        """Keep `root_cid` and everything below it through gc (the blocks need not be present yet)."""
        parse_cid(root_cid)
        with self._lock:
            self._write_pins([*self.pins(), root_cid])

    def unpin(self, root_cid: str) -> None:
        """Drop a pin; a CID that is not pinned raises KeyError. Blocks go at the next gc."""
        with self._lock:
            pins = self.pins()
            if root_cid not in pins:
                raise BlockNotFound(f"{root_cid} is not pinned")
            pins.remove(root_cid)
            self._write_pins(pins)

    def _reachable(self, roots: Iterable[str]) -> set[str]:
        keep: set[str] = set()
        stack = [parse_cid(c) for c in roots]
        while stack:
            info = stack.pop()
            key = self._key(info)
            if key in keep:
                continue
            keep.add(key)
            if info.codec != DAG_PB:
                continue
            try:
                data = self._path(info).read_bytes()
                stack.extend(parse_cid(c) for c in block_links(info, data))
            except (FileNotFoundError, CorruptDag, ValueError):
                continue  # incomplete or broken DAG: keep what is reachable among what is present
        return keep

    def gc(self) -> tuple[int, int]:
        """Delete every block not reachable from a pin; returns (removed blocks, freed bytes)."""
        with self._lock:
            keep = self._reachable(self.pins())
            removed = freed = 0
            for p in list(self._files()):
                if p.stem not in keep:
                    size = p.stat().st_size
                    p.unlink(missing_ok=True)
                    removed += 1
                    freed += size
            self._remove_stale_temp_files()
            return removed, freed

    def _remove_stale_temp_files(self) -> None:
        """Leftovers of a crash mid-write. Not a put in progress: not ours (registered) nor recent (another's)."""
        cutoff = time.time() - STALE_TMP_S
        for shard in self.root.iterdir():
            if not shard.is_dir():
                continue
            for tmp in shard.glob(".*.tmp"):
                with self._tmp_lock:
                    busy = str(tmp) in self._writing
                try:
                    if not busy and tmp.stat().st_mtime < cutoff:
                        tmp.unlink(missing_ok=True)
                except FileNotFoundError:
                    continue  # renamed into place or cleaned up meanwhile
