"""The work a node does once it owns a job: get the data, resume, train, publish. Plugged into `run_node`.

Reads top to bottom: shard(s) -> resume point (own work folder, else the swarm's latest verified checkpoint, else
the run's seed weights at step 0) -> trainer with the background publisher -> when the run's step budget is
reached, keep serving until stopped.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from paris_node.checkpoint import FOR_TRAINING, CheckpointFolder
from paris_node.content.blockstore import Blockstore
from paris_node.content.dag import missing_blocks
from paris_node.data.manifest import RunManifest
from paris_node.data.prepare import shard_path
from paris_node.data.shards import ShardDataset
from paris_node.errors import ParisError
from paris_node.home import Home
from paris_node.models.text import build_text_encoder
from paris_node.models.vae import LatentCodec, codec_spec
from paris_node.node import cache
from paris_node.node.evaluate import score_checkpoint
from paris_node.node.fetcher import (
    CheckpointFetcher,
    copy_checkpoint,
    expert_index,
    run_expert_config,
    run_router_config,
)
from paris_node.node.publish import CheckpointPublisher, published_manifest
from paris_node.node.verify import Candidate
from paris_node.records import ROUTER_JOB
from paris_node.sampling.preview import SampleRenderer, fixed_prompts
from paris_node.training.router_trainer import LabelledClusters, train_router
from paris_node.training.run_dir import latest_checkpoint
from paris_node.training.trainer import TrainConfig, train

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainOptions:
    """`paris-node start` training flags; None means: the run manifest's value."""

    steps: int | None = None
    batch: int | None = None
    publish_every_steps: int | None = None
    device: str = "auto"
    progress: bool = True
    threads: int | None = None


@dataclass(frozen=True)
class Resume:
    """Where training continues from, and the manifest CID it continues (the next checkpoint's `parent`)."""

    path: Path
    parent: str | None


class JobRunner:
    """`job_runner(job, stop, session)` for `swarm.runner.run_node`."""

    def __init__(self, home: Home, store: Blockstore, manifest: RunManifest, exchange, opts: TrainOptions):
        self.home, self.store, self.manifest, self.exchange, self.opts = home, store, manifest, exchange, opts
        self._fetcher: CheckpointFetcher | None = None
        self._fetcher_session = None
        self.on_event = lambda name, data: None  # the node's events (`start --events json`): "took_over"

    # ------------------------------------------------------------------ helpers the steps use
    def providers(self, session, cid: str) -> list[str]:
        from paris_node.node.session import creator_peers
        from paris_node.swarm.membership import peers_providing

        return peers_providing(session.dht, self.manifest.run_id, cid, also=creator_peers(self.manifest))

    def fetcher(self, session) -> CheckpointFetcher:
        """Verify-and-install for this run over the node's exchange (takeover and standby mirroring share it)."""
        if self._fetcher is None or self._fetcher_session is not session:
            self._fetcher = CheckpointFetcher(
                self.home,
                self.store,
                self.manifest,
                fetch=lambda cid, peers: self.exchange.fetch(cid, list(peers), deadline_s=300),
                providers=lambda cid: self.providers(session, cid),
                history=session.membership.history,  # lease owners this node saw: who may publish what
            )
            self._fetcher_session = session
        return self._fetcher

    def ensure(self, session, cid: str, stop: threading.Event) -> Path | None:
        """A verified local file for a run CID (shard): local store first, else fetched from its providers.

        A swarm that cannot deliver yet (providers gone, stalled, lying) is retried with backoff while the job
        is held; None only if the node is told to stop first. Once held, this node announces it provides it.
        """
        return shard_path(self.home, cid) if self.hold(session, cid, stop) else None

    def hold(self, session, cid: str, stop: threading.Event) -> bool:
        """Every block of a run CID in the local store (fetched, verified, pinned, announced); False if stopped."""
        self.store.pin(cid)  # pinned before fetching, so a gc cannot take blocks mid-fetch
        backoff = 2.0
        while missing_blocks(self.store, cid):
            try:
                self.exchange.fetch(cid, self.providers(session, cid), deadline_s=600)
            except (ParisError, TimeoutError) as e:
                log.warning("could not fetch %s yet (%s); retrying in %.0f s", cid, e, backoff)
                if stop.wait(backoff):
                    return False
                backoff = min(backoff * 2, 60.0)
        session.announcer.provide([cid])
        return True

    def train_config(self, job: str) -> TrainConfig:
        t = self.manifest.training
        return TrainConfig(
            steps=self.opts.steps or int(t["steps"]),
            batch=self.opts.batch or int(t["batch"]),
            lr=float(t["lr"]),
            ema=float(t["ema"]),
            caption_dropout=float(t.get("caption_dropout", 0.1)),
            checkpoint_every=self.opts.publish_every_steps or int(t["publish_every_steps"]),
            seed=self.manifest.seed + (0 if job == ROUTER_JOB else expert_index(job)),
            device=self.opts.device,
            progress=self.opts.progress,
            log_every=10,
        )

    def resume_point(self, session, job: str, out_dir: Path) -> Resume | None:
        """This node's own latest checkpoint, else the best verified one any holder serves (takeover), else None.

        A takeover fetches the `state` role too, so training continues exactly; the fetcher asks the pointer's
        signer and every announced provider of the manifest (readers, standbys, a former owner), so a replica
        serves it when its owner has gone.
        """
        own = latest_checkpoint(out_dir)
        if own is not None:
            log.info("%s: resuming from this node's checkpoint %s", job, own)
            return Resume(own, published_manifest(own))
        from paris_node.swarm.membership import read_pointers

        try:
            pointers = read_pointers(session.dht, self.manifest.run_id, job)
        except Exception as e:
            log.warning("%s: could not read checkpoint pointers (%s); starting from scratch", job, e)
            return None
        if not pointers:
            return None
        fetcher = self.fetcher(session)
        accepted, verdicts = fetcher.fetch_job(job, [Candidate(p) for p in pointers], roles=FOR_TRAINING)
        for v in verdicts:
            if not v.ok:
                log.info("%s: not resuming from step %d by %s: %s", job, v.step, v.signer[:16], v.reason)
        held = cache.read_installed(self.home, self.manifest.run_id, job)
        if accepted is None:  # the newest is gone with its owner: the copy this node holds, if intact
            if held is None or not fetcher.held_intact(job, FOR_TRAINING):
                return None
        elif held is None or held.manifest_cid != accepted.manifest_cid:
            return None
        cached = CheckpointFolder(cache.job_dir(self.home, self.manifest.run_id, job))
        if not cached.has_state:
            log.warning("%s: the latest checkpoint has no training state; starting from scratch", job)
            return None
        log.info("%s: taking over from step %d (checkpoint %s)", job, held.step, held.manifest_cid)
        self.on_event("took_over", {"job": job, "step": held.step, "cid": held.manifest_cid})
        for cid in held.cids():  # a verified copy is served: the previous owner may be waiting for a holder
            self.store.pin(cid)
        session.announcer.provide([held.manifest_cid], vouch=True)
        out_dir.mkdir(parents=True, exist_ok=True)
        return Resume(copy_checkpoint(cached.path, out_dir / f"takeover-{held.step:08d}"), held.manifest_cid)

    def seed_point(self, session, job: str, out_dir: Path, cfg: TrainConfig, stop: threading.Event) -> Resume | None:
        """The run's seed weights for `job` (`init --init-from`) as a step-0 starting point, or None (no seed).

        The weights come by CID from the store or the swarm (verified block by block), so every node starts
        from the same bytes; the trainer resumes from a folder whose model and EMA are the seed and whose
        optimizer is fresh. The first checkpoint has no parent: the seed is named by the run manifest.
        """
        ref = self.manifest.seed_of(job)
        if ref is None or not self.hold(session, ref.cid, stop):
            return None
        from paris_node.checkpoint.seed import start_checkpoint
        from paris_node.content.dag import export_file

        if job == ROUTER_JOB:
            kind, model_cfg = "router", run_router_config(self.manifest).to_dict()
        else:
            kind, model_cfg = "expert", run_expert_config(self.manifest).to_dict()
        out_dir.mkdir(parents=True, exist_ok=True)
        weights = out_dir / f".seed-{ref.cid}.safetensors"
        try:
            export_file(self.store, ref.cid, weights)
            path = start_checkpoint(weights, out_dir / "seed", kind, model_cfg, cfg.lr, cfg.weight_decay)
        finally:
            weights.unlink(missing_ok=True)
        log.info("%s: no checkpoint yet; starting from the run's seed weights %s at step 0", job, ref.cid)
        return Resume(path, None)

    # ------------------------------------------------------------------ the job
    def __call__(self, job: str, stop: threading.Event, session) -> None:
        if self.opts.threads:
            torch.set_num_threads(self.opts.threads)
        m, announcer = self.manifest, session.announcer
        role = "router" if job == ROUTER_JOB else "expert"
        announcer.set_status(role=role, job=job, step=0)
        # announce only what this node holds whole (the run's creator holds every shard)
        announcer.provide([cid for cid in (m.run_id, *m.cids()) if not missing_blocks(self.store, cid)])

        # ---- data: each expert reads only its own cluster; the router reads every cluster
        ks = range(m.experts) if job == ROUTER_JOB else [expert_index(job)]
        paths = [self.ensure(session, c, stop) for k in ks for c in (m.shards[k].train.cid, m.shards[k].val.cid)]
        if stop.is_set() or None in paths:
            return
        train_sets = [ShardDataset(p) for p in paths[0::2]]
        val_sets = [ShardDataset(p) for p in paths[1::2]]

        # ---- resume (or start from the run's seed weights)
        cfg = self.train_config(job)
        out_dir = self.home.work_dir / m.run_id / cache.job_dirname(job)
        resume = self.resume_point(session, job, out_dir)
        if resume is None and m.seed_of(job) is not None:
            resume = self.seed_point(session, job, out_dir, cfg, stop)
            if resume is None:  # told to stop while fetching the seed: not a reason to train from scratch
                return
        parent = None if resume is None else resume.parent
        start = None if resume is None else resume.path

        # ---- train, publishing in the background
        codec = LatentCodec(codec_spec(m.latent_space))

        text = None if job == ROUTER_JOB else build_text_encoder(m.text_encoder)

        def score(ckpt: Path) -> dict[str, float]:  # the same score every fetcher computes
            s = score_checkpoint(ckpt, val_sets, router=job == ROUTER_JOB, text_encoder=text)
            return {"val_loss": s.loss, "val_ratio": s.ratio}

        # experts draw a few fixed-prompt samples per checkpoint, published with it (off the training loop)
        sample = None if text is None else SampleRenderer(fixed_prompts(val_sets[0].captions), text, codec)
        publisher = CheckpointPublisher(
            self.store,
            session.identity,
            m.run_id,
            job,
            announcer,
            m.cid_profile,
            score=score,
            parent=parent,
            sample=sample,
        )
        if job == ROUTER_JOB:
            rcfg = run_router_config(m)
            result = train_router(cfg, rcfg, LabelledClusters(train_sets), codec, out_dir, publisher, start, stop)
        else:
            result = train(cfg, run_expert_config(m), train_sets[0], text, codec, out_dir, publisher, start, stop)
        announcer.set_status(step=result.step)
        if sample is not None:
            sample.close()
        if not stop.is_set():
            log.info("%s: reached step %d (the run's budget); serving checkpoints until stopped", job, result.step)
            stop.wait()
