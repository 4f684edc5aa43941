"""`paris-node dashboard`: the swarm's page, served by a reader node that trains nothing."""

from __future__ import annotations

import signal
import threading

import click

from paris_node.cli import main
from paris_node.cli.common import CliState, home_option, say
from paris_node.cli.node import JOIN_HELP


@main.command()
@home_option
@click.option("--run", "run_id", default=None, help="Run id (CID of its manifest) or 'demo'.  [default: as fetch]")
@click.option("--join", multiple=True, metavar="MADDR", help=JOIN_HELP)
@click.option(
    "--listen",
    default="127.0.0.1:8787",
    show_default=True,
    help="HOST:PORT the page listens on (127.0.0.1: this machine only; 0.0.0.0 shares it; port 0: any free one).",
)
@click.option("--every", type=click.FloatRange(1, 600), default=5.0, show_default=True, help="Seconds between reads.")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds to wait for the swarm.")
@click.option("--open", "open_browser", is_flag=True, help="Also open the page in a browser, if there is one.")
@click.pass_obj
def dashboard(state: CliState, run_id, join, listen, every, timeout, open_browser) -> None:
    """Serve the swarm's page (jobs, loss curves, samples, partition) until Ctrl-C; trains nothing.

    \b
    Every checkpoint manifest and sample it shows is fetched and verified like any content; the page is
    read from a snapshot refreshed in the background, so a slow browser never slows the swarm.
    """
    from paris_node.content.blockstore import Blockstore
    from paris_node.content.exchange import ExchangeService
    from paris_node.dashboard.server import parse_listen
    from paris_node.dashboard.service import Dashboard, open_in_browser
    from paris_node.node.session import choose_target, learn_run, obtain_run, reader_dht
    from paris_node.swarm.membership import witnesses_of

    host, port = parse_listen(listen)
    home = state.home.ensure()
    target = choose_target(home, run_id, join)
    store = Blockstore(home.blocks_dir)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with reader_dht(target.join, timeout) as dht, ExchangeService(dht, store, serve=False) as exchange:
        run = learn_run(dht, target)
        for note in target.notes:
            say(f"using {note}")
        manifest = obtain_run(home, run, dht, exchange)
        witnesses = witnesses_of(target.join)  # the peers joined: their watch names the owners (claims.attested)
        board = Dashboard(home, manifest, dht, exchange, store, host, port, every_s=every, witnesses=witnesses)
        board.start()
        try:
            click.echo(f"dashboard of run {manifest.run_id} at {board.url}  (Ctrl-C to stop)")
            if open_browser:
                open_in_browser(board.url)
            stop.wait()
        finally:
            board.stop()
    click.echo("stopped")


def print_page_url(state: CliState) -> None:
    """`paris-node status --open`: print (and, on a desktop, open) the page a node of this home serves."""
    from paris_node.dashboard.service import open_in_browser, running_url

    url = running_url(state.home)
    click.echo(url)
    open_in_browser(url)
