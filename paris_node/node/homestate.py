"""What a home remembers between commands, and who may write it: `swarm.json`, the node lock, the cache lock.

- `swarm.json`: the swarm this home's node joined or started (its own addresses and the peers it was given)
  and the run it trains; `start` writes it when it is ready, `init` records the run it created. `fetch`,
  `status` and `sample` read it when `--join` / `--run` are not given.
- `node.lock`: held by `start` for the node's whole life (one node per home: one key, one work folder).
- `cache.lock`: held by `fetch` while it installs checkpoints, so two fetches on one home never interleave.

Both locks are POSIX record locks (`fcntl.lockf`): the kernel drops them when their process dies, however it
dies, so a lock of a dead process is simply free (its file still names the old PID: taken over). Unlike
`flock` locks they are not inherited by forked children, so the DHT process hivemind forks never holds them.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from paris_node.errors import ParisError
from paris_node.fsutil import atomic_write
from paris_node.home import Home


class HomeBusy(ParisError):
    """Another process holds this home's lock."""


# ----------------------------------------------------------------------------------------------- locks
class PidLock:
    """An exclusive lock on `path` whose file names the holder's PID. `acquire()` never waits."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def holder(self) -> int | None:
        """The PID written by the last holder (it may be dead: then the lock is free)."""
        try:
            text = self.path.read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def try_acquire(self) -> bool:
        assert self._fd is None, "already held"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.fsync(fd)
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing drops the lock
            self._fd = None

    def __enter__(self) -> PidLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def node_lock(home: Home) -> PidLock:
    """Take the home's node lock or raise HomeBusy naming the PID that holds it."""
    lock = PidLock(home.node_lock)
    if not lock.try_acquire():
        pid = lock.holder()
        who = f"PID {pid}" if pid else "another process"
        raise HomeBusy(
            f"a node is already running on home {home.root} ({who}); stop it first, or give this node its own "
            "--home (a second node needs its own key)"
        )
    return lock


def node_running(home: Home) -> int | None:
    """The PID of the node running on `home`, or None (probes the lock without keeping it)."""
    if not home.node_lock.exists():
        return None
    probe = PidLock(home.node_lock)
    try:
        fd = os.open(home.node_lock, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return probe.holder() or -1
    finally:
        os.close(fd)  # also drops the probe's lock if it got it
    return None


@contextlib.contextmanager
def cache_lock(home: Home, on_wait=None, poll_s: float = 0.2) -> Iterator[None]:
    """Hold the home's cache lock while writing the cache; waits (calling `on_wait(pid)` once) if it is held."""
    lock = PidLock(home.cache_lock)
    told = False
    while not lock.try_acquire():
        if not told and on_wait is not None:
            on_wait(lock.holder())
            told = True
        time.sleep(poll_s)  # polling a lock, not synchronising a test
    try:
        yield
    finally:
        lock.release()


# ----------------------------------------------------------------------------------------------- swarm.json
@dataclass
class SwarmMemory:
    """The content of `<home>/swarm.json`. Unknown keys are ignored (an older or newer node wrote it)."""

    run: str | None = None
    maddrs: list[str] = field(default_factory=list)  # where this home's node listened (valid while it runs)
    peers: list[str] = field(default_factory=list)  # the --join addresses it was given
    pid: int | None = None
    updated_ms: int = 0

    def join(self, node_alive: bool) -> list[str]:
        """Addresses to join through: the node's own while it runs, then the peers it joined."""
        return list(dict.fromkeys([*(self.maddrs if node_alive else []), *self.peers]))


def read_swarm(home: Home) -> SwarmMemory:
    try:
        data = json.loads(home.swarm_file.read_text())
    except (OSError, ValueError):
        return SwarmMemory()
    if not isinstance(data, dict):
        return SwarmMemory()

    def strs(key: str) -> list[str]:
        v = data.get(key)
        return [x for x in v if isinstance(x, str)] if isinstance(v, list) else []

    run = data.get("run") if isinstance(data.get("run"), str) else None
    pid = data.get("pid") if isinstance(data.get("pid"), int) else None
    updated = data.get("updated_ms") if isinstance(data.get("updated_ms"), int) else 0
    return SwarmMemory(run=run, maddrs=strs("maddrs"), peers=strs("peers"), pid=pid, updated_ms=updated)


def write_swarm(home: Home, **changes) -> SwarmMemory:
    """Update `swarm.json` atomically with `changes` (fields of SwarmMemory); returns the new content."""
    mem = read_swarm(home)
    for k, v in changes.items():
        assert hasattr(mem, k), f"unknown swarm.json field {k}"
        setattr(mem, k, list(v) if isinstance(v, tuple) else v)
    mem.updated_ms = int(time.time() * 1000)
    home.ensure()
    atomic_write(home.swarm_file, json.dumps(mem.__dict__, indent=2, sort_keys=True) + "\n")
    return mem
