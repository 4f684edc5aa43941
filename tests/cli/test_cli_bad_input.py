"""Every bad input gets one line naming the problem and the fix, exit 2 (usage) or 1 (failure), no traceback,
and writes nothing; checked before any swarm is joined (these tests have no swarm: a join would hang or fail)."""

from __future__ import annotations

import json

import pytest
import torch
from cli_helpers import tiny_run
from click.testing import CliRunner

from paris_node.cli import main

JOIN = "/ip4/127.0.0.1/tcp/9/p2p/12D3KooWQFRENWPmbsAqhnfeYusY6a7vRxXQB7TGQ2MgXBpwfuWE"  # nobody listens there


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def assert_clean_error(res, code: int, *fragments: str) -> None:
    assert res.exit_code == code, res.output
    lines = [line for line in res.output.splitlines() if line.strip() and not line.startswith("using ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    assert "Traceback" not in res.output
    for f in fragments:
        assert f in lines[0], lines[0]


def snapshot(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


@pytest.fixture(scope="module")
def held(tmp_path_factory):
    """A home holding a one-expert run (no router), remembered as the home's run."""
    home = tmp_path_factory.mktemp("held")
    run_id = tiny_run(home)
    (home / "swarm.json").write_text(json.dumps({"run": run_id}))
    return home, run_id


@pytest.mark.parametrize(
    "args",
    [
        ["start", "--run", "not-a-cid"],
        ["fetch", "--all", "--run", "not-a-cid", "--join", JOIN],
        ["status", "--run", "not-a-cid", "--join", JOIN],
        ["sample", "an apple", "--run", "not-a-cid"],
    ],
    ids=["start", "fetch", "status", "sample"],
)
def test_bad_run_id(tmp_path, args):
    home = tmp_path / "h"
    assert_clean_error(run("--home", str(home), *args), 2, "'not-a-cid' is not a run id", "bafkrei")
    assert not home.exists()


@pytest.mark.parametrize("args", [["id"], ["fetch", "--all", "--join", JOIN], ["start"], ["init"]])
def test_home_below_a_file(tmp_path, args):
    (tmp_path / "file").write_text("x")
    res = run(*args, "--home", str(tmp_path / "file" / "home"))  # the global option after the subcommand
    assert_clean_error(res, 2, "is a file, not a directory", "--home")


@pytest.mark.parametrize("args", [["id"], ["fetch", "--all", "--join", JOIN], ["start"]])
def test_unwritable_home(tmp_path, args):
    res = run("--home", "/proc/paris-node-test-home", *args)  # not creatable, even for root
    assert_clean_error(res, 2, "/proc/paris-node-test-home", "writable --home")


def test_unwritable_home_by_permission(tmp_path):
    import os

    if os.geteuid() == 0:
        pytest.skip("root writes through directory permissions")
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    assert_clean_error(run("--home", str(ro / "home"), "id"), 2, "not writable")


def test_sample_device_not_available(held):
    home, _ = held
    device = "cuda:99" if torch.cuda.is_available() else "cuda"
    before = snapshot(home)
    res = run("--home", str(home), "sample", "an apple", "--device", device)
    assert_clean_error(res, 2, f"--device {device}")
    assert "use --device cpu" in res.output or "CUDA device(s)" in res.output
    assert_clean_error(run("--home", str(home), "sample", "x", "--device", "gpu"), 2, "'gpu' is not a device")
    assert snapshot(home) == before


def test_start_device_not_available(tmp_path):
    device = "cuda:99" if torch.cuda.is_available() else "cuda"
    assert_clean_error(run("--home", str(tmp_path / "h"), "start", "--device", device), 2, f"--device {device}")
    assert not (tmp_path / "h").exists()


# a corrupted safetensors header in the cache: tests/cli/test_cli_readme.py (it needs a really fetched copy)


def test_claim_checked_against_held_run_before_joining(held):
    home, run_id = held
    before = snapshot(home)
    assert_clean_error(run("--home", str(home), "start", "--claim", "99"), 2, "--claim 99", "expert/0")
    res = run("--home", str(home), "start", "--claim", "router", "--run", run_id, "--join", JOIN)
    assert_clean_error(res, 2, "--claim router")
    assert snapshot(home) == before


def test_claim_checked_for_the_demo_run(tmp_path):
    assert_clean_error(run("--home", str(tmp_path / "h"), "start", "--claim", "99", "--run", "demo"), 2, "--claim 99")
    assert_clean_error(run("--home", str(tmp_path / "h"), "start", "--claim", "x"), 2, "--claim 'x'")
    assert not (tmp_path / "h").exists()


def test_fetch_job_checked_against_held_run_before_joining(held):
    home, run_id = held
    assert_clean_error(run("--home", str(home), "fetch", "3", "--join", JOIN), 2, "fetch '3'", "experts 0..0")
    assert_clean_error(run("--home", str(home), "fetch", "router", "--join", JOIN), 2, "no router")
    assert_clean_error(run("--home", str(home), "fetch", "x7", "--join", JOIN), 2, "fetch 'x7'")
    assert_clean_error(run("--home", str(home), "fetch"), 2, "say what to fetch")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["start", "--listen", "nowhere"], "--listen 'nowhere'"),
        (["start", "--join", "127.0.0.1:4001"], "--join '127.0.0.1:4001'"),
        (["status", "--join", "/ip4/127.0.0.1/tcp/1"], "/p2p/"),
        (["fetch", "--all"], "no swarm to join"),
        (["status"], "no swarm to join"),
        (["sample", "an apple"], "nothing fetched"),
    ],
)
def test_missing_or_malformed_swarm_input(tmp_path, args, fragment):
    home = tmp_path / "h"
    assert_clean_error(run("--home", str(home), *args), 2, fragment)
    assert not home.exists()


def test_traceback_only_with_debug(tmp_path):
    res = CliRunner().invoke(main, ["sample", "x", "--device", "gpu", "--log-level", "debug"])
    assert res.exit_code != 0 and res.exception is not None and "is not a device" in str(res.exception)


def test_global_options_after_the_subcommand(tmp_path):
    res = run("id", "--json", "--log-level", "warning", "--home", str(tmp_path))
    assert res.exit_code == 0 and json.loads(res.output)["node_id"].startswith("z6Mk")
    res = run("pin", "ls", "--log-level", "error", "--home", str(tmp_path))
    assert res.exit_code == 0, res.output
