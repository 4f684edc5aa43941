"""Fixtures for the node tests: the tiny run, trained checkpoints and a fresh fetching node, all in-process.

The expensive things (building the run, training) are session-scoped and built once; helpers and test
doubles live in node_helpers.py.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from node_helpers import TINY_SPEC, FetcherHome, TinyRun, fetcher_home_for, train_tiny_expert, train_tiny_router
from torch_threads import one_torch_thread  # noqa: F401  (autouse: one torch thread per test)

from paris_node.content.blockstore import Blockstore
from paris_node.data.manifest import build_run, load_run
from paris_node.home import Home
from paris_node.identity import Identity


@pytest.fixture(scope="session")
def make_tiny_run(tmp_path_factory):
    """make_tiny_run(**RunSpec overrides) -> TinyRun, built once per distinct set of overrides (a fraction of a s)."""
    built: dict[tuple, TinyRun] = {}

    def make(**overrides) -> TinyRun:
        key = tuple(sorted(overrides.items()))
        if key not in built:
            home = Home(tmp_path_factory.mktemp("publisher-home"))
            owner = Identity.generate()
            run_id, _ = build_run(dataclasses.replace(TINY_SPEC, **overrides), home, owner)
            built[key] = TinyRun(home, Blockstore(home.blocks_dir), load_run(home, run_id), owner)
        return built[key]

    return make


@pytest.fixture(scope="session")
def tiny_run(make_tiny_run) -> TinyRun:
    """An open run (anyone may publish; val_loss_threshold 0.9: 10 % better than the zero predictor)."""
    run = make_tiny_run()
    assert run.manifest.publishers == "open" and run.manifest.val_loss_threshold == 0.9
    return run


@pytest.fixture(scope="session")
def expert_ckpt(tiny_run, tmp_path_factory) -> Path:
    """A checkpoint folder of EXPERT_JOB trained 10 steps (held-out ratio well under 1). Copy before changing it."""
    return train_tiny_expert(tiny_run, tmp_path_factory.mktemp("train-expert"), steps=10)


@pytest.fixture(scope="session")
def router_ckpt(tiny_run, tmp_path_factory) -> Path:
    """A router checkpoint of the tiny run trained 10 steps."""
    return train_tiny_router(tiny_run, tmp_path_factory.mktemp("train-router"), steps=10)


@pytest.fixture
def fetcher_home(tiny_run, tmp_path) -> FetcherHome:
    """A fresh node (own home and store) fetching from the tiny run's publishers through RemoteFetch."""
    return fetcher_home_for(tiny_run, tmp_path / "fetcher-home")
