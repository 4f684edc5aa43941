"""`paris-node start` / `status` end to end: join command, status table, clean exit frees the lease at once."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
from swarm_harness import REPO

pytestmark = [pytest.mark.swarm, pytest.mark.timeout(150)]
CLI = [sys.executable, "-c", "from paris_node.cli import main; main()"]


class Cli:
    def __init__(self, home, *args):
        env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
        self.proc = subprocess.Popen(
            [*CLI, "--home", str(home), "start", *args],
            cwd=REPO,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.lines: queue.Queue = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=lambda: [self.lines.put(x) for x in self.proc.stdout], daemon=True).start()

    def wait_line(self, pattern: str, timeout: float) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            self.seen.append(line)
            if re.search(pattern, line):
                return line
        raise AssertionError(f"no line matching {pattern!r}; got {self.seen}")

    def kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def status_json(maddr: str) -> dict:
    out = subprocess.run(
        [*CLI, "status", "--run", "cli", "--experts", "1", "--join", maddr, "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def test_start_prints_join_command_status_shows_owner_and_sigint_releases(tmp_path):
    common = ["--run", "cli", "--experts", "1", "--claim", "0", "--lease-ttl", "30", "--settle", "1"]
    a = Cli(tmp_path / "a", *common)
    b = None
    try:
        maddr = a.wait_line(r"^\s+/ip4/127\.0\.0\.1/tcp/\d+/p2p/12D3KooW", 60).strip()
        join = a.wait_line(r"paris-node start --join", 5)
        assert maddr in join and "--run cli" in join
        a.wait_line(r"owner of expert/0", 30)
        b = Cli(tmp_path / "b", *common, "--join", maddr)
        b.wait_line(r"standby", 60)
        report = status_json(maddr)
        row = {r["job"]: r for r in report["jobs"]}["expert/0"]
        assert row["state"] == "active" and row["owner"].startswith("z6Mk")
        assert len(report["standbys"]) == 1
        a.proc.send_signal(signal.SIGINT)
        stopped_at = time.monotonic()
        assert a.proc.wait(20) == 0
        a.wait_line(r"released and stopped", 5)
        b.wait_line(r"owner of expert/0", 20)
        # released, not expired: the successor did not wait for the 30 s TTL
        assert time.monotonic() - stopped_at < 20
    finally:
        a.kill()
        if b is not None:
            b.kill()
