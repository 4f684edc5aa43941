"""One harness for the child node processes that tests and scripts start (tests/helpers is on the tests' path).

`NodeProc` runs a caller-given argv in its own process group (so p2pd and DHT children die with it); a thread
pumps its stdout line by line into a log file and a queue. Waits read from the queue with a deadline and fail
fast, with the log's tail, once the process has exited. Lines that are JSON objects with an `event` key (the
swarm node's stdout, `paris-node start --json`) are also kept as events. `ProcGroup` kills every process it
started on `close()` (or on leaving its `with` block), whatever state each is in.
"""

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
from collections.abc import Callable
from pathlib import Path

from procs import stop_group

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from paris_node.cli import main; main()"]
ENV = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
MADDR = r"(/ip4/127\.0\.0\.1/tcp/\d+/p2p/12D3KooW\w+)"


class NodeProc:
    """A child process whose stdout is read line by line (`seen`) and as JSON events (`history`).

    With `merge_stderr` (the CLI, which logs to stderr) both streams go through the pump into `log`; without it
    (the swarm node, whose stdout is JSON only) stderr is appended to `log` directly, so a log line can never
    split an event line.
    """

    def __init__(
        self,
        name: str,
        argv: list[str],
        log: Path,
        *,
        env: dict[str, str] | None = None,
        cwd: Path = REPO,
        merge_stderr: bool = True,
        stdin: bool = False,
    ):
        self.name, self.log = name, log
        log.write_text("")
        err = subprocess.STDOUT if merge_stderr else open(log, "ab")  # noqa: SIM115 (the child holds it)
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=ENV if env is None else env,
            text=True,
            stdin=subprocess.PIPE if stdin else None,
            stdout=subprocess.PIPE,
            stderr=err,
            start_new_session=True,
        )
        if not merge_stderr:
            err.close()
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.history: list[dict] = []
        self.info: dict = {}  # the latest `ready` event
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()

    def _pump(self) -> None:
        with open(self.log, "a") as f:
            for line in self.proc.stdout:
                f.write(line)
                f.flush()
                self.lines.put(line)

    def _keep(self, line: str) -> dict | None:
        self.seen.append(line)
        if not line.startswith("{"):
            return None
        try:
            ev = json.loads(line)
        except ValueError:
            return None
        if not isinstance(ev, dict) or "event" not in ev:
            return None
        self.history.append(ev)
        if ev["event"] == "ready":
            self.info = ev
        return ev

    def _next(self, deadline: float) -> str | None:
        """The next line before `deadline`; None on timeout. Raises once the process exited and all is read."""
        try:
            return self.lines.get(timeout=min(0.2, max(0.01, deadline - time.monotonic())))
        except queue.Empty:
            pass
        if self.proc.poll() is None:
            return None
        self._pump_thread.join(1.0)  # its last lines may still be in the pipe
        try:
            return self.lines.get_nowait()
        except queue.Empty:
            raise AssertionError(f"{self.name} exited with {self.proc.returncode}; log tail:\n{self.tail()}") from None

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def poll_lines(self) -> list[str]:
        """Move everything printed so far into `seen`; return the new lines."""
        return [line for line, _ in self._take_all()]

    def _take_all(self) -> list[tuple[str, dict | None]]:
        got = []
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                return got
            got.append((line, self._keep(line)))

    def wait_line(self, pattern: str, timeout: float) -> re.Match:
        """The first line (already seen ones count) matching `pattern` within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        for line in self.seen:
            if m := re.search(pattern, line):
                return m
        while time.monotonic() < deadline:
            line = self._next(deadline)
            if line is None:
                continue
            self._keep(line)
            if m := re.search(pattern, line):
                return m
        raise AssertionError(f"{self.name}: no line matching {pattern!r} in {timeout}s; log tail:\n{self.tail()}")

    def drain(self) -> list[dict]:
        """Events printed so far that were not read yet."""
        return [ev for _, ev in self._take_all() if ev is not None]

    def wait_for(self, name: str, deadline: float, pred: Callable[[dict], bool] = lambda ev: True) -> dict:
        """The first `name` event (already seen ones count) for which `pred` holds, before monotonic `deadline`."""
        for ev in self.history:
            if ev["event"] == name and pred(ev):
                return ev
        while time.monotonic() < deadline:
            line = self._next(deadline)
            if line is None:
                continue
            ev = self._keep(line)
            if ev is not None and ev["event"] == name and pred(ev):
                return ev
        raise AssertionError(f"{self.name}: no {name!r} event before the deadline; got {self.history[-5:]}")

    def last(self, name: str) -> dict | None:
        self.poll_lines()
        return next((ev for ev in reversed(self.history) if ev["event"] == name), None)

    def send(self, line: str) -> None:
        """Write one line to the child's stdin (started with `stdin=True`)."""
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def kill9(self) -> None:
        """SIGKILL the whole group (also its p2pd/DHT children if the node itself is already gone)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)

    def terminate(self, grace: float = 15.0) -> int | None:
        """SIGTERM, up to `grace` seconds for a clean exit, then SIGKILL the group; the node's own exit code."""
        stop_group(self.proc, grace)
        return self.proc.returncode


class ProcGroup:
    """Every process started through it is killed (group and all) on `close()`."""

    def __init__(self) -> None:
        self.procs: list[NodeProc] = []

    def start(self, name: str, argv: list[str], log: Path, **kw) -> NodeProc:
        node = NodeProc(name, argv, log, **kw)
        self.procs.append(node)
        return node

    def close(self) -> None:
        for node in self.procs:
            node.kill9()

    def __enter__(self) -> ProcGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def cli_node(group: ProcGroup, name: str, home: Path, *args: str, env: dict[str, str] | None = None) -> NodeProc:
    """`paris-node --home HOME ARGS...` with merged output logged to NAME.log beside the home."""
    return group.start(name, [*CLI, "--home", str(home), *args], home.parent / f"{name}.log", env=env)
