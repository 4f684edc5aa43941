"""`paris-node id`: create (on first use) and show this node's identity."""

from __future__ import annotations

import json

import click

from paris_node.cli import main
from paris_node.cli.common import CliState, home_option
from paris_node.identity import load_or_create


@main.command("id")
@home_option
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_obj
def id_command(state: CliState, as_json: bool) -> None:
    """Print this node's id (signer of its records) and libp2p peer id; creates the key on first use."""
    home = state.home.ensure()
    ident = load_or_create(home.identity_path)
    info = {"node_id": ident.node_id, "peer_id": ident.peer_id, "key_file": str(home.identity_path)}
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        for k, v in info.items():
            click.echo(f"{k:8s} {v}")
