"""What a home remembers and who may use it: init's consistent runs, swarm.json, `runs`, the node and cache locks."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading

from cli_helpers import wait_for
from click.testing import CliRunner

from paris_node.cli import main
from paris_node.home import Home
from paris_node.node.homestate import cache_lock, node_lock, node_running, read_swarm

SMALL = ["--dataset", "shapes:64", "--samples", "64", "--steps", "10"]


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_init_derives_a_router_that_fits_and_names_the_run(tmp_path):
    res = run("--home", str(tmp_path), "init", *SMALL, "--experts", "2", "--preset", "tiny", "--json")
    assert res.exit_code == 0, res.output
    run_id = json.loads(res.stdout)["run_id"]
    shown = json.loads(run("--home", str(tmp_path), "data", "show", run_id).stdout)
    assert shown["payload"]["spec"]["models"]["router_preset"] == "tiny"  # 16 px experts get the 16 px router
    assert shown["payload"]["name"] == "shapes"  # only the demo run is called 'demo'
    assert read_swarm(Home(tmp_path)).run == run_id  # the home's run from now on
    listed = json.loads(run("--home", str(tmp_path), "runs", "--json").stdout)
    assert [(r["run"], r["experts"], r["this_home"], r["fetched"]) for r in listed] == [(run_id, 2, True, [])]
    assert run_id in run("--home", str(tmp_path), "runs").output


def test_init_refuses_a_router_that_cannot_see_the_experts(tmp_path):
    home = tmp_path / "h"
    res = run("--home", str(home), "init", *SMALL, "--experts", "2", "--preset", "B/2", "--router-preset", "tiny")
    assert res.exit_code == 2 and "use --router-preset B/2" in res.output, res.output  # latents vs pixels
    res = run("--home", str(home), "init", *SMALL, "--resolution", "256")
    assert res.exit_code == 2 and "use --preset B/2" in res.output, res.output
    assert not home.exists()  # refused before anything was written


def test_init_has_no_publish_timer_flag():
    assert not re.search(r"--publish-every-s\b", run("init", "--help").output)


HOLD = """
import sys
from paris_node.home import Home
from paris_node.node.homestate import {fn}
held = {fn}(Home.resolve(sys.argv[1]))  # kept referenced: dropping it would release the lock
{enter}
print("held", flush=True)
sys.stdin.read()
"""


def holder(home, fn: str) -> subprocess.Popen:
    enter = "held.__enter__()" if fn == "cache_lock" else ""
    p = subprocess.Popen(
        [sys.executable, "-c", HOLD.format(fn=fn, enter=enter), str(home)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert p.stdout.readline().strip() == "held"
    return p


def test_second_node_on_a_home_is_refused_naming_the_pid(tmp_path):
    first = holder(tmp_path, "node_lock")
    try:
        assert node_running(Home(tmp_path)) == first.pid
        res = run("--home", str(tmp_path), "start", "--run", "demo")
        assert res.exit_code == 1, res.output
        assert f"PID {first.pid}" in res.output and "already running" in res.output and "--home" in res.output
    finally:
        first.kill()
        first.wait(10)
    # the holder died without releasing: its lock is free and the next node takes it over
    assert node_running(Home(tmp_path)) is None
    with node_lock(Home(tmp_path)):
        assert (tmp_path / "node.lock").read_text().strip() == str(os.getpid())


def test_two_fetches_never_write_the_cache_at_once(tmp_path):
    first = holder(tmp_path, "cache_lock")
    waited, got = [], threading.Event()

    def second() -> None:
        with cache_lock(Home(tmp_path), on_wait=waited.append):
            got.set()

    t = threading.Thread(target=second, daemon=True)
    t.start()
    wait_for(lambda: waited, 10, "the second fetch to notice the lock")
    assert waited == [first.pid] and not got.is_set()
    first.send_signal(signal.SIGTERM)  # the first fetch ends (however it ends): the second goes on
    first.wait(10)
    assert got.wait(10)
    t.join(10)
