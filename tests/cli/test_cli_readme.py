"""The README's four commands, exactly as printed, on a throwaway home (PARIS_NODE_HOME) with a tiny run:
first in a second terminal on the node's own home, then from a fresh home given only --join. And a node's
processes (its DHT process and p2pd) die with it, however it dies."""

from __future__ import annotations

import re
import shlex
import signal
import time

import psutil
import pytest
from cli_helpers import REPO, run_cli, spawn_cli, tiny_run, wait_for
from click.testing import CliRunner

from paris_node.cli import main
from paris_node.procs import ProcGroup

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


@pytest.mark.slow
@pytest.mark.timeout(600)  # ~300 s on a loaded 2-core machine: two nodes, three fetches, two samples, two stops
def test_the_four_commands_as_printed(tmp_path):
    start, fetch, sample, status = readme_commands()
    home = tmp_path / "home"
    made = CliRunner().invoke(main, ["--home", str(home), "init", *TINY_INIT.split()])
    assert made.exit_code == 0, made.output
    run_id = made.stdout.strip().splitlines()[-1]

    group = ProcGroup()
    node = spawn_cli(group, start, home, tmp_path, tmp_path / "node.log")
    fresh_node = None
    try:
        node.wait_line(r"owner of expert/0", 120)
        maddr = next(m[1] for line in node.seen if (m := re.search(r"^  (/ip4/\S+/p2p/\S+)$", line)))
        assert any(run_id in line for line in node.seen)  # it trains the home's run, not the demo

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
        fresh_node = spawn_cli(group, [*start, "--join", maddr], tmp_path / "fresh-node", cwd2, tmp_path / "fresh.log")
        fresh_node.wait_line(r"standby", 120)
        assert any(f"run {run_id}" in line for line in fresh_node.seen)
    finally:
        for proc in (fresh_node, node):
            if proc is not None:
                proc.terminate(grace=120)  # a sole holder waits for a handoff before it leaves (--handoff-wait)
        group.close()
    assert node.proc.returncode == 0, node.tail()


def test_kill_9_leaves_no_process_of_the_node(tmp_path):
    home = tmp_path / "home"
    run_id = tiny_run(home)
    args = ["start", "--run", run_id, "--no-progress", "--settle", "1", "--events", "json"]
    with ProcGroup() as group:
        node = spawn_cli(group, args, home, tmp_path, tmp_path / "n.log", merge_stderr=False)  # stdout: events only
        ready = node.wait_for("ready", time.monotonic() + 120)
        assert ready["run"] == run_id and ready["maddrs"] and ready["join"].startswith("paris-node start --join")
        node.wait_for("claimed", time.monotonic() + 60)
        published = node.wait_for("published", time.monotonic() + 120)  # what the demo reads: step and metrics
        assert published["job"] == "expert/0" and published["step"] > 0 and published["cid"].startswith("baf")
        assert {"train_loss", "val_loss"} <= set(published["metrics"]), published
        family = psutil.Process(node.proc.pid).children(recursive=True)
        names = " ".join(" ".join(p.cmdline()) for p in family)
        assert len(family) >= 2 and "p2pd" in names, names  # the forked DHT process and its p2pd
        node.proc.send_signal(signal.SIGKILL)
        node.proc.wait(10)

        def all_gone() -> bool:
            return not [p for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]

        wait_for(all_gone, 10, f"the node's children {[p.pid for p in family]} to exit")
