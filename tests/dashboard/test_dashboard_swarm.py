"""The page of a live swarm, end to end: three `paris-node start` processes train a tiny run on 127.0.0.1 (one
serves the page itself with --dashboard), a `paris-node dashboard --join` reader serves it too, and a real
headless chromium checks what an operator sees. Every process runs in its own process group and is killed at
the end whatever happens. The screenshot is kept in the tmp dir (and copied to docs/img/dashboard.png when
PARIS_UPDATE_DOCS_SCREENSHOT is set).
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from browser import chromium, csp_violations, image_loaded, screenshot

from paris_node.data.manifest import RunSpec, build_run
from paris_node.home import Home
from paris_node.identity import load_or_create

pytestmark = [pytest.mark.swarm, pytest.mark.timeout(480)]
REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from paris_node.cli import main; main()"]
ENV = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", DISPLAY="")
COMMON = ["--lease-ttl", "20", "--settle", "1.5", "--no-progress", "--threads", "1", "--publish-every", "10"]
MADDR = r"(/ip4/127\.0\.0\.1/tcp/\d+/p2p/12D3KooW\w+)"
JOBS = ["expert/0", "expert/1", "router"]


class Proc:
    """A CLI process whose merged output is read line by line (and kept in NAME.log beside its home)."""

    def __init__(self, name: str, home: Path, *args: str):
        self.name, self.log = name, home.parent / f"{name}.log"
        self.proc = subprocess.Popen(
            [*CLI, "--home", str(home), *args],
            cwd=REPO,
            env=ENV,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.lines: queue.Queue = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        with open(self.log, "w") as f:
            for line in self.proc.stdout:
                f.write(line)
                f.flush()
                self.lines.put(line)

    def wait_line(self, pattern: str, timeout: float) -> re.Match:
        end = time.monotonic() + timeout
        for line in self.seen:
            if m := re.search(pattern, line):
                return m
        while time.monotonic() < end:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    break
                continue
            self.seen.append(line)
            if m := re.search(pattern, line):
                return m
        raise AssertionError(f"{self.name}: no line matching {pattern!r} in {timeout}s; tail: {self.seen[-15:]}")

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)


def _api(url: str) -> dict:
    with urllib.request.urlopen(url + "api/status", timeout=10) as r:
        return json.loads(r.read())


def _ready(view: dict) -> bool:
    """Every job owned, both experts with a verified sample and a curve of at least two points."""
    jobs = {j["job"]: j for j in view.get("jobs", [])}
    if sorted(jobs) != JOBS or any(j["owner"] is None for j in jobs.values()):
        return False
    experts = [jobs["expert/0"], jobs["expert/1"]]
    return all(j["sample"] and len(j["history"]) >= 2 for j in experts) and view["partition"] is not None


def _wait_ready(url: str, procs: list[Proc], timeout: float) -> dict:
    end, view = time.monotonic() + timeout, {}
    while time.monotonic() < end:
        assert all(p.proc.poll() is None for p in procs), [p.name for p in procs if p.proc.poll() is not None]
        try:
            view = _api(url)
        except OSError:
            view = {}
        if _ready(view):
            return view
        time.sleep(1.0)  # polling an HTTP endpoint with a deadline, not synchronising on a sleep
    raise AssertionError(f"the page never showed every job, curve and sample: {json.dumps(view)[:3000]}")


@pytest.fixture(scope="module")
def swarm(tmp_path_factory):
    root = tmp_path_factory.mktemp("dash-swarm")
    spec = RunSpec(
        name="dash-e2e",
        dataset="shapes:96",
        samples=96,
        experts=2,
        expert_preset="tiny",
        router_preset="tiny",
        batch=8,
        lr=1e-3,
        ema=0.9,
        steps=100_000,
        publish_every_steps=10,
        fine_clusters=8,
    )
    home = Home(root / "a").ensure()
    run, _ = build_run(spec, home, load_or_create(home.identity_path))
    procs: dict[str, Proc] = {}
    try:
        a = procs["a"] = Proc("a", root / "a", "start", "--run", run, "--dashboard", "127.0.0.1:0", *COMMON)
        maddr = a.wait_line(MADDR, 90)[1]
        for name in ("b", "c"):
            procs[name] = Proc(name, root / name, "start", "--run", run, "--join", maddr, *COMMON)
        owners = sorted(procs[n].wait_line(r"owner of (\S+)", 120)[1] for n in ("a", "b", "c"))
        assert owners == JOBS
        reader = procs["reader"] = Proc(
            "reader", root / "reader", "dashboard", "--run", run, "--join", maddr, "--listen", "127.0.0.1:0",
            "--every", "2",
        )  # fmt: skip
        url = reader.wait_line(r"dashboard of run \S+ at (http://127\.0\.0\.1:\d+/)", 90)[1]
        own_url = a.wait_line(r"dashboard at (http://127\.0\.0\.1:\d+/)", 30)[1]
        yield {"root": root, "run": run, "url": url, "own_url": own_url, "procs": procs}
    finally:
        for p in procs.values():
            p.kill()


def test_the_page_shows_every_job_a_loss_plot_and_samples_in_a_real_browser(swarm):
    procs = list(swarm["procs"].values())
    view = _wait_ready(swarm["url"], procs, timeout=300)
    assert view["run"]["id"] == swarm["run"] and view["run"]["experts"] == 2
    with chromium() as driver:
        driver.get(swarm["url"])
        rows = driver.find_elements("css selector", "#jobs tbody tr")
        assert [r.find_element("css selector", "td").text for r in rows] == JOBS
        assert driver.find_elements("css selector", "#card-expert-0 svg polyline")  # a loss curve, drawn
        for job in ("expert-0", "expert-1"):
            assert image_loaded(driver, f"#card-{job} figure.sample img"), job
        assert image_loaded(driver, "img.partition")
        assert csp_violations(driver) == []
        shot = screenshot(driver, swarm["root"] / "dashboard.png")
    assert shot.read_bytes().startswith(b"\x89PNG")
    if os.environ.get("PARIS_UPDATE_DOCS_SCREENSHOT"):  # refresh docs/img/dashboard.png on request only
        docs = REPO / "docs" / "img" / "dashboard.png"
        docs.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, docs)


def test_the_training_node_serves_the_page_too_and_status_open_finds_it(swarm):
    own = _api(swarm["own_url"])
    assert [j["job"] for j in own["jobs"]] == JOBS and own["served_by"].startswith("z6Mk")
    got = subprocess.run(
        [*CLI, "--home", str(swarm["root"] / "a"), "status", "--open"],
        cwd=REPO,
        env=ENV,
        text=True,
        capture_output=True,
        timeout=60,
    )
    assert got.returncode == 0, got.stderr[-2000:]
    assert got.stdout.strip() == swarm["own_url"]
