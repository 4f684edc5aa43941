"""The `paris-node` command line. Each command group lives in its own module and registers on `main`.

Errors: our typed errors print one line; `UsageError` (bad input: a flag, a file, a path) exits 2, like
click's own usage errors, and every other failure exits 1. A traceback only with `--log-level debug`.
`--home` and `--log-level` work before or after the subcommand (`paris-node fetch --all --home X`).
"""

from __future__ import annotations

import logging
import sys

import click

from paris_node import __version__
from paris_node.cli.common import LOG_LEVELS, CliState, add_global_options, set_log_level
from paris_node.errors import ParisError, UsageError
from paris_node.home import HOME_ENV, Home


class _Group(click.Group):
    """Turns errors into one clear line (exit 2 for bad input, 1 for failures); adds the global options."""

    def get_command(self, ctx: click.Context, cmd_name: str):
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None:
            add_global_options(cmd)
        return cmd

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit, KeyboardInterrupt):
            raise
        except UsageError as e:
            _fail(ctx, e, 2)
        except ParisError as e:
            _fail(ctx, e, 1)
        except OSError as e:  # a disk or permission problem: name the file
            where = f" ({e.filename})" if getattr(e, "filename", None) else ""
            _fail(ctx, f"{e.strerror or e}{where}", 1, e)
        except Exception as e:
            _fail(ctx, f"unexpected {type(e).__name__}: {e} (run with --log-level debug for the traceback)", 1, e)


def _fail(ctx: click.Context, message, code: int, exc: BaseException | None = None) -> None:
    state = ctx.find_object(CliState)
    if state is not None and state.log_level == "debug":
        raise exc or message
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="paris-node")
@click.option(
    "--home",
    type=click.Path(file_okay=False),
    envvar=HOME_ENV,
    default=None,
    help=f"Node home (key, content store, caches). Default ~/.paris-node, or ${HOME_ENV}.",
)
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS),
    default="info",
    show_default=True,
    help="Log verbosity; debug also shows tracebacks of errors.",
)
@click.pass_context
def main(ctx: click.Context, home: str | None, log_level: str) -> None:
    """paris-node: train a text-to-image diffusion model as isolated experts over a p2p swarm.

    \b
      paris-node start --claim auto     join (or start) a swarm, claim an expert, train, publish
      paris-node fetch --all            get the latest verified experts + router
      paris-node sample "a red apple"   router-weighted ensemble sampling to a PNG
      paris-node status                 who trains what, steps, losses, checkpoints
    """
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    ctx.obj = CliState(home=Home.resolve(home), log_level=log_level)
    set_log_level(log_level)


# Register the command modules (each adds its commands to `main`). Add new modules to this list.
COMMAND_MODULES = (
    "checkpoints",
    "content",
    "dashboard",
    "data",
    "evaluate",
    "ident",
    "models",
    "node",
    "runs",
    "sample",
    "swarm",
)
for _name in COMMAND_MODULES:
    __import__(f"paris_node.cli.{_name}")
