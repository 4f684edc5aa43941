"""fsutil: atomic files and folder swaps (whole or not at all, nothing left behind)."""

from __future__ import annotations

import os
import stat

import pytest

from paris_node import fsutil
from paris_node.fsutil import atomic_replace_dir, atomic_write, recover_dir, staging_dir


@pytest.mark.parametrize(
    "data",
    [b"bytes", "text", [b"ch", memoryview(b"un"), bytearray(b"ks")], lambda p: p.write_bytes(b"by a writer")],
)
def test_every_kind_of_data_lands_whole_and_replaces(tmp_path, data):
    path = tmp_path / "sub" / "f"
    atomic_write(path, b"old")
    n = atomic_write(path, data)
    assert path.stat().st_size == n > 0 and path.read_bytes() != b"old"
    assert [p.name for p in path.parent.iterdir()] == ["f"]


def test_a_failing_writer_leaves_the_old_file_and_no_temp(tmp_path):
    path = tmp_path / "f"
    atomic_write(path, b"old")

    def chunks():
        yield b"new"
        raise OSError("disk went away")

    with pytest.raises(OSError, match="disk went away"):
        atomic_write(path, chunks())
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["f"]


def test_mode_and_exclusive(tmp_path):
    path = tmp_path / "key"
    atomic_write(path, b"first", mode=0o600, exclusive=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(FileExistsError):
        atomic_write(path, b"second", exclusive=True)
    assert path.read_bytes() == b"first" and [p.name for p in tmp_path.iterdir()] == ["key"]


def _folder(root, name: str, files: dict[str, bytes]):
    d = staging_dir(root / name)
    for k, v in files.items():
        (d / k).write_bytes(v)
    return d


def test_a_folder_swap_replaces_the_old_folder_and_leaves_nothing_else(tmp_path):
    final = tmp_path / "ckpt"
    atomic_replace_dir(_folder(tmp_path, "ckpt", {"a": b"1", "old-only": b"x"}), final)
    atomic_replace_dir(_folder(tmp_path, "ckpt", {"a": b"2"}), final)
    assert {p.name: p.read_bytes() for p in final.iterdir()} == {"a": b"2"}  # never a mix of old and new
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]


def test_a_failed_swap_puts_the_old_folder_back(tmp_path, monkeypatch):
    final = tmp_path / "ckpt"
    atomic_replace_dir(_folder(tmp_path, "ckpt", {"a": b"old"}), final)
    new = _folder(tmp_path, "ckpt", {"a": b"new"})
    real = os.replace
    calls = []

    def flaky(src, dst):
        calls.append(src)
        if len(calls) == 2:  # the rename of the new folder into place
            raise OSError("interrupted")
        real(src, dst)

    monkeypatch.setattr(fsutil.os, "replace", flaky)
    with pytest.raises(OSError, match="interrupted"):
        atomic_replace_dir(new, final)
    monkeypatch.setattr(fsutil.os, "replace", real)
    assert (final / "a").read_bytes() == b"old"


def test_a_crash_between_the_renames_is_recovered(tmp_path):
    final = tmp_path / "ckpt"
    atomic_replace_dir(_folder(tmp_path, "ckpt", {"a": b"old"}), final)
    os.replace(final, tmp_path / ".ckpt.old-deadbeef")  # the state a crash after the first rename leaves
    assert recover_dir(final) == final and (final / "a").read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]
