"""CLI commands for the swarm layer (registered on `main`): `start` (claim and hold a job) and `status`."""

from __future__ import annotations

import json
import signal

import click

from paris_node.cli import main
from paris_node.cli.common import CliState, home_option
from paris_node.errors import UsageError
from paris_node.swarm.runner import DEFAULT_LEASE_TTL_S, DEFAULT_SETTLE_S, StopSignal, SwarmOptions


def _claim(value: str) -> str | int:
    if value in ("auto", "router"):
        return value
    try:
        n = int(value)
    except ValueError:
        raise click.BadParameter("use auto, router or an expert number such as 0") from None
    if n < 0:
        raise click.BadParameter("expert numbers start at 0")
    return n


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise click.BadParameter("use HOST:PORT, e.g. 127.0.0.1:0 (local) or 0.0.0.0:31337 (public node)")
    return host.strip("[]"), int(port)


def swarm_options(f):
    """Options shared by every command that joins a swarm (start, status)."""
    f = click.option(
        "--run", "run_id", default="demo", show_default=True, help="Run id (CID of its manifest) or 'demo'."
    )(f)
    f = click.option("--join", multiple=True, metavar="MADDR", help="Multiaddr of a swarm member (repeatable).")(f)
    return f


@main.command()
@home_option
@swarm_options
@click.option("--claim", type=str, default="auto", show_default=True, help="auto | router | expert number N.")
@click.option("--listen", default="127.0.0.1:0", show_default=True, help="HOST:PORT p2pd listens on.")
@click.option("--announce", multiple=True, metavar="MADDR", help="Address others should dial (public/NAT).")
@click.option(
    "--lease-ttl",
    type=click.FloatRange(12, 600),
    default=DEFAULT_LEASE_TTL_S,
    show_default=True,
    help="Seconds a claim lives without renewal (renewed every TTL/3).",
)
@click.option(
    "--settle",
    type=click.FloatRange(0.5, 120),
    default=DEFAULT_SETTLE_S,
    show_default=True,
    help="Seconds to wait after claiming before re-reading and resolving races.",
)
@click.option("--steps", type=click.IntRange(1), default=None, help="Training steps (default: the run's).")
@click.option("--batch", type=click.IntRange(1), default=None, help="Batch size (default: the run's).")
@click.option(
    "--publish-every", type=click.IntRange(1), default=None, help="Publish a checkpoint every N steps (run's default)."
)
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N")
@click.option("--threads", type=click.IntRange(1), default=None, help="torch CPU threads for training.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="tqdm progress bar.")
@click.option(
    "--mirror-every",
    type=click.FloatRange(0),
    default=30.0,
    show_default=True,
    help="While standby, copy every job's latest verified checkpoint every N seconds (0: never).",
)
@click.pass_obj
def start(
    state: CliState,
    run_id,
    join,
    claim,
    listen,
    announce,
    lease_ttl,
    settle,
    steps,
    batch,
    publish_every,
    device,
    threads,
    progress,
    mirror_every,
) -> None:
    """Join (or start) a swarm, claim a job, train it and publish checkpoints until Ctrl-C.

    \b
    Without --join this node starts a new swarm and prints the command others use to join it.
    Without --run it trains the built-in demo run (built locally: the same run id on every machine).
    Ctrl-C / SIGTERM: publish a final checkpoint, release the lease, stop.
    """
    from paris_node.node.job import TrainOptions
    from paris_node.node.start import Node

    host, port = _listen(listen)
    options = SwarmOptions(
        home=state.home,
        run=run_id,
        claim=_claim(claim),
        join=tuple(join),
        host=host,
        port=port,
        announce=tuple(announce),
        lease_ttl_s=lease_ttl,
        settle_s=settle,
    )
    train = TrainOptions(
        steps=steps, batch=batch, publish_every_steps=publish_every, device=device, progress=progress, threads=threads
    )
    stop = StopSignal()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    Node(state.home, train, mirror_every_s=mirror_every).run(options, stop, on_event=_print_event)


def _print_event(name: str, data: dict) -> None:
    if name == "ready":
        click.echo(f"node {data['node_id']}\nlistening on:")
        for m in data["maddrs"]:
            click.echo(f"  {m}")
        click.echo(f"others join with:\n  {data['join']}")
    elif name == "standby":
        click.echo("standby: looking for a job to claim")
    elif name == "owner":
        click.echo(f"owner of {data['job']} (Ctrl-C to release it and stop)")
    elif name == "lost":
        click.echo(f"lost the lease on {data['job']}; looking again")
    elif name == "stopped":
        click.echo("released and stopped")


@main.command()
@home_option
@swarm_options
@click.option("--experts", type=click.IntRange(1, 1024), default=None, help="K, for a run not held locally.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds to wait for the swarm.")
@click.pass_obj
def status(state: CliState, run_id, join, experts, as_json, timeout) -> None:
    """Show who trains what: jobs, owners, steps, losses, checkpoints, standbys."""
    report = read_report(state.home, run_id, list(join), experts, timeout)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(format_text(report))


def read_report(home, run: str, join: list[str], experts: int | None, timeout: float = 30.0) -> dict:
    """Join as a short-lived reader and summarise leases, statuses and checkpoint pointers of the run."""
    from paris_node.node.session import obtain_run, reader_dht
    from paris_node.swarm import keys
    from paris_node.swarm.dht import dht_now_ms
    from paris_node.swarm.membership import read_leases, read_pointers, read_statuses
    from paris_node.swarm.report import swarm_report

    if not join:
        raise UsageError("status needs --join MADDR: the address a running node printed at start")
    if experts is None:  # K comes from the run manifest when this machine holds it (or it is the demo run)
        try:
            manifest = obtain_run(home.ensure(), run)
        except UsageError as e:
            raise UsageError(f"{e}; or give --experts K") from None
        run, experts = manifest.run_id, manifest.experts
    keys.check_run(run)
    jobs = keys.jobs_for(experts)
    with reader_dht(join, timeout) as dht:
        leases = read_leases(dht, run, jobs)
        statuses = read_statuses(dht, run)
        pointers = {job: read_pointers(dht, run, job) for job in jobs}
    return swarm_report(run, jobs, leases, statuses, pointers, dht_now_ms())


def format_text(report: dict) -> str:
    from paris_node.swarm.report import format_report

    return format_report(report)
