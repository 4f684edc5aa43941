"""A cache that checks itself: weights-only installs, re-verification before "already held", refusal to load
damaged bytes, and `verify --repair` (from the local store, or from the swarm when the store shares the damage).

In-process: the "swarm" is the publisher's store behind RemoteFetch (node_helpers.py); the CLI commands run
through click's CliRunner against the fetching node's home.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from node_helpers import EXPERT_JOB, publish

from paris_node.checkpoint import FOR_TRAINING
from paris_node.cli import main
from paris_node.identity import Identity
from paris_node.node import cache
from paris_node.node.fetcher import CheckpointFetcher
from paris_node.node.repair import verify_all
from paris_node.node.selection import LeaseHistory
from paris_node.swarm.tenure import Tenure

HONEST = Identity.from_seed(b"r" * 32)


def flip(path, offset: int = -10) -> None:
    """One bit-rotten byte in the tensor data (the header stays valid: only the sha256 can tell)."""
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def run_cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def sample_args(fh, run, tmp_path) -> list[str]:
    out = str(tmp_path / "s.png")
    return ["--home", str(fh.home.root), "sample", "a red square", "--run", run.run_id, "--steps", "2"] + [
        "--no-progress",
        "--out",
        out,
    ]


@pytest.fixture
def installed(tiny_run, fetcher_home, expert_ckpt):
    """The fetching node after `fetch` of one expert (weights + config, nothing else)."""
    pub = publish(tiny_run, HONEST, EXPERT_JOB, expert_ckpt, step=10)
    history = LeaseHistory()
    history.add(Tenure(EXPERT_JOB, HONEST.node_id, 0, 1 << 62))  # the publisher held the job's lease
    fh = fetcher_home
    fetcher = CheckpointFetcher(fh.home, fh.store, tiny_run.manifest, fetch=fh.fetch, history=history)
    accepted, _ = fetcher.fetch_job(EXPERT_JOB, [pub.candidate])
    assert accepted is not None and accepted.ok
    return pub, fetcher


def test_fetch_for_sampling_moves_weights_and_config_only_and_stores_them_once(tiny_run, fetcher_home, installed):
    pub, _ = installed
    folder = cache.job_dir(fetcher_home.home, tiny_run.run_id, EXPERT_JOB)
    assert {p.name for p in folder.iterdir()} == {"config.json", "model.safetensors", "fetched.json"}
    state = [m["cid"] for m in pub.record.body.files.values() if m["role"] == "state"]
    assert len(state) == 2 and not set(state) & set(fetcher_home.fetch.fetched())
    # the weights are one raw block: the cache file IS the store's block (hard link), not a second copy
    assert (folder / "model.safetensors").stat().st_nlink == 2
    inst = cache.read_installed(fetcher_home.home, tiny_run.run_id, EXPERT_JOB)
    assert inst.roles == {"weights", "config"} and inst.cids()[0] == pub.manifest_cid


def test_a_flipped_byte_is_refused_by_sample_and_restored_by_verify_repair(
    tiny_run, fetcher_home, installed, tmp_path
):
    run, fh = tiny_run, fetcher_home
    assert run_cli(*sample_args(fh, run, tmp_path)).exit_code == 0
    weights = cache.job_dir(fh.home, run.run_id, EXPERT_JOB) / "model.safetensors"
    flip(weights)

    refused = run_cli(*sample_args(fh, run, tmp_path))
    assert refused.exit_code == 1 and "paris-node verify --repair" in refused.output
    assert "model.safetensors: sha256 differs" in refused.output

    checked = run_cli("--home", str(fh.home.root), "verify")
    assert checked.exit_code == 1 and "sha256 differs" in checked.output and "does not hash" in checked.output

    # the store shared the damaged bytes (hard link), so the local repair cannot finish: it says so
    local = run_cli("--home", str(fh.home.root), "verify", "--repair")
    assert local.exit_code == 1 and "--join" in local.output
    # ... and from the swarm it does (the CLI's --join path uses the real exchange; here its test double)
    findings = verify_all(fh.home, fh.store, repair=True, fetch=fh.fetch)
    assert [f.repaired for f in findings] == [True] and "restored model.safetensors" in findings[0].problem
    assert run_cli("--home", str(fh.home.root), "verify").exit_code == 0
    assert run_cli(*sample_args(fh, run, tmp_path)).exit_code == 0


def test_fetch_reverifies_before_already_held_and_repairs(tiny_run, fetcher_home, installed):
    pub, fetcher = installed
    weights = cache.job_dir(fetcher_home.home, tiny_run.run_id, EXPERT_JOB) / "model.safetensors"
    good = weights.read_bytes()
    flip(weights)
    accepted, _ = fetcher.fetch_job(EXPERT_JOB, [pub.candidate])
    assert accepted is not None and accepted.ok and accepted.reason != "already held"
    assert weights.read_bytes() == good
    accepted, _ = fetcher.fetch_job(EXPERT_JOB, [pub.candidate])
    assert accepted.reason == "already held"


def test_a_chunked_file_is_stored_once_and_repaired_from_the_swarm(tiny_run, fetcher_home, installed):
    pub, fetcher = installed
    accepted, _ = fetcher.fetch_job(EXPERT_JOB, [pub.candidate], roles=FOR_TRAINING)  # takeover: state too
    folder = cache.job_dir(fetcher_home.home, tiny_run.run_id, EXPERT_JOB)
    state = folder / "training_state.safetensors"
    assert accepted is not None and state.stat().st_nlink == 1  # several blocks: not a link, but...
    # ...stored once: the store keeps no-copy references to the cache file's leaves (content/filestore.py)
    assert fetcher_home.store.stat()["referenced_bytes"] >= state.stat().st_size
    good = state.read_bytes()
    flip(state)
    # the store shares the damaged bytes (as with a hard link), so the local repair says where to get them
    local = run_cli("--home", str(fetcher_home.home.root), "verify", "--repair")
    assert local.exit_code == 1 and "--join" in local.output
    findings = verify_all(fetcher_home.home, fetcher_home.store, repair=True, fetch=fetcher_home.fetch)
    assert any(f.repaired and "restored training_state.safetensors" in f.problem for f in findings)
    assert state.read_bytes() == good
    assert run_cli("--home", str(fetcher_home.home.root), "verify").exit_code == 0
    info = json.loads((folder / "fetched.json").read_text())
    assert set(info["files"]) == {"config.json", "model.safetensors", "training_state.json", state.name}


def test_a_truncated_header_names_the_repair_not_a_traceback(tiny_run, fetcher_home, installed, tmp_path):
    weights = cache.job_dir(fetcher_home.home, tiny_run.run_id, EXPERT_JOB) / "model.safetensors"
    weights.chmod(0o644)
    data = weights.read_bytes()
    weights.unlink()  # break the link first: this damage is the cache's own
    weights.write_bytes(data[:4])
    refused = run_cli(*sample_args(fetcher_home, tiny_run, tmp_path))
    assert refused.exit_code == 1 and "verify --repair" in refused.output and "Traceback" not in refused.output
    assert run_cli("--home", str(fetcher_home.home.root), "verify", "--repair").exit_code == 0
    assert weights.read_bytes() == data
