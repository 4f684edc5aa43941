"""CLI commands for the swarm layer (registered on `main`)."""

from __future__ import annotations

import click

from paris_node.cli import main
from paris_node.cli.common import not_built


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def start() -> None:
    """Join (or start) a swarm, claim a job, train it and publish checkpoints."""
    not_built("start", "issue 4 / issue 7")


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def status() -> None:
    """Show who trains what: jobs, owners, steps, losses, checkpoints."""
    not_built("status", "issue 4")
