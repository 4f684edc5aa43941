"""Find, download and verify checkpoints announced in the swarm; install the good ones in the cache.

Everything a peer says is checked before it is used (node/verify.py holds the rules): the pointer's
signature (already checked by the DHT reader), the publisher policy, anti-rollback, the manifest's signature
and agreement with the pointer, every file's bytes against its CID and sha256, the config against the run,
the weights as safetensors against the model (strict), and, on open runs, the held-out score computed here.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from safetensors import SafetensorError

from paris_node.content.blockstore import Blockstore
from paris_node.content.dag import export_file, iter_file
from paris_node.data.manifest import RunManifest
from paris_node.data.prepare import shard_path
from paris_node.data.shards import ShardDataset
from paris_node.errors import ParisError, RecordError, UsageError
from paris_node.home import Home
from paris_node.identity import peer_id_from_public, public_from_node_id
from paris_node.models.presets import ExpertConfig, RouterConfig, expert_preset, router_preset
from paris_node.node import cache
from paris_node.node.evaluate import Score, score_checkpoint
from paris_node.node.publish import sha256_file
from paris_node.node.verify import (
    Candidate,
    Rejected,
    Verdict,
    check_config,
    check_file,
    check_manifest,
    check_publisher,
    check_rollback,
    check_val_loss,
    order_candidates,
)
from paris_node.records import DOCUMENT_CAP, ROUTER_JOB, decode_record

log = logging.getLogger(__name__)

# fetch(root_cid, providers) -> None: brings a DAG into the store (ExchangeService.fetch in a node)
FetchFn = Callable[[str, Sequence[str]], object]


def expert_index(job: str) -> int:
    return int(job.split("/", 1)[1])


def run_expert_config(manifest: RunManifest) -> ExpertConfig:
    """The expert every job of this run trains: the run's preset with the run's text encoder."""
    return expert_preset(manifest.expert_preset, text_encoder=manifest.text_encoder)


def run_router_config(manifest: RunManifest) -> RouterConfig:
    return router_preset(manifest.router_preset, num_experts=manifest.experts)


def expected_config(manifest: RunManifest, job: str) -> dict:
    """What a checkpoint's config.json must say for `job` in this run (kind and full model config)."""
    if job == ROUTER_JOB:
        return {"kind": "router", "model": run_router_config(manifest).to_dict()}
    return {"kind": "expert", "model": run_expert_config(manifest).to_dict()}


def signer_peer(node_id: str) -> str:
    """A publisher's libp2p peer id: the same Ed25519 key, so the signer itself is always a provider to try."""
    return peer_id_from_public(public_from_node_id(node_id))


class CheckpointFetcher:
    """Verify-and-install for one run. `fetch` moves DAGs into the store; `providers` lists who has a CID."""

    def __init__(
        self,
        home: Home,
        store: Blockstore,
        manifest: RunManifest,
        fetch: FetchFn,
        providers: Callable[[str], list[str]] = lambda cid: [],
    ):
        self.home, self.store, self.manifest = home, store, manifest
        self._fetch, self._providers = fetch, providers
        self._datasets: dict[int, ShardDataset] = {}

    # ------------------------------------------------------------------ scoring
    def val_dataset(self, k: int) -> ShardDataset:
        if k not in self._datasets:
            cid = self.manifest.shards[k].val.cid
            self._fetch(cid, self._providers(cid))
            self._datasets[k] = ShardDataset(shard_path(self.home, cid))
        return self._datasets[k]

    def score(self, ckpt_dir: Path, job: str) -> Score:
        ks = range(self.manifest.experts) if job == ROUTER_JOB else [expert_index(job)]
        return score_checkpoint(ckpt_dir, [self.val_dataset(k) for k in ks], router=job == ROUTER_JOB)

    # ------------------------------------------------------------------ one candidate
    def _who(self, cid: str, signer: str) -> list[str]:
        """The signer first (it published the checkpoint), then whoever announces the checkpoint's manifest."""
        return list(dict.fromkeys([signer_peer(signer), *self._providers(cid)]))

    def verify(self, cand: Candidate, job: str, staging: Path, held: int | None) -> Verdict:
        ptr = cand.body
        verdict = Verdict(job=job, signer=cand.signer, step=ptr.step, manifest_cid=ptr.manifest_cid)
        try:
            check_publisher(self.manifest.publishers, cand.signer)
            check_rollback(ptr.step, held)
            self._get(ptr.manifest_cid, cand.signer, "manifest")
            data = b"".join(iter_file(self.store, ptr.manifest_cid))
            if len(data) > DOCUMENT_CAP:
                raise Rejected("manifest is over the document size cap")
            try:
                record = decode_record(data, kind="checkpoint", run=self.manifest.run_id)
            except RecordError as e:
                raise Rejected(f"manifest: {e}") from None
            except RecursionError:  # json nests by recursion: a peer's "[[[[..." must be a verdict, not a crash
                raise Rejected("manifest: JSON nested too deeply") from None
            body = check_manifest(cand.pointer, record, self.manifest.run_id, job)
            for name, meta in sorted(body.files.items()):
                self._get(meta["cid"], cand.signer, name, providers_of=ptr.manifest_cid)
                out = staging / name
                export_file(self.store, meta["cid"], out)  # re-verifies every block while writing
                check_file(name, sha256_file(out), out.stat().st_size, meta)
            try:
                config = json.loads((staging / "config.json").read_text())
            except (ValueError, RecursionError) as e:
                raise Rejected(f"config.json is not JSON: {e}") from None
            check_config(config, expected_config(self.manifest, job))
            try:
                score = self.score(staging, job)
            except UsageError as e:  # weights that do not fit the config
                raise Rejected(str(e)) from None
            except SafetensorError as e:  # not safetensors at all (a pickle, garbage): never loaded any other way
                raise Rejected(f"model.safetensors is not a safetensors file: {e}") from None
            verdict.val_loss = score.loss
            verdict.extra = {"baseline": score.baseline, "ratio": score.ratio, "manifest": data.decode()}
            if self.manifest.publishers == "open":
                threshold = self.manifest.val_loss_threshold
                check_val_loss(score.ratio, threshold)
            verdict.ok = True
        except Rejected as e:
            verdict.reason = str(e)
        except ParisError as e:  # content that could not be fetched or failed its CID
            verdict.reason = f"unavailable: {e}"
        return verdict

    def _get(self, cid: str, signer: str, what: str, providers_of: str | None = None) -> None:
        try:
            self._fetch(cid, self._who(providers_of or cid, signer))
        except ParisError as e:
            raise Rejected(f"{what} {cid[:16]}... could not be fetched and verified: {e}") from None
        except TimeoutError:
            raise Rejected(f"{what} {cid[:16]}...: no provider answered in time") from None

    # ------------------------------------------------------------------ a job
    def fetch_job(self, job: str, candidates: list[Candidate]) -> tuple[Verdict | None, list[Verdict]]:
        """Try candidates best first; install the first that verifies. Returns (accepted, all verdicts)."""
        info = cache.read_info(self.home, self.manifest.run_id, job)
        held = None if info is None else int(info["step"])
        verdicts: list[Verdict] = []
        for cand in order_candidates(candidates):
            if info is not None and cand.body.manifest_cid == info["manifest_cid"]:
                v = Verdict(
                    job,
                    cand.signer,
                    cand.body.step,
                    info["manifest_cid"],
                    ok=True,
                    reason="already held",
                    val_loss=info.get("val_loss"),
                )
                return v, [*verdicts, v]
            with cache.Staging(self.home, self.manifest.run_id, job) as stage:
                v = self.verify(cand, job, stage.path, held)
                verdicts.append(v)
                if not v.ok:
                    log.info("rejected %s step %d by %s: %s", job, v.step, v.signer[:16], v.reason)
                    continue
                info = {
                    "job": job,
                    "step": v.step,
                    "signer": v.signer,
                    "manifest_cid": v.manifest_cid,
                    "val_loss": v.val_loss,
                    "val_ratio": v.extra.get("ratio"),
                    "record": v.extra.get("manifest"),
                }
                stage.commit(info)
                return v, verdicts
        return None, verdicts


def copy_checkpoint(src: Path, dst: Path) -> Path:
    """Copy a cached checkpoint folder (without fetched.json) to where a trainer can resume from it."""
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, ignore=shutil.ignore_patterns(cache.INFO_FILE))
    shutil.rmtree(dst, ignore_errors=True)
    tmp.rename(dst)
    return dst
