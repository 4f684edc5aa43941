"""Fixtures for the dashboard tests: a tiny real run (manifest + shards in a home), built once."""

from __future__ import annotations

import pytest
from tiny_swarm import build_tiny_run, tiny_spec

from paris_node.data.manifest import load_run
from paris_node.home import Home
from paris_node.identity import Identity

TINY = tiny_spec("dash-tests", samples=64, experts=2, fine_clusters=8)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """(home, manifest) of a 2-expert tiny run, signed by a fresh key."""
    root = tmp_path_factory.mktemp("dash-run-home")
    run_id = build_tiny_run(root, TINY, Identity.generate())
    home = Home(root).ensure()
    return home, load_run(home, run_id)
