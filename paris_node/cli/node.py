"""CLI commands for the node layer (registered on `main`)."""

from __future__ import annotations

import click

from paris_node.cli import main
from paris_node.cli.common import not_built


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def fetch() -> None:
    """Fetch the latest verified expert and router checkpoints of the run."""
    not_built("fetch", "issue 7")


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def sample() -> None:
    """Router-weighted ensemble sampling to a PNG."""
    not_built("sample", "issue 7")
