"""`paris-node fetch`: the latest *verified* checkpoints of a run from the swarm into the local cache.

Which run and swarm: `--run` / `--join`, else what the home remembers (`swarm.json`), else the run the joined
swarm trains (node/session.py). Bad targets are refused before joining when the run is held locally. Only one
fetch writes a home's cache at a time (`cache.lock`); a node running on the same home keeps running.
"""

from __future__ import annotations

import json
import sys
import time

import click

from paris_node.cli import main
from paris_node.cli.common import CliState, home_option, say
from paris_node.errors import UsageError
from paris_node.records import ROUTER_JOB, job_of_expert

RUN_HELP = "Run id (CID of its manifest) or 'demo'.  [default: this home's run (swarm.json), else the swarm's]"
JOIN_HELP = "Multiaddr of a swarm member (repeatable).  [default: this home's swarm (swarm.json)]"


def _check_targets(targets: tuple[str, ...], fetch_all: bool) -> None:
    if not fetch_all and not targets:
        raise UsageError("say what to fetch: --all, an expert number such as 0, or 'router'")
    for t in targets:
        if t != "router" and not t.isdigit():
            raise UsageError(f"fetch {t!r}: give expert numbers (0, 1, ...) and/or 'router', or --all")


def jobs_wanted(targets: tuple[str, ...], fetch_all: bool, experts: int) -> list[str]:
    every = [job_of_expert(k) for k in range(experts)] + ([ROUTER_JOB] if experts > 1 else [])
    if fetch_all:
        return every
    jobs = []
    for t in targets:
        job = ROUTER_JOB if t == "router" else job_of_expert(int(t))
        if job not in every:
            have = f"experts 0..{experts - 1}" + (" and 'router'" if experts > 1 else " (no router: one expert)")
            raise UsageError(f"fetch {t!r}: the run has {have}")
        jobs.append(job)
    return jobs


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


@main.command()
@home_option
@click.argument("targets", nargs=-1)
@click.option("--all", "fetch_all", is_flag=True, help="Every expert and the router.")
@click.option("--run", "run_id", default=None, help=RUN_HELP)
@click.option("--join", multiple=True, metavar="MADDR", help=JOIN_HELP)
@click.option("--allow-partial", is_flag=True, help="Exit 0 even if a job's announced checkpoints all fail checks.")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds to wait for the swarm.")
@click.option("--json", "as_json", is_flag=True, help="Print the verdicts as JSON on stdout.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Per-job progress bar on stderr.")
@click.pass_obj
def fetch(state: CliState, targets, fetch_all, run_id, join, allow_partial, timeout, as_json, progress) -> None:
    """Fetch the latest *verified* checkpoints of the run into the local cache.

    \b
    Verified: signed; signer allowed by the run; every byte matches its CID and sha256; safetensors that fit
    the run's model config; no rollback below what is held; and on open runs, a held-out validation loss,
    computed here, within the run's threshold. Rejected checkpoints are listed with the reason.
    TARGETS: expert numbers and/or 'router' (or --all). Exit 1 if nothing could be fetched, or if a job's
    announced checkpoints were all rejected (unless --allow-partial); jobs nobody has published yet are listed.
    """
    from paris_node.node.homestate import cache_lock, read_swarm
    from paris_node.node.session import check_run_arg, choose_target, held_run

    _check_targets(targets, fetch_all)
    home = state.home.check()
    known = check_run_arg(run_id) if run_id is not None else read_swarm(home).run
    held = held_run(home, known) if known else None
    if held is not None:
        jobs_wanted(targets, fetch_all, held.experts)  # a bad job id fails before joining the swarm
    target = choose_target(home, run_id, join)
    for note in target.notes:
        say(f"using {note}")
    home.ensure()
    with cache_lock(home, on_wait=lambda pid: say(f"waiting for another fetch on this home (PID {pid}) to finish")):
        run, rows = _fetch(home, target, targets, fetch_all, timeout, progress)
    _print_verdicts(rows, run, as_json)
    missing = [r for r in rows if r["verdict"] != "ok"]
    rejected = sorted({r["job"] for r in missing if r["verdict"] != "none"} - {r["job"] for r in rows if r["ok"]})
    untrained = [r["job"] for r in missing if r["verdict"] == "none"]
    if untrained:
        say(f"not published yet: {', '.join(untrained)} (nobody in the swarm announced a checkpoint)")
    if not any(r["ok"] for r in rows):
        say("nothing fetched: no job has a verified checkpoint yet")
        sys.exit(1)
    if rejected and not allow_partial:
        say(f"no verified checkpoint for: {', '.join(rejected)} (use --allow-partial to accept)")
        sys.exit(1)


def _fetch(home, target, targets, fetch_all, timeout, progress) -> tuple[str, list[dict]]:
    from tqdm import tqdm

    from paris_node.content.blockstore import Blockstore
    from paris_node.content.exchange import ExchangeService
    from paris_node.node.fetcher import CheckpointFetcher
    from paris_node.node.session import creator_peers, learn_run, obtain_run, reader_dht
    from paris_node.node.verify import Candidate
    from paris_node.swarm.membership import peers_providing, read_history, read_pointers, witnesses_of

    store = Blockstore(home.blocks_dir)
    with reader_dht(target.join, timeout) as dht, ExchangeService(dht, store, serve=False) as exchange:
        notes = len(target.notes)
        run = learn_run(dht, target)
        for note in target.notes[notes:]:
            say(f"using {note}")
        manifest = obtain_run(home, run, dht, exchange, timeout_s=timeout)
        jobs = jobs_wanted(targets, fetch_all, manifest.experts)
        got = {"bytes": 0}
        bar = tqdm(total=len(jobs), unit="job", file=sys.stderr, disable=not progress, leave=False, dynamic_ncols=True)

        def fetch_cid(cid: str, peers) -> None:
            stats = exchange.fetch(cid, list(peers), deadline_s=timeout * 5)
            got["bytes"] += stats.bytes_fetched
            rate = got["bytes"] / max(1e-3, time.monotonic() - t_all)
            bar.set_postfix_str(f"{human_bytes(got['bytes'])} at {human_bytes(rate)}/s")

        def providers(cid: str) -> list[str]:
            return peers_providing(dht, manifest.run_id, cid, also=creator_peers(manifest))

        fetcher = CheckpointFetcher(home, store, manifest, fetch=fetch_cid, providers=providers)
        # who holds which lease now, and what those owners vouch for: the eligibility evidence (node/selection.py)
        # trusting the peers joined for who owns what (their lease watch: swarm/claims.attested)
        everything = jobs_wanted([], True, manifest.experts)
        read_history(dht, manifest.run_id, everything, fetcher.history, witnesses=witnesses_of(target.join))
        rows: list[dict] = []
        t_all = time.monotonic()
        for job in jobs:
            bar.set_description(job)
            t0, b0 = time.monotonic(), got["bytes"]
            candidates = [Candidate(p) for p in read_pointers(dht, manifest.run_id, job)]
            accepted, verdicts = fetcher.fetch_job(job, candidates)
            took, size = round(time.monotonic() - t0, 2), got["bytes"] - b0
            rows += [_row(v, size if v is accepted else 0, took if v is accepted else None) for v in verdicts]
            if not verdicts:
                rows.append(_row(None, 0, None, job=job))
            bar.update(1)
        bar.close()
    return manifest.run_id, rows


def _row(v, size: int, seconds: float | None, job: str | None = None) -> dict:
    if v is None:
        return {
            "job": job, "step": -1, "signer": "-", "cid": "-", "val_loss": None, "ok": False,
            "verdict": "none", "reason": "nobody announced a checkpoint", "code": "unannounced", "bytes": 0,
            "seconds": None,
        }  # fmt: skip
    return {
        "job": v.job,
        "step": v.step,
        "signer": v.signer,
        "cid": v.manifest_cid,
        "val_loss": v.val_loss,
        "ok": v.ok,
        "verdict": "ok" if v.ok else "rejected",
        "reason": v.reason,
        "code": v.code,  # paris_node/verdicts.REASON_CODES; protocol/selection.md lists them
        "bytes": size,
        "seconds": seconds,
    }


def _print_verdicts(rows: list[dict], run_id: str, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"run": run_id, "checkpoints": rows}, indent=2))
        return
    click.echo(f"run {run_id}")
    click.echo(f"{'job':10} {'step':>7} {'signer':18} {'manifest CID':24} {'val loss':>9} {'fetched':>9}  verdict")
    for r in rows:
        loss = "-" if r["val_loss"] is None else f"{r['val_loss']:.4g}"
        step = "-" if r["step"] < 0 else str(r["step"])
        size = human_bytes(r["bytes"]) if r["bytes"] else "-"
        if r["ok"]:
            verdict = "ok" + (f" ({r['reason']})" if r["reason"] else "")
        else:
            verdict = r["reason"] if r["verdict"] == "none" else f"REJECTED: {r['reason']}"
        signer, cid = r["signer"][:16], r["cid"][:22]
        click.echo(f"{r['job']:10} {step:>7} {signer:18} {cid:24} {loss:>9} {size:>9}  {verdict}")
