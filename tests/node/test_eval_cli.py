"""`paris-node eval` on a tiny trained model in the fetch cache: it writes its report; bad input gets clear errors.

In-process like test_cache_repair.py: the "swarm" is the publisher's store behind node_helpers' RemoteFetch.
"""

from __future__ import annotations

import importlib.util
import json

from click.testing import CliRunner
from node_helpers import publish, train_tiny_expert

from paris_node.cli import main
from paris_node.content.dag import iter_file
from paris_node.data.manifest import MANIFEST_FILE
from paris_node.identity import Identity
from paris_node.node.fetcher import CheckpointFetcher
from paris_node.node.selection import LeaseHistory
from paris_node.records import ROUTER_JOB, job_of_expert
from paris_node.swarm.tenure import Tenure

OWNER = Identity.from_seed(b"e" * 32)


def run_cli(*args: str):
    return CliRunner().invoke(main, list(args))


def _install_all(tiny_run, fh, ckpts):
    """As `fetch` leaves a home: the run manifest held, each job's checkpoint verified and installed."""
    manifest = fh.home.runs_dir / tiny_run.run_id / MANIFEST_FILE
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_bytes(b"".join(iter_file(tiny_run.store, tiny_run.run_id)))
    history = LeaseHistory()
    for job in ckpts:
        history.add(Tenure(job, OWNER.node_id, 0, 1 << 62))
    fetcher = CheckpointFetcher(fh.home, fh.store, tiny_run.manifest, fetch=fh.fetch, history=history)
    for job, ckpt in ckpts.items():
        accepted, verdicts = fetcher.fetch_job(job, [publish(tiny_run, OWNER, job, ckpt, step=10).candidate])
        assert accepted is not None and accepted.ok, verdicts


def test_eval_writes_report_json_and_grid(tiny_run, fetcher_home, expert_ckpt, router_ckpt, tmp_path):
    expert0 = train_tiny_expert(tiny_run, tmp_path / "train-0", steps=10, k=0)
    _install_all(
        tiny_run, fetcher_home, {job_of_expert(0): expert0, job_of_expert(1): expert_ckpt, ROUTER_JOB: router_ckpt}
    )
    out = tmp_path / "eval"
    home = str(fetcher_home.home.root)
    res = run_cli(
        "--home",
        home,
        "eval",
        "--run",
        tiny_run.run_id,
        "-n",
        "4",
        "--steps",
        "3",
        "--routing",
        "top1",
        "--routing",
        "top2",
        "--out",
        str(out),
    )
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    assert [s["strategy"] for s in report["scores"]] == ["top1", "top2"]
    for s in report["scores"]:
        assert set(s["fidelity"]) == {"background", "colour", "shape", "all"}
        assert all(0.0 <= v <= 1.0 for v in s["fidelity"].values())
        assert isinstance(s["fid"], float) and s["fid"] >= 0.0
    assert "| top2 |" in (out / "report.md").read_text()
    if importlib.util.find_spec("torch_fidelity") is None:  # not a dependency: skipped, and the report says why
        assert report["notes"]["fid_inception"].startswith("FID-Inception skipped: torch-fidelity is not installed")
    assert (out / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_refuses_prompts_outside_the_vocabulary(tiny_run, fetcher_home, expert_ckpt, tmp_path):
    _install_all(tiny_run, fetcher_home, {job_of_expert(1): expert_ckpt})
    res = run_cli(
        "--home",
        str(fetcher_home.home.root),
        "eval",
        "--run",
        tiny_run.run_id,
        "--prompt",
        "two purple stars on an orange background",
        "--out",
        str(tmp_path / "e"),
    )
    assert res.exit_code == 2 and "outside the shapes vocabulary" in res.output and "colours red" in res.output
    assert not (tmp_path / "e").exists()


def test_eval_with_an_empty_cache_names_the_fetch_command(tiny_run, tmp_path):
    res = run_cli("--home", str(tmp_path / "fresh"), "eval", "--run", tiny_run.run_id, "--out", str(tmp_path / "e"))
    assert res.exit_code != 0 and "paris-node fetch --all" in res.output
    assert not (tmp_path / "e").exists()


def test_eval_without_the_router_names_the_fetch_command(tiny_run, fetcher_home, expert_ckpt, tmp_path):
    expert0 = train_tiny_expert(tiny_run, tmp_path / "train-0", steps=3, k=0)
    _install_all(tiny_run, fetcher_home, {job_of_expert(0): expert0, job_of_expert(1): expert_ckpt})
    res = run_cli(
        "--home", str(fetcher_home.home.root), "eval", "--run", tiny_run.run_id, "--out", str(tmp_path / "e")
    )
    assert res.exit_code != 0 and "fetch router" in res.output
