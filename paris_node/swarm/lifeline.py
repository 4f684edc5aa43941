"""Children die with their node: the DHT process hivemind forks, and the p2pd daemon that process starts.

hivemind forks its DHT into a child process, which starts p2pd (a Go binary) as its own child. If the node's
main process dies without a clean shutdown (`kill -9`, OOM), both would live on as orphans holding sockets and
memory. `install(dht)` starts a watchdog thread *inside* the DHT process (through hivemind's public
`run_coroutine`): when its parent is gone (its parent PID changes: it was re-parented) it kills its p2pd and
exits. `reap()` in the main process kills a p2pd left behind by a DHT process that itself had to be killed.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

import hivemind

logger = logging.getLogger(__name__)

POLL_S = 0.25  # an orphan lingers at most this long


def _p2pd_pid(node) -> int | None:
    child = getattr(getattr(node, "p2p", None), "_child", None)  # hivemind's P2P keeps its daemon here
    return getattr(child, "pid", None)


def _watch(parent_pid: int, p2pd_pid: int | None, poll_s: float) -> None:
    while os.getppid() == parent_pid:
        time.sleep(poll_s)  # a liveness poll: nothing to wake us when the parent dies
    if p2pd_pid is not None:
        try:
            os.kill(p2pd_pid, signal.SIGKILL)
        except OSError:
            pass
    os._exit(1)


class _Install:
    """Runs inside the DHT process (a module-level callable, so hivemind can pickle it)."""

    def __init__(self, parent_pid: int, poll_s: float):
        self.parent_pid, self.poll_s = parent_pid, poll_s

    async def __call__(self, _dht, node) -> int | None:
        pid = _p2pd_pid(node)
        threading.Thread(
            target=_watch, args=(self.parent_pid, pid, self.poll_s), name="paris-lifeline", daemon=True
        ).start()
        return pid


def _is_p2pd(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"p2pd" in f.read().split(b"\0", 1)[0]
    except OSError:
        return False


class Lifeline:
    """The node side: `install` right after the DHT starts (before other threads use it), `reap` after it stops."""

    def __init__(self) -> None:
        self.p2pd_pid: int | None = None

    def install(self, dht: hivemind.DHT, poll_s: float = POLL_S, timeout: float = 10.0) -> Lifeline:
        try:
            self.p2pd_pid = dht.run_coroutine(_Install(os.getpid(), poll_s), return_future=True).result(timeout)
        except Exception as e:  # the node still works; only the orphan guarantee is lost
            logger.warning("could not install the DHT watchdog (%s: %s)", type(e).__name__, e)
        return self

    def reap(self) -> None:
        """Kill our p2pd if it outlived the DHT process (a DHT process killed while stuck leaves it behind)."""
        pid, self.p2pd_pid = self.p2pd_pid, None
        if pid is None or not _is_p2pd(pid):
            return
        try:
            os.kill(pid, signal.SIGKILL)
            logger.debug("killed p2pd %d left behind by the DHT process", pid)
        except OSError:
            pass
