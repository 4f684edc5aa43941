"""The page of a live swarm, end to end: three `paris-node start` processes train a tiny run on 127.0.0.1 (one
serves the page itself with --dashboard), a `paris-node dashboard --join` reader serves it too, and a real
headless chromium checks what an operator sees. Every process runs in its own process group and is killed at
the end whatever happens. The screenshot is kept in the tmp dir (and copied to docs/img/dashboard.png when
PARIS_UPDATE_DOCS_SCREENSHOT is set).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request

import pytest
from browser import chromium, csp_violations, image_loaded, screenshot
from tiny_swarm import OWNED_JOBS, build_tiny_run, start_owners, tiny_spec

from paris_node.procs import CLI, REPO, NodeProc, ProcGroup, cli_node
from paris_node.procs import ENV as NODE_ENV

pytestmark = [pytest.mark.swarm, pytest.mark.timeout(480)]
ENV = dict(NODE_ENV, DISPLAY="")
COMMON = ["--lease-ttl", "20", "--settle", "1.5", "--no-progress", "--threads", "1", "--publish-every", "10"]
JOBS = OWNED_JOBS


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


def _wait_ready(url: str, procs: list[NodeProc], timeout: float) -> dict:
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
    spec = tiny_spec("dash-e2e", samples=96, lr=1e-3, ema=0.9, steps=100_000, fine_clusters=8)
    run = build_tiny_run(root / "a", spec)
    procs: dict[str, NodeProc] = {}
    with ProcGroup() as group:

        def start(name: str, args: list[str]) -> NodeProc:
            extra = ["--dashboard", "127.0.0.1:0"] if name == "a" else []
            argv = ["start", "--events", "json", *args, *extra, *COMMON]
            procs[name] = cli_node(group, name, root / name, *argv, env=ENV)
            return procs[name]

        maddr, _ = start_owners(start, run)
        a = procs["a"]
        reader = procs["reader"] = cli_node(
            group, "reader", root / "reader", "dashboard", "--run", run, "--join", maddr, "--listen", "127.0.0.1:0",
            "--every", "2", env=ENV,
        )  # fmt: skip
        url = reader.wait_line(r"dashboard of run \S+ at (http://127\.0\.0\.1:\d+/)", 90)[1]
        own_url = a.wait_line(r"dashboard at (http://127\.0\.0\.1:\d+/)", 30)[1]
        yield {"root": root, "run": run, "url": url, "own_url": own_url, "procs": procs}


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
