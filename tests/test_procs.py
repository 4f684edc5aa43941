"""paris_node.procs on small stand-in children (no node, no p2pd): events, waits with deadlines, group stops."""

from __future__ import annotations

import os
import sys
import time

import pytest

from paris_node.procs import ProcExited, ProcGroup

# prints a log line on stderr and two events on stdout, then waits for stdin (or SIGTERM) to exit
CHILD = """
import json, sys
print("a log line", file=sys.stderr, flush=True)
print(json.dumps({"event": "ready", "maddrs": ["/ip4/127.0.0.1/tcp/1/p2p/x"]}), flush=True)
print("not an event", flush=True)
print(json.dumps({"event": "published", "job": "expert/0", "step": 10}), flush=True)
sys.stdin.readline()
"""
# a child that leaves a grandchild in its group and ignores SIGTERM itself
STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
g = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print(g.pid, flush=True)
time.sleep(600)
"""


def test_events_and_lines_are_read_with_deadlines(tmp_path):
    with ProcGroup() as group:
        node = group.start("n", [sys.executable, "-c", CHILD], tmp_path / "n.log", merge_stderr=False, stdin=True)
        ev = node.wait_for("published", time.monotonic() + 30, lambda e: e["step"] >= 10)
        assert ev["job"] == "expert/0" and node.info["maddrs"] == ["/ip4/127.0.0.1/tcp/1/p2p/x"]
        assert node.wait_line(r"not an (event)", 1)[1] == "event"  # already-seen lines count
        assert [e["event"] for e in node.history] == ["ready", "published"]
        with pytest.raises(ProcExited, match="no 'claimed' event"):
            node.wait_for("claimed", time.monotonic() + 0.5)
        node.send("bye")
        assert node.proc.wait(10) == 0
        with pytest.raises(ProcExited, match="exited with 0"):
            node.wait_line(r"never printed", 30)  # fails fast once the process is gone, not after 30 s
    assert "a log line" in (tmp_path / "n.log").read_text()  # stderr went to the log, not into the events


def test_stop_sigkills_a_group_that_ignores_sigterm(tmp_path):
    group = ProcGroup()
    node = group.start("s", [sys.executable, "-c", STUBBORN], tmp_path / "s.log")
    grandchild = int(node.wait_line(r"^(\d+)$", 30)[1])
    t0 = time.monotonic()
    assert group.stop(grace=0.5) == ["s"]
    assert time.monotonic() - t0 < 15 and node.proc.returncode is not None
    deadline = time.monotonic() + 10
    while _alive(grandchild):  # killed with the group; polled until reaped by init
        assert time.monotonic() < deadline, f"grandchild {grandchild} outlived its group"
        time.sleep(0.05)
    with pytest.raises(ProcExited, match="exited with code"):
        group.check_alive()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        return os.path.exists(f"/proc/{pid}")
