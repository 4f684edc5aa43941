"""Training samples/s of an expert node in a live swarm against the bare trainer with no swarm, in one run.

The node side is the real thing, in this process: `paris_node.node.start.Node` runs `swarm.runner.run_node`
(a one-node hivemind DHT with its p2pd, the block exchange, claims and lease renewal, status records) and the
node's `JobRunner` trains expert 0 of the built-in demo run, publishing a checkpoint every `--publish-every` steps
in the background (validation score, content store, signed record, provider announcements).
The bare side calls `paris_node.training.trainer.train` with the *same* TrainConfig object the node built, the same
expert config, dataset, text encoder and codec, and publish=None (checkpoints are still written to disk).

Throughput is measured from the trainer's own windows (samples / wall time between log points, so the cost of
writing checkpoints and of the background publishing lands in the windows after them), over the steps after
`--warmup`, identically on both sides. Phases alternate bare, node, bare, node, bare (load from other processes on
a shared machine hits both alike); the ratio is median(node) / median(bare). The training thread's CPU time for the
whole `train` call is printed too (robust to other processes' load, blind to contention). Same torch thread count
on both sides; every node phase uses a fresh home, so it never resumes.

    python scripts/bench_node.py                         # small preset (the demo run), 1 thread
    python scripts/bench_node.py --steps 200 --publish-every 20
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

import paris_node.node.job as job_module  # noqa: E402
from paris_node.home import Home  # noqa: E402
from paris_node.node.job import TrainOptions  # noqa: E402
from paris_node.node.start import Node  # noqa: E402
from paris_node.swarm.runner import StopSignal, SwarmOptions  # noqa: E402
from paris_node.training.trainer import TrainResult, train  # noqa: E402


def samples_per_s(result: TrainResult, batch: int, warmup: int) -> float:
    """Samples over wall seconds of the trainer's metering windows that start at or after step `warmup`."""
    samples, seconds, prev = 0, 0.0, 0
    for h in result.history:
        n = (int(h["step"]) - prev) * batch
        if prev >= warmup and n > 0:
            samples += n
            seconds += n / h["samples_per_s"]
        prev = int(h["step"])
    if not samples:
        raise SystemExit(f"no metering window after step {warmup}: raise --steps")
    return samples / seconds


def run_node_phase(home: Path, args: argparse.Namespace) -> tuple[TrainResult, tuple, float]:
    """Expert 0 of the demo run in a live one-node swarm; returns its TrainResult and the trainer's inputs."""
    captured: dict = {}
    done = threading.Event()

    def recording_train(cfg, ecfg, dataset, text, codec, out_dir, publish, resume, stop):
        captured["inputs"] = (cfg, ecfg, dataset, text, codec)
        captured["publish"] = publish
        try:
            t0 = time.thread_time()
            captured["result"] = train(cfg, ecfg, dataset, text, codec, out_dir, publish, resume, stop)
            captured["cpu_s"] = time.thread_time() - t0
            return captured["result"]
        finally:
            done.set()

    job_module.train = recording_train  # the node's JobRunner calls `train` through its module
    opts = node_options(args)
    stop = StopSignal()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            Node(Home.resolve(home), opts).run(SwarmOptions(home=Home.resolve(home), run="demo", claim=0), stop)
        except BaseException as e:  # surfaced below
            errors.append(e)
            done.set()

    t = threading.Thread(target=target, name="node", daemon=True)
    t.start()
    done.wait(timeout=1800)
    stop.set()
    t.join(timeout=120)
    job_module.train = train
    if errors:
        raise errors[0]
    if "result" not in captured:
        raise SystemExit("the node did not finish training within 30 minutes")
    return captured["result"], captured["inputs"], captured["cpu_s"]


def trainer_inputs(home: Home, args: argparse.Namespace) -> tuple:
    """What the node's JobRunner gives `train` for expert 0 of the demo run (built here, as the node does)."""
    from paris_node.content.blockstore import Blockstore
    from paris_node.data.prepare import shard_path
    from paris_node.data.shards import ShardDataset
    from paris_node.models.presets import expert_preset
    from paris_node.models.text import build_text_encoder
    from paris_node.models.vae import LatentCodec, codec_spec
    from paris_node.node.job import JobRunner
    from paris_node.node.session import obtain_run

    m = obtain_run(home, "demo")
    cfg = JobRunner(home, Blockstore(home.blocks_dir), m, None, node_options(args)).train_config("expert/0")
    dataset = ShardDataset(shard_path(home, m.shards[0].train.cid))
    return (
        cfg,
        expert_preset(m.expert_preset),
        dataset,
        build_text_encoder(m.text_encoder),
        LatentCodec(codec_spec(m.latent_space)),
    )


def node_options(args: argparse.Namespace) -> TrainOptions:
    return TrainOptions(
        steps=args.steps,
        batch=args.batch,
        publish_every_steps=args.publish_every,
        device="cpu",
        progress=False,
        threads=args.threads,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=125)
    p.add_argument("--warmup", type=int, default=25, help="steps not measured (start-up, first checkpoint)")
    p.add_argument("--publish-every", type=int, default=25)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=2, help="node phases; phases alternate bare, node, bare, ...")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()

    with tempfile.TemporaryDirectory() as tmp:
        home = Home.resolve(Path(tmp) / "inputs").ensure()
        cfg, ecfg, dataset, text, codec = trainer_inputs(home, args)

        def bare(i: int) -> tuple[float, float]:
            t0 = time.thread_time()
            r = train(cfg, ecfg, dataset, text, codec, Path(tmp) / f"bare{i}", None, None, None)
            return samples_per_s(r, cfg.batch, args.warmup), time.thread_time() - t0

        def node(i: int) -> tuple[float, float]:
            result, inputs, cpu_s = run_node_phase(Path(tmp) / f"node{i}", args)  # a fresh home: nothing to resume
            if inputs[0].to_dict() != cfg.to_dict() or inputs[1] != ecfg:
                raise SystemExit(f"the node trained with other settings: {inputs[0]} / {inputs[1]}")
            if not result.published:
                raise SystemExit("the node published nothing")
            return samples_per_s(result, cfg.batch, args.warmup), cpu_s

        bares, nodes = [bare(0)], []
        print(f"bare trainer: {bares[-1][0]:.2f} samples/s", flush=True)
        for i in range(args.rounds):
            nodes.append(node(i))
            print(f"node in a live swarm: {nodes[-1][0]:.2f} samples/s", flush=True)
            bares.append(bare(i + 1))
            print(f"bare trainer: {bares[-1][0]:.2f} samples/s", flush=True)
    load_after = os.getloadavg()
    bare_sps, node_sps = statistics.median(b[0] for b in bares), statistics.median(n[0] for n in nodes)
    bare_cpu, node_cpu = statistics.median(b[1] for b in bares), statistics.median(n[1] for n in nodes)
    print(
        f"preset {ecfg.preset}, batch {cfg.batch}, {args.threads} torch thread(s), steps {args.steps} "
        f"(measured after step {args.warmup}), publish every {cfg.checkpoint_every} steps"
    )
    print(f"bare trainer (no swarm):  samples/s {' / '.join(f'{b[0]:.2f}' for b in bares)} (median {bare_sps:.2f})")
    print(f"node in a live swarm:     samples/s {' / '.join(f'{n[0]:.2f}' for n in nodes)} (median {node_sps:.2f})")
    print(f"ratio node / bare (wall samples/s, medians): {node_sps / bare_sps:.3f}   (goal >= 0.97)")
    print(
        f"training thread CPU s for the whole train() call: bare {bare_cpu:.1f}, node {node_cpu:.1f} "
        f"(ratio bare/node {bare_cpu / node_cpu:.3f})"
    )
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}; {time.strftime('%Y-%m-%d %H:%M')}")


if __name__ == "__main__":
    main()
