"""A seeded run on a real swarm (p2pd, DHT, block exchange, training on 127.0.0.1): a node that joins fetches its
expert's seed by CID from the run's creator and starts from it at step 0, bit for bit."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file
from tiny_pixart import save_tiny_pixart, tensors

from paris_node.cli import main
from paris_node.content.blockstore import Blockstore
from paris_node.content.dag import missing_blocks
from paris_node.data.manifest import load_run
from paris_node.home import Home
from paris_node.procs import ProcGroup, cli_node

pytestmark = [pytest.mark.swarm, pytest.mark.timeout(300)]
QUICK = ["--settle", "1.5", "--lease-ttl", "20", "--no-progress", "--threads", "1", "--mirror-every", "0"]


def release(path: Path, experts: int) -> list[dict[str, torch.Tensor]]:
    """expert_k/ written by diffusers' save_pretrained at the tiny shape, distinct random weights."""
    return [tensors(save_tiny_pixart(path / f"expert_{k}", seed=k)) for k in range(experts)]


def test_a_joining_node_starts_its_expert_from_the_seed_it_fetched(tmp_path):
    nets = release(tmp_path / "release", 2)
    creator, joiner = tmp_path / "creator", tmp_path / "joiner"
    made = CliRunner().invoke(
        main,
        ["--home", str(creator), "init", "--dataset", "shapes:64", "--experts", "2", "--steps", "4", "--batch", "4",
         "--publish-every-steps", "2", "--val-loss-threshold", "10", "--init-from", str(tmp_path / "release")],
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    run_id = made.stdout.strip().splitlines()[-1]
    seed = load_run(Home(creator), run_id).init.experts[1].cid

    with ProcGroup() as group:
        a = cli_node(group, "a", creator, "start", *QUICK, "--run", run_id, "--claim", "0")
        maddr = a.wait_line(r"^  (/ip4/127\.0\.0\.1/\S+/p2p/\S+)$", 120)[1]
        a.wait_line("owner of expert/0", 120)
        b = cli_node(group, "b", joiner, "start", *QUICK, "--run", run_id, "--join", maddr, "--claim", "1")
        b.wait_line(rf"expert/1: no checkpoint yet; starting from the run's seed weights {seed}", 180)
        b.wait_line(r"published expert/1 step 2", 120)
        for node in (b, a):
            node.terminate(grace=60)
    store = Blockstore(Home(joiner).blocks_dir)
    assert not missing_blocks(store, seed)  # fetched by CID, verified block by block, from the creator
    start = load_file(str(joiner / "work" / run_id / "expert-1" / "seed" / "model.safetensors"))
    net = {k.removeprefix("net."): v for k, v in start.items() if k.startswith("net.")}
    assert net.keys() == nets[1].keys() and all(torch.equal(net[k], nets[1][k]) for k in net)
