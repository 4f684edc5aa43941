"""The README's four commands, exactly as printed, on a throwaway home (PARIS_NODE_HOME) with a tiny run:
first in a second terminal on the node's own home, then from a fresh home given only --join. And a node's
processes (its DHT process and p2pd) die with it, however it dies."""

from __future__ import annotations

import json
import re
import shlex
import signal

import psutil
import pytest
from cli_helpers import REPO, run_cli, spawn_cli, stop_group, tiny_run, wait_for
from click.testing import CliRunner

from paris_node.cli import main

pytestmark = [pytest.mark.swarm, pytest.mark.timeout(420)]
# what `init` needs for a run that trains in seconds (the README's commands then run unchanged)
TINY_INIT = "--dataset shapes:64 --experts 1 --preset tiny --steps 20 --batch 8 --lr 0.003 --ema 0"
TINY_INIT += " --publish-every-steps 10 --val-loss-threshold 10"


def readme_commands() -> list[list[str]]:
    text = (REPO / "README.md").read_text()
    block = re.search(r"## The four commands\s+```\n(.*?)```", text, re.S)[1]
    cmds = [shlex.split(line.split("#", 1)[0]) for line in block.splitlines() if line.strip()]
    assert [c[:2] for c in cmds] == [["paris-node", "start"], ["paris-node", "fetch"], ["paris-node", "sample"],
                                     ["paris-node", "status"]]  # fmt: skip
    return [c[1:] for c in cmds]


def log_text(path) -> str:
    return path.read_text() if path.exists() else ""


def fetch_until_ok(args, home, cwd, timeout: float = 150.0):
    """`fetch` is retried until the node has published (polling with a deadline)."""
    last = {}

    def attempt():
        res = run_cli(args, home, cwd, timeout=120)
        last["res"] = res
        return res if res.returncode == 0 else None

    try:
        return wait_for(attempt, timeout, "a fetch that finds a published checkpoint", poll=1.0)
    except AssertionError:
        res = last.get("res")
        raise AssertionError(f"fetch never succeeded; last: {res and (res.stdout + res.stderr)[-3000:]}") from None


def json_events(log, name: str) -> list[dict]:
    """`start --events json` lines (stdout) of one kind; log lines (stderr) are skipped."""
    out = []
    for line in log_text(log).splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event["event"] == name:
                out.append(event)
    return out


@pytest.mark.slow
@pytest.mark.timeout(600)  # ~300 s on a loaded 2-core machine: two nodes, three fetches, two samples, two stops
def test_the_four_commands_as_printed(tmp_path):
    start, fetch, sample, status = readme_commands()
    home = tmp_path / "home"
    made = CliRunner().invoke(main, ["--home", str(home), "init", *TINY_INIT.split()])
    assert made.exit_code == 0, made.output
    run_id = made.stdout.strip().splitlines()[-1]

    node = spawn_cli(start, home, tmp_path, tmp_path / "node.log")
    fresh_node = None
    try:
        wait_for(lambda: "owner of expert/0" in log_text(tmp_path / "node.log"), 120, "the node to claim expert/0")
        maddr = re.search(r"^  (/ip4/\S+/p2p/\S+)$", log_text(tmp_path / "node.log"), re.M)[1]
        assert run_id in log_text(tmp_path / "node.log")  # it trains the home's run, not the demo

        # a second terminal, same home: no --join, no --run (the home remembers both)
        got = fetch_until_ok(fetch, home, tmp_path)
        assert "expert/0" in got.stdout and " ok" in got.stdout, got.stdout
        assert f"using run: {run_id}" in got.stderr and "swarm.json" in got.stderr
        drew = run_cli(sample, home, tmp_path)
        assert drew.returncode == 0, drew.stderr[-3000:]
        assert (tmp_path / "sample.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "50 steps" in drew.stderr  # the stated default is the one used
        shown = run_cli(status, home, tmp_path)
        assert shown.returncode == 0, shown.stderr[-3000:]
        assert run_id in shown.stdout and "expert/0" in shown.stdout and "checkpoint_age_s" in shown.stdout

        # a fresh home given only --join learns the run from the swarm
        other, cwd2 = tmp_path / "fresh", tmp_path / "terminal2"
        cwd2.mkdir()
        got2 = fetch_until_ok([*fetch, "--join", maddr], other, cwd2)
        assert f"using run: {run_id}" in got2.stderr and "the only run the swarm trains" in got2.stderr
        drew2 = run_cli(sample, other, cwd2)
        assert drew2.returncode == 0 and (cwd2 / "sample.png").exists(), drew2.stderr[-3000:]
        shown2 = run_cli([*status, "--join", maddr], other, cwd2)
        assert shown2.returncode == 0 and run_id in shown2.stdout, shown2.stderr[-3000:]
        # a corrupted safetensors header in the cache: one line, no traceback, no image
        weights = next((other / "cache" / run_id / "expert-0").glob("*.safetensors"))
        weights.write_bytes(b"\xff" * 8 + weights.read_bytes()[8:])
        bad = run_cli([*sample, "--out", "bad.png"], other, cwd2)
        lines = [ln for ln in bad.stderr.splitlines() if ln.startswith("error: ")]
        assert bad.returncode in (1, 2) and len(lines) == 1 and "Traceback" not in bad.stderr, bad.stderr[-3000:]
        assert "expert-0" in lines[0] and not (cwd2 / "bad.png").exists()
        fresh_node = spawn_cli([*start, "--join", maddr], tmp_path / "fresh-node", cwd2, tmp_path / "fresh.log")
        wait_for(lambda: "standby" in log_text(tmp_path / "fresh.log"), 120, "the fresh node to stand by")
        assert f"run {run_id}" in log_text(tmp_path / "fresh.log")
    finally:
        for proc in (fresh_node, node):
            if proc is not None:
                stop_group(proc, grace=120)  # a sole holder waits for a handoff before it leaves (--handoff-wait)
    assert node.returncode == 0, log_text(tmp_path / "node.log")[-3000:]


def test_kill_9_leaves_no_process_of_the_node(tmp_path):
    home = tmp_path / "home"
    run_id = tiny_run(home)
    args = ["start", "--run", run_id, "--no-progress", "--settle", "1", "--events", "json"]
    node = spawn_cli(args, home, tmp_path, tmp_path / "n.log")
    try:
        ready = wait_for(lambda: json_events(tmp_path / "n.log", "ready"), 120, "the node's ready event")[0]
        assert ready["run"] == run_id and ready["maddrs"] and ready["join"].startswith("paris-node start --join")
        wait_for(lambda: json_events(tmp_path / "n.log", "claimed"), 60, "the node's claimed event")
        family = psutil.Process(node.pid).children(recursive=True)
        names = " ".join(" ".join(p.cmdline()) for p in family)
        assert len(family) >= 2 and "p2pd" in names, names  # the forked DHT process and its p2pd
        node.send_signal(signal.SIGKILL)
        node.wait(10)

        def all_gone() -> bool:
            return not [p for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]

        wait_for(all_gone, 10, f"the node's children {[p.pid for p in family]} to exit")
    finally:
        stop_group(node, grace=1)
