"""Shared CLI plumbing: the state object and options several commands take."""

from __future__ import annotations

from dataclasses import dataclass

import click

from paris_node.home import Home


@dataclass
class CliState:
    home: Home


def home_option(f):
    """`--home` on a subcommand too (`paris-node fetch --home X`), overriding the group's."""

    def set_home(ctx: click.Context, _param, value):
        if value is not None:
            ctx.ensure_object(CliState).home = Home.resolve(value)
        return value

    return click.option(
        "--home",
        type=click.Path(file_okay=False),
        default=None,
        expose_value=False,
        callback=set_home,
        is_eager=True,
        help="Node home (overrides the global --home).",
    )(f)


def not_built(name: str, issue: str) -> None:
    """Say plainly that a command is not built yet and exit 2."""
    click.echo(f"paris-node {name}: not built yet ({issue}).", err=True)
    raise SystemExit(2)
