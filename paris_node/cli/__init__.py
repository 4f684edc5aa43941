"""The `paris-node` command line. Each command group lives in its own module and registers on `main`."""

from __future__ import annotations

import logging
import sys

import click

from paris_node import __version__
from paris_node.cli.common import CliState
from paris_node.errors import ParisError
from paris_node.home import HOME_ENV, Home

LOG_LEVELS = ["debug", "info", "warning", "error"]


class _Group(click.Group):
    """Turns our own typed errors into one clear line and exit code 1 (no traceback)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ParisError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="paris-node")
@click.option(
    "--home",
    type=click.Path(file_okay=False),
    envvar=HOME_ENV,
    default=None,
    help=f"Node home (key, content store, caches). Default ~/.paris-node, or ${HOME_ENV}.",
)
@click.option("--log-level", type=click.Choice(LOG_LEVELS), default="info", show_default=True)
@click.pass_context
def main(ctx: click.Context, home: str | None, log_level: str) -> None:
    """paris-node: train a text-to-image diffusion model as isolated experts over a p2p swarm.

    \b
      paris-node start --claim auto     join (or start) a swarm, claim an expert, train, publish
      paris-node fetch --all            get the latest verified experts + router
      paris-node sample "a red apple"   router-weighted ensemble sampling to a PNG
      paris-node status                 who trains what, steps, losses, checkpoints
    """
    logging.basicConfig(
        level=getattr(logging, log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    ctx.obj = CliState(home=Home.resolve(home))


# Register the command modules (each adds its commands to `main`).
from paris_node.cli import content, data, ident, models, node, swarm  # noqa: E402,F401
