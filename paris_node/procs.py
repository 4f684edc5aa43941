"""Starting and stopping paris-node processes from scripts and tests (the demo, the benches, the swarm tests).

Not used by the node itself; stdlib only, so a script imports it without the node's dependencies loaded.

`NodeProc` runs a caller-given argv in its own process group (so the DHT process and p2pd die with it); a thread
pumps its stdout line by line into a log file and a queue. Waits read from the queue with a deadline and fail
fast, with the log's tail, once the process has exited. Lines that are JSON objects with an `event` key
(`paris-node start --events json`: ready, claimed, published, ...) are also kept as events. `ProcGroup` stops
every process it started on `stop()` (SIGTERM, a grace period, then SIGKILL of every group) or kills them on
`close()` (or on leaving its `with` block), whatever state each is in.
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

__all__ = ["CLI", "ENV", "MADDR", "REPO", "NodeProc", "ProcExited", "ProcGroup", "cli_node", "stop_group"]

REPO = Path(__file__).resolve().parents[1]
# `paris-node` as a child process of this interpreter (works without the console script on PATH)
CLI = [sys.executable, "-c", "from paris_node.cli import main; main(prog_name='paris-node')"]
ENV = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
MADDR = r"(/ip4/127\.0\.0\.1/tcp/\d+/p2p/12D3KooW\w+)"


class ProcExited(AssertionError):
    """A started process exited (or never printed what was waited for); the message holds its log's tail."""


def stop_group(proc: subprocess.Popen, grace: float = 30.0) -> None:
    """SIGTERM the process, up to `grace` seconds for a clean exit, then SIGKILL its whole group."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    _kill_group(proc)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # start_new_session: the group id is the child's pid
    except OSError:
        pass
    proc.wait(10)


class NodeProc:
    """A child process whose stdout is read line by line (`seen`) and as JSON events (`history`).

    With `merge_stderr` (the CLI with text output, which logs to stderr) both streams go through the pump into
    `log`; without it (`start --events json`, whose stdout is JSON only) stderr is appended to `log` directly, so
    a log line can never split an event line.
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
            raise ProcExited(f"{self.name} exited with {self.proc.returncode}; log tail:\n{self.tail()}") from None

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
        raise ProcExited(f"{self.name}: no line matching {pattern!r} in {timeout}s; log tail:\n{self.tail()}")

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
        raise ProcExited(f"{self.name}: no {name!r} event before the deadline; got {self.history[-5:]}")

    def last(self, name: str) -> dict | None:
        self.poll_lines()
        return next((ev for ev in reversed(self.history) if ev["event"] == name), None)

    def send(self, line: str) -> None:
        """Write one line to the child's stdin (started with `stdin=True`)."""
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def check_alive(self) -> None:
        """Raise ProcExited, with the log's tail, if the process has exited."""
        if self.proc.poll() is not None:
            raise ProcExited(f"{self.name} exited with code {self.proc.returncode}; end of {self.log}:\n{self.tail()}")

    def kill9(self) -> None:
        """SIGKILL the whole group (also its p2pd/DHT children if the node itself is already gone)."""
        _kill_group(self.proc)

    def terminate(self, grace: float = 15.0) -> int | None:
        """SIGTERM, up to `grace` seconds for a clean exit, then SIGKILL the group; the node's own exit code."""
        stop_group(self.proc, grace)
        return self.proc.returncode

    def finish_reading(self, timeout: float = 5.0) -> None:
        """After the process exited: wait (up to `timeout`) for the pump to read its last lines, keep them."""
        self._pump_thread.join(timeout)
        self.poll_lines()


class ProcGroup:
    """Every process started through it is killed (group and all) on `close()`."""

    def __init__(self) -> None:
        self.procs: list[NodeProc] = []

    def start(self, name: str, argv: list[str], log: Path, **kw) -> NodeProc:
        node = NodeProc(name, argv, log, **kw)
        self.procs.append(node)
        return node

    def check_alive(self) -> None:
        """Raise ProcExited for the first process that has exited."""
        for node in self.procs:
            node.check_alive()

    def stop(self, grace: float = 60.0) -> list[str]:
        """SIGTERM every live process at once (each stops its own DHT and p2pd), up to `grace` seconds for all,
        then SIGKILL every group (children a killed node left behind too); the names of those that needed it."""
        alive = [node for node in self.procs if node.proc.poll() is None]
        for node in alive:
            node.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        late = []
        for node in alive:
            try:
                node.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                late.append(node.name)
        self.close()
        for node in self.procs:
            node.finish_reading()
        return late

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
