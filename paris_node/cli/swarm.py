"""CLI commands for the swarm layer (registered on `main`): `start` (claim and hold a job) and `status`.

`start` holds the home's node lock for its whole life (one node per home), records its swarm and run in
`<home>/swarm.json` once it is ready, and with `--events json` prints one JSON object per line on stdout.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading

import click

from paris_node.cli import main
from paris_node.cli.common import CliState, check_device, home_option, say
from paris_node.cli.node import JOIN_HELP
from paris_node.errors import UsageError
from paris_node.swarm.runner import DEFAULT_LEASE_TTL_S, DEFAULT_SETTLE_S, StopSignal, SwarmOptions

START_RUN_HELP = (
    "Run id (CID of its manifest) or 'demo'.  [default: this home's run (swarm.json / init); with --join, the "
    "run the swarm trains; else the demo run]"
)


def _claim(value: str) -> str | int:
    if value in ("auto", "router"):
        return value
    if not value.isdigit():
        raise UsageError(f"--claim {value!r}: use auto, router or an expert number such as 0")
    return int(value)


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host or int(port) > 65535:
        raise UsageError(f"--listen {value!r}: use HOST:PORT, e.g. 127.0.0.1:0 (local) or 0.0.0.0:31337 (public)")
    return host.strip("[]"), int(port)


def _check_joins(join: tuple[str, ...]) -> None:
    for maddr in join:
        if not maddr.startswith("/") or "/p2p/" not in maddr:
            raise UsageError(
                f"--join {maddr!r} is not a full address: copy the /ip4/.../p2p/12D3KooW... line a node printed"
            )


def _start_run(home, run_id: str | None, join: tuple[str, ...]) -> tuple[str | None, str]:
    """(run, why): None means learn the run from the joined swarm (falling back to the home's, then the demo)."""
    from paris_node.node.homestate import read_swarm
    from paris_node.node.session import check_run_arg

    if run_id is not None:
        return check_run_arg(run_id), "--run"
    remembered = read_swarm(home).run
    if join:
        return None, "learned from the swarm"
    if remembered is not None:
        return remembered, f"from {home.swarm_file}; --run to choose another"
    return "demo", "the built-in demo run; --run to train another"


def _check_claim(home, run: str | None, claim) -> None:
    """A bad --claim fails before joining when the run's jobs are known here (held locally or the demo)."""
    from paris_node.data.manifest import DEMO_RUN
    from paris_node.node.session import held_run
    from paris_node.swarm import keys
    from paris_node.swarm.membership import claim_target

    if run is None or claim == "auto":
        return
    m = held_run(home, run)
    experts = DEMO_RUN.experts if run == "demo" else (m.experts if m else None)
    if experts is not None:
        claim_target(claim, keys.jobs_for(experts, router=experts > 1))


@main.command()
@home_option
@click.option("--run", "run_id", default=None, help=START_RUN_HELP)
@click.option("--join", multiple=True, metavar="MADDR", help="Multiaddr of a swarm member (repeatable).")
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
@click.option("--steps", type=click.IntRange(1), default=None, help="Training steps.  [default: the run's]")
@click.option("--batch", type=click.IntRange(1), default=None, help="Batch size.  [default: the run's]")
@click.option(
    "--publish-every",
    type=click.IntRange(1),
    default=None,
    help="Publish a checkpoint every N steps.  [default: the run's publish_every_steps]",
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
@click.option(
    "--handoff-wait",
    type=click.FloatRange(0),
    default=60.0,
    show_default=True,
    help="On a clean exit, wait up to N s for another node to hold checkpoints only this one holds.",
)
@click.option(
    "--events",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one JSON object per line on stdout (ready, claimed, published with step and metrics, took_over, "
    "failed, released, ...).",
)
@click.option(
    "--dashboard",
    default=None,
    metavar="HOST:PORT",
    help="Also serve the swarm's page here, e.g. 127.0.0.1:8787 (port 0: any); see `paris-node status --open`.",
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
    handoff_wait,
    events,
    dashboard,
) -> None:
    """Join (or start) a swarm, claim a job, train it and publish checkpoints until Ctrl-C.

    \b
    Without --join this node starts a new swarm and prints the command others use to join it.
    Without --run it trains the run this home remembers (the one `init` created or it trained last), or with
    --join the run the swarm trains, else the built-in demo run (the same run id on every machine).
    One node per home: a second `start` on the same home is refused. Ctrl-C / SIGTERM: publish a final
    checkpoint, release the lease, stop.
    """
    from paris_node.dashboard.server import parse_listen
    from paris_node.node.homestate import node_lock
    from paris_node.node.job import TrainOptions
    from paris_node.node.start import Node

    # every check that needs no network comes first: a bad flag writes nothing and joins nothing
    claim_value = _claim(claim)
    host, port = _listen(listen)
    board = None if dashboard is None else parse_listen(dashboard)
    _check_joins(join)
    check_device(device, allow_auto=True)
    home = state.home.check()
    run, why = _start_run(home, run_id, join)
    _check_claim(home, run, claim_value)
    emit = _json_event if events == "json" else _print_event
    with node_lock(home.ensure()):
        if run is not None and events == "text":
            say(f"run: {run} ({why})")
        options = SwarmOptions(
            home=home,
            run=run or "demo",
            claim=claim_value,
            join=tuple(join),
            host=host,
            port=port,
            announce=tuple(announce),
            lease_ttl_s=lease_ttl,
            settle_s=settle,
        )
        train = TrainOptions(
            steps=steps, batch=batch, publish_every_steps=publish_every, device=device, progress=progress,
            threads=threads,
        )  # fmt: skip
        stop = StopSignal()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())

        def on_event(name: str, data: dict) -> None:
            if name == "ready":
                from paris_node.node.homestate import write_swarm

                write_swarm(home, run=data["run"], maddrs=data["maddrs"], peers=list(join), pid=os.getpid())
            emit(name, data)

        node = Node(home, train, mirror_every_s=mirror_every, on_event=on_event, dashboard=board)
        node.handoff_wait_s = handoff_wait
        node.run(options, stop, on_event=on_event, learn_run=run is None, fallback_run=_remembered(home))


def _remembered(home) -> str | None:
    from paris_node.node.homestate import read_swarm

    return read_swarm(home).run


_out = threading.Lock()
_JSON_NAMES = {"owner": "claimed", "stopped": "released"}


def _json_event(name: str, data: dict) -> None:
    from paris_node.swarm.dht import dht_now_ms

    with _out:
        sys.stdout.write(json.dumps({"event": _JSON_NAMES.get(name, name), "t_ms": dht_now_ms(), **data}) + "\n")
        sys.stdout.flush()


def _print_event(name: str, data: dict) -> None:
    if name == "ready":
        click.echo(f"node {data['node_id']}\nrun {data['run']}\nlistening on:")
        for m in data["maddrs"]:
            click.echo(f"  {m}")
        click.echo(f"others join with:\n  {data['join']}")
    elif name == "standby":
        click.echo("standby: looking for a job to claim")
    elif name == "owner":
        click.echo(f"owner of {data['job']} (Ctrl-C to release it and stop)")
    elif name == "took_over":
        click.echo(f"{data['job']}: took over from step {data['step']} ({data['cid']})")
    elif name == "failed":
        click.echo(f"{data['job']} failed: {data['error']}; lease released, retrying in {data['retry_s']:.0f} s")
    elif name == "lost":
        click.echo(f"lost the lease on {data['job']}; looking again")
    elif name == "stopped":
        click.echo("released and stopped")


@main.command()
@home_option
@click.option("--run", "run_id", default=None, help="Run id (CID of its manifest) or 'demo'.  [default: as fetch]")
@click.option("--join", multiple=True, metavar="MADDR", help=JOIN_HELP)
@click.option("--experts", type=click.IntRange(1, 1024), default=None, help="K, for a run not held locally.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON (numbers as numbers).")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds to wait for the swarm.")
@click.option("--open", "open_page", is_flag=True, help="Print the URL of this home's dashboard page (and open it).")
@click.pass_obj
def status(state: CliState, run_id, join, experts, as_json, timeout, open_page) -> None:
    """Show who trains what: jobs, owners, steps, losses, checkpoints and their age, standbys, failures."""
    if open_page:
        from paris_node.cli.dashboard import print_page_url

        return print_page_url(state)
    from paris_node.node.session import choose_target

    _check_joins(join)
    home = state.home.check()
    target = choose_target(home, run_id, join)
    for note in target.notes:
        say(f"using {note}")
    report = read_report(home, target, experts, timeout)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        from paris_node.swarm.report import format_report

        click.echo(format_report(report))


def read_report(home, target, experts: int | None, timeout: float = 30.0) -> dict:
    """Join as a short-lived reader and summarise leases, statuses and checkpoint pointers of the run."""
    from paris_node.content.blockstore import Blockstore
    from paris_node.content.exchange import ExchangeService
    from paris_node.node.session import learn_run, obtain_run, reader_dht
    from paris_node.swarm import keys
    from paris_node.swarm.dht import dht_now_ms
    from paris_node.swarm.membership import read_leases, read_pointers, read_providers, read_statuses, witnesses_of
    from paris_node.swarm.report import swarm_report

    with reader_dht(target.join, timeout) as dht:
        notes = len(target.notes)
        run = learn_run(dht, target)
        for note in target.notes[notes:]:
            say(f"using {note}")
        if experts is None:  # K from the run manifest: held here, the demo run, or fetched by CID from the swarm
            with ExchangeService(dht, Blockstore(home.ensure().blocks_dir), serve=False) as exchange:
                manifest = obtain_run(home, run, dht, exchange, timeout_s=timeout)
            run, experts = manifest.run_id, manifest.experts
        keys.check_run(run)
        jobs = keys.jobs_for(experts, router=experts > 1)
        leases = read_leases(dht, run, jobs, witnesses=witnesses_of(target.join))  # trusts the peers joined
        statuses = read_statuses(dht, run)
        # leases are judged live as of when they were read: the reads below take seconds when the run's keys are
        # flooded, long enough to make a live lease (renewed every few seconds) look expired
        now = dht_now_ms()
        pointers = {job: read_pointers(dht, run, job) for job in jobs}
        report = swarm_report(run, jobs, leases, statuses, pointers, now)
        # who holds each shown checkpoint: one lookup per row, not one per pointer (spam pointers are many)
        shown = {row["checkpoint"] for row in report["jobs"] if row["checkpoint"]}
        providers = {cid: read_providers(dht, run, cid) for cid in shown}
    return swarm_report(run, jobs, leases, statuses, pointers, now, providers=providers)
