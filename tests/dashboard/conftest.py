"""Fixtures for the dashboard tests: a tiny real run (manifest + shards in a home), built once."""

from __future__ import annotations

import pytest

from paris_node.data.manifest import RunSpec, build_run, load_run
from paris_node.home import Home
from paris_node.identity import Identity

TINY = RunSpec(
    name="dash-tests",
    dataset="shapes:64",
    samples=64,
    experts=2,
    expert_preset="tiny",
    router_preset="tiny",
    steps=20,
    batch=8,
    publish_every_steps=10,
    fine_clusters=8,
)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """(home, manifest) of a 2-expert tiny run, signed by a fresh key."""
    home = Home(tmp_path_factory.mktemp("dash-run-home")).ensure()
    run_id, _ = build_run(TINY, home, Identity.generate())
    return home, load_run(home, run_id)
