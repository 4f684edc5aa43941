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
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from pathlib import Path

from safetensors import SafetensorError

from paris_node.checkpoint import (
    CONFIG,
    FOR_SAMPLING,
    FORMAT_VERSION,
    WEIGHTS,
    CheckpointFormatError,
    manifest_entries,
    safetensors_header,
)
from paris_node.checkpoint.format import select
from paris_node.checkpoint.manifest_check import check_manifest
from paris_node.content.blockstore import Blockstore
from paris_node.content.dag import iter_file
from paris_node.content.exchange_client import PenaltyBox
from paris_node.data.manifest import RunManifest
from paris_node.data.prepare import shard_path
from paris_node.data.shards import ShardDataset
from paris_node.errors import BadSignature, ParisError, RecordError, UsageError
from paris_node.fsutil import atomic_replace_dir, staging_dir
from paris_node.home import Home
from paris_node.identity import signer_peer
from paris_node.models.config import ExpertConfig, RouterConfig
from paris_node.models.presets import expert_preset, router_preset
from paris_node.node import cache
from paris_node.node.evaluate import Score, score_checkpoint
from paris_node.node.publish import sha256_file
from paris_node.node.repair import drop_bad_blocks
from paris_node.node.selection import (
    Held,
    LeaseHistory,
    Regression,
    SelectionRules,
    check_score,
    choose,
    plan,
    rules_for_run,
)
from paris_node.node.verify import (
    Candidate,
    Verdict,
    check_config,
    check_file,
    check_publisher,
    check_rollback,
)
from paris_node.records import DOCUMENT_CAP, ROUTER_JOB, decode_record, now_ms
from paris_node.verdicts import Rejected

log = logging.getLogger(__name__)

UNAVAILABLE_BACKOFF_S = 5.0  # a signer whose candidate could not be fetched waits this, doubling per failure,
UNAVAILABLE_BACKOFF_MAX_S = 120.0  # up to this (failed checks wait PenaltyBox's 60 s to an hour)

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


def run_selection_rules(manifest: RunManifest) -> SelectionRules:
    """The selection rules of node/selection.py for this run (publishers, threshold, step budget)."""
    t = manifest.training
    steps = int(t["steps"]) if "steps" in t else None
    every = int(t["publish_every_steps"]) if "publish_every_steps" in t else None
    return rules_for_run(manifest.publishers, manifest.val_loss_threshold, steps, every)


def held_of(info: dict | None) -> Held | None:
    """The held checkpoint of a cache info (its manifest's issue time bounds how far a successor may be)."""
    if info is None:
        return None
    try:
        issued = int(json.loads(info["record"])["issued_ms"]) if info.get("record") else 0
    except (ValueError, KeyError, TypeError):
        issued = 0
    ratio = info.get("val_ratio")
    return Held(step=int(info["step"]), issued_ms=issued, ratio=None if ratio is None else float(ratio))


class CheckpointFetcher:
    """Verify-and-install for one run. `fetch` moves DAGs into the store; `providers` lists who has a CID."""

    def __init__(
        self,
        home: Home,
        store: Blockstore,
        manifest: RunManifest,
        fetch: FetchFn,
        providers: Callable[[str], list[str]] = lambda cid: [],
        *,
        history: LeaseHistory | None = None,
        rules: SelectionRules | None = None,
    ):
        self.home, self.store, self.manifest = home, store, manifest
        self._fetch, self._providers = fetch, providers
        self.history = LeaseHistory() if history is None else history  # who held which lease, as seen here
        self.rules = run_selection_rules(manifest) if rules is None else rules
        self.penalty = PenaltyBox()  # signers whose candidates failed a check: skipped until their back-off runs out
        # signers whose candidate could not be fetched (unreachable, busy, or withholding): a short back-off, since
        # an honest owner is sometimes briefly out of reach and its successor must not shun it for an hour
        self.cooling = PenaltyBox(base_s=UNAVAILABLE_BACKOFF_S, max_s=UNAVAILABLE_BACKOFF_MAX_S)
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

    def verify(
        self, cand: Candidate, job: str, staging: Path, held: int | None, roles: Iterable[str] = FOR_SAMPLING
    ) -> Verdict:
        """Check one candidate, installing the files of `roles` (checkpoint/format.py) into `staging`."""
        ptr = cand.body
        verdict = Verdict(job=job, signer=cand.signer, step=ptr.step, manifest_cid=ptr.manifest_cid)
        try:
            check_publisher(self.manifest.publishers, cand.signer)
            check_rollback(ptr.step, held)
            self._get(ptr.manifest_cid, cand.signer, "manifest")
            data = b"".join(iter_file(self.store, ptr.manifest_cid))
            if len(data) > DOCUMENT_CAP:
                raise Rejected("manifest is over the document size cap", "manifest-invalid")
            try:
                record = decode_record(data, kind="checkpoint", run=self.manifest.run_id)
            except RecordError as e:
                code = "signature" if isinstance(e, BadSignature) else "manifest-invalid"
                raise Rejected(f"manifest: {e}", code) from None
            except RecursionError:  # json nests by recursion: a peer's "[[[[..." must be a verdict, not a crash
                raise Rejected("manifest: JSON nested too deeply", "manifest-invalid") from None
            body = check_manifest(cand.pointer, record, self.manifest.run_id, job)
            if body.format != FORMAT_VERSION:
                why = f"checkpoint format {body.format}; this node reads {FORMAT_VERSION}: update paris-node"
                raise Rejected(why, "format")
            try:
                entries = manifest_entries(body.files)
            except CheckpointFormatError as e:
                raise Rejected(str(e), "manifest-files") from None
            for name, entry in sorted(select(entries, roles).items()):  # only what this use needs
                self._get(entry.cid, cand.signer, name, providers_of=ptr.manifest_cid)
                out = staging / name
                cache.install_file(self.store, entry, out)  # link or verified export of the stored blocks
                check_file(name, sha256_file(out), out.stat().st_size, body.files[name])
            try:
                config = json.loads((staging / CONFIG).read_text())
            except (ValueError, RecursionError) as e:
                raise Rejected(f"config.json is not JSON: {e}", "config-invalid") from None
            check_config(config, expected_config(self.manifest, job))
            try:
                safetensors_header(staging / WEIGHTS)  # a pickle or garbage is refused before anything reads it
            except CheckpointFormatError as e:
                raise Rejected(str(e), "not-safetensors") from None
            try:
                score = self.score(staging, job)
            except (UsageError, CheckpointFormatError) as e:  # weights that do not fit the config
                raise Rejected(str(e), "weights-mismatch") from None
            except SafetensorError as e:  # not safetensors at all (a pickle, garbage): never loaded any other way
                raise Rejected(f"model.safetensors is not a safetensors file: {e}", "not-safetensors") from None
            verdict.val_loss = score.loss
            verdict.extra = {"baseline": score.baseline, "ratio": score.ratio, "manifest": data.decode()}
            # the margin (the run's threshold) is checked with the other score rules: selection.check_score
            verdict.ok, verdict.code = True, "accepted"
        except Rejected as e:
            verdict.reason, verdict.code = str(e), e.code
        except ParisError as e:  # content that could not be fetched or failed its CID
            verdict.reason, verdict.code = f"unavailable: {e}", "unavailable"
        return verdict

    def _get(self, cid: str, signer: str, what: str, providers_of: str | None = None) -> None:
        try:
            self._fetch(cid, self._who(providers_of or cid, signer))
        except ParisError as e:
            raise Rejected(f"{what} {cid[:16]}... could not be fetched and verified: {e}", "unavailable") from None
        except TimeoutError:
            raise Rejected(f"{what} {cid[:16]}...: no provider answered in time", "unavailable") from None

    # ------------------------------------------------------------------ a job
    def held_intact(self, job: str, roles: Iterable[str]) -> bool:
        """The installed copy of `job` has the files of `roles` and every byte still matches its manifest."""
        inst = cache.read_installed(self.home, self.manifest.run_id, job)
        if inst is None or not set(roles) <= inst.roles:
            return False
        problems = cache.check(cache.job_dir(self.home, self.manifest.run_id, job), inst)
        if problems:
            log.warning("%s: the installed copy is damaged (%s); repairing it", job, "; ".join(problems))
            for entry in inst.files.values():  # a hard-linked file shares its bytes with the store's block
                drop_bad_blocks(self.store, entry.cid)
        return not problems

    def _plan(self, job: str, candidates: list[Candidate], history: LeaseHistory | None, held: Held | None):
        history = self.history if history is None else history
        banned = [c.signer for c in candidates if self.penalty.is_banned(c.signer)]
        cooling = [c.signer for c in candidates if self.cooling.is_banned(c.signer)]
        return plan(candidates, job, self.rules, history, now_ms(), held=held, penalised=banned, cooling=cooling)

    def plan_for(self, job: str, candidates: list[Candidate]):
        """What `fetch_job` would evaluate and skip now, against the copy held here (a mirror's look-ahead)."""
        return self._plan(job, candidates, None, held_of(cache.read_info(self.home, self.manifest.run_id, job)))

    def fetch_job(
        self,
        job: str,
        candidates: list[Candidate],
        history: LeaseHistory | None = None,
        roles: Iterable[str] = FOR_SAMPLING,
    ) -> tuple[Verdict | None, list[Verdict]]:
        """Select by measurement (node/selection.py): plan, verify the few planned, install the best that passes.

        Returns (accepted, verdicts); skipped candidates get a verdict too, with why they were not evaluated.
        """
        installed = cache.read_installed(self.home, self.manifest.run_id, job)
        roles = set(roles) | (installed.roles if installed else set())  # a repair keeps what was held
        info = cache.read_info(self.home, self.manifest.run_id, job)
        held = held_of(info)
        chosen = self._plan(job, candidates, history, held)
        verdicts = [
            Verdict(
                job, c.signer, c.body.step, c.body.manifest_cid, reason=f"skipped: {why}", code=why.code,
                extra={"skipped": True},
            )
            for c, why in chosen.skipped
        ]  # fmt: skip
        if chosen.skipped:
            log.debug("%s: skipped %d candidate(s) without downloading them", job, len(chosen.skipped))
        passed: list[tuple[Candidate, float, cache.Staging | None, Verdict]] = []
        with ExitStack() as stack:
            for cand, _tier in chosen.evaluate:
                if (
                    info is not None
                    and cand.body.manifest_cid == info["manifest_cid"]
                    and self.held_intact(job, roles)  # re-verified, else repaired below
                ):
                    v = Verdict(
                        job,
                        cand.signer,
                        cand.body.step,
                        info["manifest_cid"],
                        ok=True,
                        reason="already held",
                        code="already-held",
                        val_loss=info.get("val_loss"),
                    )
                    ratio = held.ratio if held is not None and held.ratio is not None else 1.0
                    passed.append((cand, ratio, None, v))
                    continue
                stage = stack.enter_context(cache.Staging(self.home, self.manifest.run_id, job, self.store))
                v = self.verify(cand, job, stage.path, None if held is None else held.step, roles)
                if v.ok:
                    try:
                        check_score(float(v.extra["ratio"]), self.rules, held)
                    except Rejected as e:
                        v.ok, v.reason, v.code = False, str(e), e.code
                        v.extra["regression"] = isinstance(e, Regression)
                if not v.ok:
                    verdicts.append(v)
                    if v.code == "unavailable":  # out of reach is not proof of misbehaviour: retried soon
                        self.cooling.penalise(cand.signer)
                    elif not v.extra.get("regression"):  # a worse score than held is no misbehaviour either
                        self.penalty.penalise(cand.signer)
                    log.info("rejected %s step %d by %s: %s", job, v.step, v.signer[:16], v.reason)
                    continue
                passed.append((cand, float(v.extra["ratio"]), stage, v))
            best = choose([(c, r) for c, r, _, _ in passed], self.rules)
            accepted = None
            for cand, _, stage, v in passed:
                if cand is not best:
                    v.ok, v.reason, v.code = False, "passed, but another candidate scored better", "outscored"
                    verdicts.append(v)
                    continue
                accepted = v
                verdicts.append(v)
                if stage is not None:
                    stage.commit(
                        {
                            "job": job,
                            "step": v.step,
                            "signer": v.signer,
                            "manifest_cid": v.manifest_cid,
                            "val_loss": v.val_loss,
                            "val_ratio": v.extra.get("ratio"),
                            "record": v.extra.get("manifest"),
                        }
                    )
        return accepted, verdicts


def copy_checkpoint(src: Path, dst: Path) -> Path:
    """Copy a cached checkpoint folder (without fetched.json) to where a trainer can resume from it."""
    tmp = staging_dir(dst)
    try:
        shutil.copytree(src, tmp, ignore=shutil.ignore_patterns(cache.INFO_FILE, ".*"), dirs_exist_ok=True)
        for f in tmp.iterdir():
            f.chmod(0o644)  # hard-linked cache files are read-only; the trainer's copy is its own
        return atomic_replace_dir(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
