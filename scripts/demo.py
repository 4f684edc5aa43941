"""The local swarm demo: K expert processes + a router process train and publish, then fetch + sample to PNGs.

On one 2-core machine in about 15 minutes (`scripts/demo` sets up .venv and runs this):

1. start node 0 (it starts the swarm; its `ready` event names its address), then nodes 1..K which `--join` it;
   each claims a job (`--claim auto`), trains with one torch thread and publishes a checkpoint every
   `--publish-every` steps;
2. print every job's step and losses every ~30 s (from the nodes' `--events json` stream; logs in OUT/logs/);
3. once every job has published step `--steps` (or the training budget `--train-minutes` is spent), a fresh home
   runs `paris-node fetch --all` against the swarm (verified checkpoints only), and the nodes are stopped;
4. `paris-node sample` for a few prompts (top-2 routing; top-1 and full for the first prompt) and a loss-curve
   PNG per job (drawn with PIL from the published losses) into OUT/.

Every process started here runs in its own process group and is stopped on exit, Ctrl-C or error (SIGTERM,
then SIGKILL after a timeout).

    python scripts/demo.py                 # the built-in demo run (small preset, 4 experts + router)
    python scripts/demo.py --quick         # ~3 min smoke run: tiny presets, few steps
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw

from paris_node.procs import CLI, ENV, NodeProc, ProcGroup

ROOT = Path(__file__).resolve().parent.parent
# Only the dataset's vocabulary: `shapes` captions are "a COLOUR SHAPE on a COLOUR background".
PROMPTS = [
    "a red circle on a blue background",
    "a green square on a white background",
    "a yellow triangle on a black background",
    "a white cross on a purple background",
]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=None, help="training steps per job (default 600; --quick: 40)")
    p.add_argument("--publish-every", type=int, default=None, help="publish every N steps (default 50; --quick: 10)")
    p.add_argument("--train-minutes", type=float, default=None, help="training budget (default 11; --quick: 3)")
    p.add_argument("--out", type=Path, default=ROOT / "demo-out", help="output folder (default: demo-out/)")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny presets, few steps, ~3 minutes")
    p.add_argument("--sample-steps", type=int, default=None, help="Euler steps per image (default: 50; --quick: 10)")
    p.add_argument("--keep-running", action="store_true", help="leave the swarm running at the end (Ctrl-C stops)")
    a = p.parse_args()
    a.steps = a.steps or (40 if a.quick else 600)
    a.publish_every = a.publish_every or (10 if a.quick else 50)
    a.train_minutes = a.train_minutes or (3.0 if a.quick else 11.0)
    a.sample_steps = a.sample_steps or (10 if a.quick else 50)
    return a


def say(msg: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def cli(*args: str) -> list[str]:
    return [*CLI, *args]


# ---------------------------------------------------------------------------------------------- events
def wait_for_address(node: NodeProc, timeout: float = 180.0) -> str:
    """The node's 127.0.0.1 address, from its `ready` event."""
    ready = node.wait_for("ready", time.monotonic() + timeout)
    return next(m for m in ready["maddrs"] if "/ip4/127.0.0.1/" in m)


@dataclass
class JobLog:
    node: str
    points: list[dict] = field(default_factory=list)  # {"step", "cid", "train_loss", "val_loss", ...} per publish


def read_jobs(nodes: list[NodeProc]) -> dict[str, JobLog]:
    """job -> its owner's published checkpoints, from the nodes' `claimed` and `published` events."""
    jobs: dict[str, JobLog] = {}
    for node in nodes:
        node.drain()
        for ev in node.history:
            if ev["event"] == "claimed":
                jobs.setdefault(ev["job"], JobLog(node.name)).node = node.name
            elif ev["event"] == "published":
                point = {"step": ev["step"], "cid": ev["cid"], **ev.get("metrics", {})}
                jobs.setdefault(ev["job"], JobLog(node.name)).points.append(point)
    return dict(sorted(jobs.items(), key=lambda kv: (kv[0] == "router", kv[0])))


def progress_table(jobs: dict[str, JobLog]) -> str:
    rows = [f"  {'job':10} {'node':6} {'step':>5} {'train loss':>10} {'val loss':>9} {'samples/s':>9}"]
    for job, j in jobs.items():
        last = j.points[-1] if j.points else {}
        rows.append(
            f"  {job:10} {j.node:6} {last.get('step', 0):>5} {_num(last.get('train_loss')):>10} "
            f"{_num(last.get('val_loss')):>9} {_num(last.get('samples_per_s'), 1):>9}"
        )
    return "\n".join(rows)


def _num(v: float | None, digits: int = 4) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


# ---------------------------------------------------------------------------------------------- loss curves
def loss_curve(job: str, points: list[dict], path: Path, size: tuple[int, int] = (640, 400)) -> Path:
    """Train and validation loss against step, drawn with PIL (matplotlib is not a dependency)."""
    w, h = size
    left, right, top, bottom = 64, 16, 36, 44
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    d.text((left, 10), f"{job}: loss per published checkpoint", fill="black")
    series = {
        k: [(p["step"], p[k]) for p in points if k in p]
        for k, colour in (("train_loss", "#1f77b4"), ("val_loss", "#d62728"))
    }
    values = [v for s in series.values() for _, v in s]
    steps = [p["step"] for p in points]
    d.rectangle([left, top, w - right, h - bottom], outline="black")
    if values and steps:
        x0, x1 = 0, max(steps) or 1
        y0, y1 = min(values), max(values)
        pad = (y1 - y0) * 0.05 or 0.05
        y0, y1 = y0 - pad, y1 + pad

        def xy(step: float, v: float) -> tuple[float, float]:
            return (
                left + (step - x0) / (x1 - x0) * (w - left - right),
                h - bottom - (v - y0) / (y1 - y0) * (h - top - bottom),
            )

        for i in range(5):  # ticks
            v = y0 + (y1 - y0) * i / 4
            _, y = xy(x0, v)
            d.line([left - 4, y, left, y], fill="black")
            d.text((4, y - 6), f"{v:.3f}", fill="black")
            s = x0 + (x1 - x0) * i / 4
            x, _ = xy(s, y0)
            d.line([x, h - bottom, x, h - bottom + 4], fill="black")
            d.text((x - 10, h - bottom + 8), f"{s:.0f}", fill="black")
        d.text(((w - left) // 2 + left - 12, h - 18), "step", fill="black")
        for s, colour in zip(series.values(), ("#1f77b4", "#d62728"), strict=True):
            pts = [xy(st, v) for st, v in s]
            if len(pts) > 1:
                d.line(pts, fill=colour, width=2)
            for x, y in pts:
                d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
        for i, (name, colour) in enumerate((("train loss", "#1f77b4"), ("val loss", "#d62728"))):
            y = top + 8 + 16 * i
            d.line([w - right - 110, y + 6, w - right - 90, y + 6], fill=colour, width=3)
            d.text((w - right - 84, y), name, fill="black")
    else:
        d.text((left + 10, top + 10), "no checkpoint published", fill="black")
    img.save(path)
    return path


# ---------------------------------------------------------------------------------------------- the demo
def make_run(args: argparse.Namespace, home: Path, logs: Path) -> str:
    """'demo' (built in, built by each node), or for --quick a tiny run created by node 0's `init`."""
    if not args.quick:
        return "demo"
    cmd = cli(
        "--home",
        str(home),
        "init",
        "--preset",
        "tiny",
        "--router-preset",
        "tiny",
        "--samples",
        "512",
        "--experts",
        "4",
    )
    cmd += ["--steps", str(args.steps), "--publish-every-steps", str(args.publish_every)]
    cmd += ["--val-loss-threshold", "10", "--name", "demo-quick", "--json"]
    out = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    (logs / "init.log").write_text(out.stdout + out.stderr)
    if out.returncode != 0:
        raise RuntimeError(f"paris-node init failed (see {logs / 'init.log'}):\n{out.stderr[-2000:]}")
    return json.loads(out.stdout)["run_id"]


def train_swarm(args: argparse.Namespace, swarm: ProcGroup, run: str, homes: Path, logs: Path, jobs: int) -> str:
    """Start the nodes, wait until every job published `args.steps` (or the budget is spent); returns the address."""
    common = ["start", "--run", run, "--claim", "auto", "--no-progress", "--threads", "1", "--listen", "127.0.0.1:0"]
    common += ["--steps", str(args.steps), "--publish-every", str(args.publish_every)]
    common += ["--handoff-wait", "0"]  # the demo stops every node at once: nobody could take a hand-off
    common += ["--events", "json"]  # stdout: one JSON event per line; stderr (the node's log) also goes to the log
    first = start_node(swarm, "node0", homes, logs, common)
    maddr = wait_for_address(first)
    say(f"swarm started by node0 at {maddr}")
    for i in range(1, jobs):
        name = f"node{i}"
        start_node(swarm, name, homes, logs, [*common, "--join", maddr])
    say(
        f"started {jobs} nodes (logs in {logs}); training {args.steps} steps each, publishing every "
        f"{args.publish_every}, budget {args.train_minutes:g} min"
    )
    t0 = time.monotonic()
    deadline = t0 + args.train_minutes * 60
    next_report = t0 + 30
    while True:
        swarm.check_alive()
        state = read_jobs(swarm.procs)
        done = len(state) == jobs and all(j.points and j.points[-1]["step"] >= args.steps for j in state.values())
        if done or time.monotonic() >= deadline or time.monotonic() >= next_report:
            say(f"after {time.monotonic() - t0:.0f}s of training:\n{progress_table(state)}")
            next_report = time.monotonic() + 30
        if done:
            say(f"every job reached step {args.steps} in {time.monotonic() - t0:.0f}s")
            return maddr
        if time.monotonic() >= deadline:
            say(f"training budget of {args.train_minutes:g} min spent: going on with the latest checkpoints")
            return maddr
        time.sleep(2)  # the pace of the progress check: events are read as they come, nothing waits on this


def start_node(swarm: ProcGroup, name: str, homes: Path, logs: Path, args: list[str]) -> NodeProc:
    """`paris-node start` in its own process group; events on stdout, its log (stderr) beside them in NAME.log."""
    return swarm.start(name, cli("--home", str(homes / name), *args), logs / f"{name}.log", merge_stderr=False)


def fetch(run: str, home: Path, maddr: str, out: Path, logs: Path) -> list[dict]:
    cmd = cli("--home", str(home), "fetch", "--all", "--run", run, "--join", maddr, "--json", "--allow-partial")
    t0 = time.monotonic()
    res = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600)
    (logs / "fetch.log").write_text(res.stdout + res.stderr)
    if res.returncode != 0:
        raise RuntimeError(f"fetch failed (see {logs / 'fetch.log'}):\n{res.stderr[-2000:]}")
    report = json.loads(res.stdout)
    (out / "fetch.json").write_text(json.dumps(report, indent=2))
    rows = report["checkpoints"]
    say(f"fetch --all took {time.monotonic() - t0:.0f}s:")
    for r in rows:
        loss = "-" if r["val_loss"] is None else f"{r['val_loss']:.4f}"
        print(
            f"  {r['job']:10} step {r['step']:>5}  {r['cid'][:24]:26} val loss {loss:>8}  {r['verdict']}"
            + (f" ({r['reason']})" if r.get("reason") else ""),
            flush=True,
        )
    return rows


def sample_all(args: argparse.Namespace, run_id: str, home: Path, out: Path, logs: Path) -> list[Path]:
    """`paris-node sample` as the README prints it (top-2, every prompt), then `paris-node eval` twice: the demo
    prompts (4 samples each, rows labelled with prompt and routing, for top-2, top-1 and full) and 64 held-out
    caption combinations (top-2). Returns the PNGs; the scores are printed under them by `main`."""
    written = []
    with open(logs / "sample.log", "w") as log:
        png = out / "sample-top2.png"
        cmd = cli("--home", str(home), "sample", *PROMPTS, "--run", run_id, "--routing", "top2", "-n", "4")
        cmd += ["--steps", str(args.sample_steps), "--seed", "0", "--out", str(png), "--explain", "--no-progress"]
        _run_logged(cmd, log, "sample")
        written.append(png)
        evals = [
            ("eval-demo-prompts", ["--per-prompt", "4", *(a for p in PROMPTS for a in ("--prompt", p))], ALL_ROUTINGS),
            ("eval-held-out", ["-n", "64"], ("top2",)),
        ]
        for name, extra, routings in evals:
            cmd = cli("--home", str(home), "eval", "--run", run_id, *extra, "--steps", str(args.sample_steps))
            cmd += [a for r in routings for a in ("--routing", r)] + ["--out", str(out / name)]
            t0 = time.monotonic()
            _run_logged(cmd, log, "eval")
            say(f"eval {name}: {time.monotonic() - t0:.0f}s")
    shutil.copyfile(out / "eval-demo-prompts" / "samples.png", out / "samples.png")
    return [*written, out / "samples.png"]


ALL_ROUTINGS = ("top2", "top1", "full")


def _run_logged(cmd: list[str], log, what: str) -> None:
    res = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=900)
    log.write(f"$ {' '.join(cmd)}\n{res.stdout}{res.stderr}\n")
    log.flush()
    if res.returncode != 0:
        raise RuntimeError(f"{what} failed (see {log.name}):\n{res.stderr[-2000:]}")


def print_scores(out: Path) -> bool:
    """The evaluator's tables under the sample grid; True when top-2 meets the quality goal on both prompt sets."""
    met = True
    for name, title in (("eval-demo-prompts", "the demo prompts"), ("eval-held-out", "64 held-out captions")):
        report = json.loads((out / name / "report.json").read_text())
        print(f"\nevaluator scores, {title} ({out / name / 'report.md'}):", flush=True)
        print("  routing  background  colour  shape  all   FID(features)")
        for sc in report["scores"]:
            f = sc["fidelity"] or {}
            fid = "-" if sc["fid"] is None else f"{sc['fid']:.1f}"
            print(
                f"  {sc['strategy']:7} {f.get('background', 0):10.0%} {f.get('colour', 0):7.0%} "
                f"{f.get('shape', 0):6.0%} {f.get('all', 0):5.0%}   {fid}"
            )
            if sc["strategy"] == "top2":
                met &= f.get("background", 0) >= 0.95 and f.get("colour", 0) >= 0.85 and f.get("shape", 0) >= 0.80
    print(
        "quality goal (top-2: background >= 95%, colour >= 85%, shape >= 80%): " + ("met" if met else "NOT met"),
        flush=True,
    )
    return met


def main() -> int:
    args = parse_args()
    out = args.out.resolve()
    homes, logs = out / "nodes", out / "logs"
    shutil.rmtree(homes, ignore_errors=True)  # fresh nodes: nothing to resume from a previous demo
    shutil.rmtree(logs, ignore_errors=True)
    homes.mkdir(parents=True)
    logs.mkdir(parents=True)
    for old in [*out.glob("*.png"), *out.glob("*.explain.json"), out / "fetch.json"]:
        old.unlink(missing_ok=True)
    for old in out.glob("eval-*"):
        shutil.rmtree(old, ignore_errors=True)
    swarm = ProcGroup()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # SIGTERM runs the finally below, like Ctrl-C
    t_start = time.monotonic()
    try:
        run = make_run(args, homes / "node0", logs)
        experts = 4  # the demo run has 4; --quick asks init for 4
        say(f"run {run}: {experts} experts + router, {experts + 1} node processes, 1 torch thread each")
        maddr = train_swarm(args, swarm, run, homes, logs, experts + 1)
        t_train = time.monotonic()
        rows = fetch(run, homes / "reader", maddr, out, logs)
        if not args.keep_running:
            say("stopping the swarm (each node publishes a final checkpoint and releases its lease)")
            stop(swarm)
        run_id = next((p.name for p in (homes / "reader").joinpath("cache").glob("*") if p.name != "shards"), run)
        ok = {r["job"] for r in rows if r["verdict"] == "ok"}
        curves = [
            loss_curve(job, j.points, out / f"loss-{job.replace('/', '-')}.png")
            for job, j in read_jobs(swarm.procs).items()
        ]
        samples = sample_all(args, run_id, homes / "reader", out, logs) if ok else []
        say(f"done in {time.monotonic() - t_start:.0f}s (training {t_train - t_start:.0f}s)")
        print("\nsamples (rows: routing and prompt, 4 samples each; what the evaluator read under each):", flush=True)
        for p in samples:
            print(f"  {p}")
        if samples:
            print_scores(out)
        print("loss curves:")
        for p in curves:
            print(f"  {p}")
        print(f"logs: {logs}", flush=True)
        if args.keep_running:
            say(f"swarm still running at {maddr}; Ctrl-C to stop it")
            while True:
                swarm.check_alive()
                time.sleep(5)
        return 0 if samples else 1
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    finally:
        if any(node.proc.poll() is None for node in swarm.procs):
            say("stopping every process started")
        stop(swarm)


def stop(swarm: ProcGroup, timeout: float = 60.0) -> None:
    """SIGTERM every node (each stops its own DHT and p2pd after a last publish), then SIGKILL every group."""
    for name in swarm.stop(timeout):
        say(f"{name} did not stop within {timeout:.0f}s: SIGKILL")


if __name__ == "__main__":
    sys.exit(main())
