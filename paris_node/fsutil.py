"""Atomic files and folders: the one place that knows how to make a write appear whole or not at all.

Ground floor: imports nothing from the package, so every layer (content, data, training, node) can use it.

- `atomic_write(path, data)`: the bytes go to a temporary sibling (same folder, so the rename cannot cross file
  systems), are fsynced, renamed over `path`, and the folder is fsynced so the new name survives a crash.
  `data` is bytes, text, an iterable of chunks, or a writer `fn(tmp_path)` for libraries that write by path
  (safetensors' `save_file`, PIL). On any failure the temporary file is removed and `path` is untouched.
- `atomic_replace_dir(tmp_dir, final_dir)`: swaps a fully written folder into place. POSIX cannot rename a
  folder over a non-empty one, so the old folder is first renamed aside, the new one renamed in, and only then
  is the old one deleted: `final_dir` is never half-written and never a mix of old and new files. Between the
  two renames (microseconds) the name is briefly absent; a crash there leaves the complete old folder under a
  hidden `.NAME.old-*` sibling, which `recover_dir` puts back.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_replace_dir",
    "atomic_write",
    "fsync_dir",
    "fsync_tree",
    "recover_dir",
    "staging_dir",
    "tree_bytes",
    "write_fd",
]

Data = bytes | bytearray | memoryview | str | Iterable[bytes | bytearray | memoryview] | Callable[[Path], Any]


def fsync_dir(path: str | os.PathLike) -> None:
    """Make the entries of folder `path` (renames, new files) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: str | os.PathLike) -> None:
    """fsync every file below `path` and every folder (deepest first): before a rename makes them visible."""
    root = Path(path)
    for dirpath, _dirs, files in os.walk(root, topdown=False):
        for name in files:
            _fsync_file(Path(dirpath) / name)
        fsync_dir(dirpath)


def tree_bytes(*roots: str | os.PathLike) -> int:
    """Bytes of the files under `roots`, each inode once (hard links are one copy on disk)."""
    seen, total = set(), 0
    for root in roots:
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                st = os.stat(os.path.join(dirpath, name))
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_size
    return total


def _fill(fd: int, tmp: Path, data: Data) -> int:
    """Write `data` into the open temp file `fd` (closing it); returns the bytes written."""
    if callable(data):
        os.close(fd)  # the writer opens the path itself
        data(tmp)
        _fsync_file(tmp)
        return tmp.stat().st_size
    if isinstance(data, str):
        data = data.encode()
    return write_fd(fd, [data] if isinstance(data, (bytes, bytearray, memoryview)) else data)


def write_fd(fd: int, chunks: Iterable[bytes | bytearray | memoryview]) -> int:
    """Write every chunk to the open file `fd` (short writes retried), fsync and close it; returns the bytes."""
    total = 0
    try:
        for chunk in chunks:
            mv = memoryview(chunk).cast("B")
            while len(mv):
                n = os.write(fd, mv)
                mv = mv[n:]
                total += n
        os.fsync(fd)
    finally:
        os.close(fd)
    return total


def atomic_write(
    path: str | os.PathLike, data: Data, *, mode: int | None = None, exclusive: bool = False, sync_dir: bool = True
) -> int:
    """Write `data` to `path` atomically; returns the bytes written.

    `mode` sets the permissions before the file becomes visible (e.g. 0o600 for a private key). `exclusive`
    never replaces an existing `path`: the file is linked into place and FileExistsError raised if another
    writer got there first (their file is kept). `sync_dir=False` leaves the folder fsync to the caller (a
    store batching many renames); the bytes themselves are always fsynced.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        total = _fill(fd, tmp, data)
        if exclusive:
            os.link(tmp, path)
            tmp.unlink()
        else:
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    if sync_dir:
        fsync_dir(path.parent)
    return total


def staging_dir(final_dir: str | os.PathLike) -> Path:
    """A fresh hidden folder beside `final_dir` to write into before `atomic_replace_dir` (same file system)."""
    final = Path(final_dir)
    final.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))


def atomic_replace_dir(tmp_dir: str | os.PathLike, final_dir: str | os.PathLike, *, sync: bool = True) -> Path:
    """Move the complete folder `tmp_dir` to `final_dir`, replacing any old one atomically (see module doc).

    Both must be on the same file system (use `staging_dir`). With `sync`, every file in `tmp_dir` is fsynced
    before the swap and the parent folder after it. If the second rename fails the old folder is put back.
    """
    tmp, final = Path(tmp_dir), Path(final_dir)
    if sync:
        fsync_tree(tmp)
    old: Path | None = None
    if final.exists() or final.is_symlink():
        old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(final, old)
    try:
        os.replace(tmp, final)
    except BaseException:
        if old is not None:
            os.replace(old, final)  # put the old folder back: the caller still sees it whole
        raise
    if sync:
        fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return final


def recover_dir(final_dir: str | os.PathLike) -> Path | None:
    """After a crash mid-swap: if `final_dir` is missing but an old copy was set aside, put it back; else clean.

    Returns the folder now at `final_dir` (None if there is none). Leftover old copies beside an existing
    `final_dir` are deleted (the swap had finished).
    """
    final = Path(final_dir)
    if not final.parent.is_dir():
        return None
    olds = sorted(final.parent.glob(f".{final.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if not final.exists() and olds:
        os.replace(olds.pop(), final)
    for old in olds:
        shutil.rmtree(old, ignore_errors=True)
    return final if final.exists() else None
