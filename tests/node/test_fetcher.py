"""CheckpointFetcher end to end in one process: malicious candidates are rejected, the honest one installed.

The "network" is RemoteFetch from conftest.py, a test double for the content exchange: it copies DAGs from the
publishers' Blockstore into the fetcher's through Blockstore.put, which checks every block against its CID
(raising BlockMismatch, as the real exchange does, when a lying peer serves other bytes).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle

import pytest
import torch
from node_helpers import (
    EXPERT_JOB,
    copy_ckpt,
    fetcher_home_for,
    publish,
    randomize_weights,
    set_step,
    shard,
    sign_pointer,
)
from safetensors.torch import load_file, save_file

from paris_node.checkpoint import FOR_SAMPLING, load_model
from paris_node.content.dag import add_bytes, walk_dag
from paris_node.content.errors import FetchError
from paris_node.content.exchange_client import PenaltyBox
from paris_node.identity import Identity, signer_peer
from paris_node.models.presets import expert_preset
from paris_node.models.vae import LatentCodec, codec_spec
from paris_node.node import cache
from paris_node.node.evaluate import expert_score, router_score
from paris_node.node.fetcher import CheckpointFetcher, run_selection_rules
from paris_node.node.selection import LeaseHistory
from paris_node.node.verify import Candidate
from paris_node.records import ROUTER_JOB, CheckpointPayload, SignedRecord, sign_record
from paris_node.swarm.tenure import Tenure

HONEST = Identity.from_seed(b"h" * 32)
MALLORY = Identity.from_seed(b"m" * 32)
EVE = Identity.from_seed(b"e" * 32)


class _EveryoneHeldIt(LeaseHistory):
    """Lease history in which every signer owns every job: these tests exercise the content checks, not
    eligibility or the download budget (test_selection.py and the tests at the end of this file do)."""

    def tenures(self, job: str) -> list[Tenure]:
        return [Tenure(job, who.node_id, 0, 1 << 62) for who in (HONEST, MALLORY, EVE)]


def fetcher_for(run, fh, *, fetch=None, providers=None, **rules) -> CheckpointFetcher:
    """A fetcher of `run` on `fh`'s home: `fetch`/`providers` replace the RemoteFetch double and "no providers"."""
    unbounded = dict(step_budget=None, max_candidates=64, per_signer=64)
    selection = dataclasses.replace(run_selection_rules(run.manifest), **{**unbounded, **rules})
    more = {} if providers is None else {"providers": providers}
    return CheckpointFetcher(
        fh.home, fh.store, run.manifest, fetch=fh.fetch if fetch is None else fetch, history=_EveryoneHeldIt(),
        rules=selection, **more,
    )  # fmt: skip


def store_record(run, record: SignedRecord) -> str:
    return add_bytes(run.store, record.to_bytes(), run.manifest.cid_profile, pin=True)


def resign(run, record: SignedRecord, identity: Identity, **changes) -> str:
    """A manifest with changed payload fields, properly signed by `identity`, stored in the remote store."""
    body: CheckpointPayload = dataclasses.replace(record.body, **changes)  # type: ignore[arg-type]
    return store_record(run, sign_record(identity, body, run=record.run))


def hidden_entries(fh, run) -> list[str]:
    base = cache.run_cache(fh.home, run.run_id)
    return sorted(p.name for p in base.iterdir() if p.name.startswith(".")) if base.exists() else []


# ---------------------------------------------------------------------------------------------- the malice set


# Each builder returns a malicious candidate for EXPERT_JOB, at a higher step than the honest one (so it is tried
# first), signed by MALLORY.


def _manifest_of_another_signer(run, fh, ckpt, tmp):
    eve = publish(run, EVE, EXPERT_JOB, ckpt, step=101)  # a manifest validly signed by another key
    return Candidate(sign_pointer(MALLORY, run.run_id, EXPERT_JOB, eve.manifest_cid, 101))


def _payload_changed_after_signing(run, fh, ckpt, tmp):
    mal = publish(run, MALLORY, EXPERT_JOB, ckpt, step=10)
    forged = dataclasses.replace(mal.record, payload={**mal.record.payload, "step": 102})
    return Candidate(sign_pointer(MALLORY, run.run_id, EXPERT_JOB, store_record(run, forged), 102))


def _other_bytes_for_the_weights(run, fh, ckpt, tmp):
    unique = copy_ckpt(ckpt, tmp / "bytes")  # same tensors, other bytes: a CID of its own
    save_file(load_file(str(unique / "model.safetensors")), str(unique / "model.safetensors"), metadata={"x": "1"})
    pub = publish(run, MALLORY, EXPERT_JOB, unique, step=103)
    fh.fetch.tamper[pub.record.body.files["model.safetensors"]["cid"]] = b"not the weights" * 100
    return pub.candidate


def _wrong_sha256_in_the_manifest(run, fh, ckpt, tmp):
    mal = publish(run, MALLORY, EXPERT_JOB, ckpt, step=10)
    files = json.loads(json.dumps(mal.record.body.files))
    files["model.safetensors"]["sha256"] = "0" * 64  # right CIDs, wrong hash
    return Candidate(
        sign_pointer(MALLORY, run.run_id, EXPERT_JOB, resign(run, mal.record, MALLORY, step=104, files=files), 104)
    )


def _config_of_another_preset(run, fh, ckpt, tmp):
    small = copy_ckpt(ckpt, tmp / "small")
    config = json.loads((small / "config.json").read_text())
    config["model"] = expert_preset("small").to_dict()
    (small / "config.json").write_text(json.dumps(config))
    return publish(run, MALLORY, EXPERT_JOB, small, step=105).candidate


def _weights_of_another_size(run, fh, ckpt, tmp):
    resized = copy_ckpt(ckpt, tmp / "resized")
    weights = load_file(str(resized / "model.safetensors"))
    name = max(weights, key=lambda k: weights[k].numel())
    weights[name] = torch.zeros(weights[name].shape[0] + 1, *weights[name].shape[1:])
    save_file(weights, str(resized / "model.safetensors"))
    return publish(run, MALLORY, EXPERT_JOB, resized, step=106).candidate


def _a_pickle_instead_of_safetensors(run, fh, ckpt, tmp):
    pickled = copy_ckpt(ckpt, tmp / "pickled")  # unpickling it would create tmp/UNPICKLED
    (pickled / "model.safetensors").write_bytes(pickle.dumps(_Mark(str(tmp / "UNPICKLED"))))
    return publish(run, MALLORY, EXPERT_JOB, pickled, step=107).candidate


def _random_weights_at_a_high_step(run, fh, ckpt, tmp):
    garbage = randomize_weights(copy_ckpt(ckpt, tmp / "random"))  # right shapes; an open run scores it
    return publish(run, MALLORY, EXPERT_JOB, set_step(garbage, 10_000), step=10_000).candidate


# attack: (builder, the verdict's code, a fragment of its reason)
ATTACKS = {
    "other signer": (_manifest_of_another_signer, "manifest-mismatch", "signer differs"),
    "bad signature": (_payload_changed_after_signing, "signature", "manifest: signature does not verify"),
    "wrong bytes": (_other_bytes_for_the_weights, "unavailable", "model.safetensors"),
    "sha256": (_wrong_sha256_in_the_manifest, "file-mismatch", "sha256 differs"),
    "other preset": (_config_of_another_preset, "config-mismatch", "config model"),
    "other size": (_weights_of_another_size, "weights-mismatch", "does not match its config"),
    "pickle": (_a_pickle_instead_of_safetensors, "not-safetensors", "not a valid safetensors file"),
    "random weights": (_random_weights_at_a_high_step, "score-margin", "does not beat the zero predictor"),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_a_malicious_candidate_is_rejected_with_its_code(attack, tiny_run, fetcher_home, expert_ckpt, tmp_path):
    run, fh = tiny_run, fetcher_home
    build, code, fragment = ATTACKS[attack]
    honest = publish(run, HONEST, EXPERT_JOB, expert_ckpt, step=10)
    bad = build(run, fh, expert_ckpt, tmp_path)
    assert bad.body.step > honest.candidate.body.step  # tried first

    accepted, verdicts = fetcher_for(run, fh).fetch_job(EXPERT_JOB, [honest.candidate, bad])

    verdict = {v.manifest_cid: v for v in verdicts}[bad.body.manifest_cid]
    assert not verdict.ok and not verdict.extra.get("skipped")  # downloaded, checked and refused
    assert (verdict.code, fragment in verdict.reason) == (code, True), verdict.reason
    if attack == "random weights":
        assert verdict.extra["ratio"] > 1.0  # scored here: worse than predicting nothing
    assert not (tmp_path / "UNPICKLED").exists()  # nothing ever unpickles peer bytes
    # the honest one is installed instead, and nothing partial is left behind
    assert accepted is not None and accepted.manifest_cid == honest.manifest_cid and accepted.code == "accepted"
    assert verdicts[-1] is accepted and len(verdicts) == 2
    assert hidden_entries(fh, run) == []
    assert [p.name for p in cache.run_cache(fh.home, run.run_id).iterdir()] == [cache.job_dirname(EXPERT_JOB)]


def test_the_honest_candidate_is_installed_whole(tiny_run, fetcher_home, expert_ckpt):
    run, fh = tiny_run, fetcher_home
    honest = publish(run, HONEST, EXPERT_JOB, expert_ckpt, step=10)
    accepted, verdicts = fetcher_for(run, fh).fetch_job(EXPERT_JOB, [honest.candidate])
    assert verdicts == [accepted] and accepted.ok and accepted.code == "accepted" and accepted.reason == ""
    assert accepted.signer == HONEST.node_id and accepted.step == 10 and accepted.extra["ratio"] < 1.0
    folder = cache.job_dir(fh.home, run.run_id, EXPERT_JOB)
    assert {"config.json", "model.safetensors", "fetched.json"} <= {p.name for p in folder.iterdir()}
    for name, meta in honest.record.body.files.items():  # sampling needs weights + config, not the state
        if meta["role"] in FOR_SAMPLING:
            assert (folder / name).read_bytes() == (expert_ckpt / name).read_bytes()
            assert (folder / name).stat().st_size == meta["size"]
        else:
            assert not (folder / name).exists() and meta["cid"] not in fh.fetch.fetched()
    info = json.loads((folder / "fetched.json").read_text())
    assert info["manifest_cid"] == honest.manifest_cid and info["step"] == 10 and info["signer"] == HONEST.node_id
    assert info["val_loss"] == pytest.approx(accepted.val_loss)
    assert info["record"].encode() == honest.record.to_bytes()
    load_model(folder)  # what sample will do: loads strictly
    assert hidden_entries(fh, run) == [] and [p.name for p in folder.parent.iterdir()] == [folder.name]


class _Mark:
    """Unpickling this creates a folder: proof that something unpickled peer bytes."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_the_signer_is_asked_first_and_blocks_are_checked_as_they_arrive(tiny_run, fetcher_home, expert_ckpt):
    run, fh = tiny_run, fetcher_home
    honest = publish(run, HONEST, EXPERT_JOB, expert_ckpt, step=10)
    mirror = "12D3KooWmirrorofthemanifest"  # a peer announcing the manifest: asked for its files too

    def providers(cid: str) -> list[str]:
        return [mirror] if cid == honest.manifest_cid else []

    accepted, _ = fetcher_for(run, fh, providers=providers).fetch_job(EXPERT_JOB, [honest.candidate])
    assert accepted is not None and accepted.ok
    assert dict(fh.fetch.calls)[honest.manifest_cid] == [signer_peer(HONEST.node_id), mirror]
    wanted = [m for m in honest.record.body.files.values() if m["role"] in FOR_SAMPLING]
    for meta in wanted:
        assert dict(fh.fetch.calls)[meta["cid"]] == [signer_peer(HONEST.node_id), mirror]
    # the validation shard came through the same fetch function, and every block of the checkpoint is local
    assert run.manifest.shards[1].val.cid in fh.fetch.fetched()
    for meta in wanted:
        assert all(fh.store.has(c) for c in walk_dag(fh.store, meta["cid"]))


def test_an_unreachable_checkpoint_is_rejected_not_raised(tiny_run, fetcher_home, expert_ckpt):
    run, fh = tiny_run, fetcher_home
    pub = publish(run, HONEST, EXPERT_JOB, expert_ckpt, step=10)
    for error in (TimeoutError("slow"), FetchError("no provider has it")):

        def failing(cid, providers, error=error):
            if cid == pub.manifest_cid:
                raise error
            fh.fetch(cid, providers)

        # a fresh fetcher each time: the first failure penalises the signer
        accepted, verdicts = fetcher_for(run, fh, fetch=failing).fetch_job(EXPERT_JOB, [pub.candidate])
        assert accepted is None and not verdicts[0].ok and "manifest" in verdicts[0].reason
        assert verdicts[0].code == "unavailable"
    assert cache.read_info(fh.home, run.run_id, EXPERT_JOB) is None and hidden_entries(fh, run) == []


def test_an_unreachable_signer_cools_off_briefly_and_is_not_penalised(tiny_run, fetcher_home, expert_ckpt):
    """An owner out of reach for a moment is no proof of misbehaviour: its next checkpoint is tried again soon
    (a standby that shunned it for minutes would mirror nothing), not after the penalty's minute-to-an-hour."""
    run, fh = tiny_run, fetcher_home
    pub = publish(run, HONEST, EXPERT_JOB, expert_ckpt, step=10)
    down = {"manifest": True}

    def flaky(cid, providers):
        if cid == pub.manifest_cid and down["manifest"]:
            raise FetchError("no provider answered")
        fh.fetch(cid, providers)

    fetcher = fetcher_for(run, fh, fetch=flaky)
    accepted, verdicts = fetcher.fetch_job(EXPERT_JOB, [pub.candidate])
    assert accepted is None and verdicts[0].code == "unavailable"
    assert not fetcher.penalty.is_banned(HONEST.node_id) and fetcher.cooling.is_banned(HONEST.node_id)
    down["manifest"] = False
    calls = len(fh.fetch.calls)
    _, verdicts = fetcher.fetch_job(EXPERT_JOB, [pub.candidate])  # within the back-off: skipped, no download
    assert verdicts[0].code == "cooling" and verdicts[0].extra["skipped"] and len(fh.fetch.calls) == calls
    fetcher.cooling = PenaltyBox(base_s=0.0)  # the back-off ran out (5 s by default)
    accepted, _ = fetcher.fetch_job(EXPERT_JOB, [pub.candidate])
    assert accepted is not None and accepted.manifest_cid == pub.manifest_cid


def test_a_manifest_that_is_not_a_record_is_rejected(tiny_run, fetcher_home):
    run, fh = tiny_run, fetcher_home
    cid = add_bytes(run.store, b'{"hello": "world"}', run.manifest.cid_profile)
    cand = Candidate(sign_pointer(MALLORY, run.run_id, EXPERT_JOB, cid, 5))
    accepted, verdicts = fetcher_for(run, fh).fetch_job(EXPERT_JOB, [cand])
    assert accepted is None and verdicts[0].reason.startswith("manifest:") and verdicts[0].code == "manifest-invalid"


def test_deeply_nested_json_is_a_verdict_not_a_crash(tiny_run, fetcher_home, expert_ckpt, tmp_path):
    run, fh = tiny_run, fetcher_home
    nested = b"[" * 5000 + b"]" * 5000  # json decodes by recursion: RecursionError, not ValueError
    manifest_cid = add_bytes(run.store, nested, run.manifest.cid_profile)
    bad_manifest = Candidate(sign_pointer(MALLORY, run.run_id, EXPERT_JOB, manifest_cid, 6))
    ckpt = copy_ckpt(expert_ckpt, tmp_path / "nested")
    (ckpt / "config.json").write_bytes(nested)
    bad_config = publish(run, MALLORY, EXPERT_JOB, ckpt, step=7).candidate
    accepted, verdicts = fetcher_for(run, fh).fetch_job(EXPERT_JOB, [bad_manifest, bad_config])
    assert accepted is None
    assert "config.json is not JSON" in verdicts[0].reason and "nested too deeply" in verdicts[1].reason
    assert [v.code for v in verdicts] == ["config-invalid", "manifest-invalid"]


def test_wrong_bytes_for_the_manifest_are_rejected(tiny_run, fetcher_home, expert_ckpt):
    run, fh = tiny_run, fetcher_home
    pub = publish(run, HONEST, EXPERT_JOB, expert_ckpt, step=10)
    fh.fetch.tamper[pub.manifest_cid] = pub.record.to_bytes() + b" "
    accepted, verdicts = fetcher_for(run, fh).fetch_job(EXPERT_JOB, [pub.candidate])
    assert accepted is None and "manifest" in verdicts[0].reason and "do not hash" in verdicts[0].reason
    assert verdicts[0].code == "unavailable"
    assert not fh.store.has(pub.manifest_cid)  # the lying bytes were never stored


def test_a_manifest_for_another_job_is_rejected(tiny_run, fetcher_home, expert_ckpt):
    run, fh = tiny_run, fetcher_home
    other = publish(run, MALLORY, "expert/0", expert_ckpt, step=10)  # a real checkpoint, replayed for expert/1
    cand = Candidate(sign_pointer(MALLORY, run.run_id, EXPERT_JOB, other.manifest_cid, 10))
    accepted, verdicts = fetcher_for(run, fh).fetch_job(EXPERT_JOB, [cand])
    assert accepted is None and "expected 'expert/1'" in verdicts[0].reason and verdicts[0].code == "manifest-mismatch"


# ---------------------------------------------------------------------------------------------- anti-rollback


def test_anti_rollback_and_already_held(tiny_run, fetcher_home, expert_ckpt, tmp_path):
    run, fh = tiny_run, fetcher_home
    fetcher = fetcher_for(run, fh)
    step20 = publish(run, HONEST, EXPERT_JOB, expert_ckpt, step=20)
    accepted, _ = fetcher.fetch_job(EXPERT_JOB, [step20.candidate])
    assert accepted is not None and accepted.ok and cache.read_installed(fh.home, run.run_id, EXPERT_JOB).step == 20

    step10 = publish(run, HONEST, EXPERT_JOB, set_step(copy_ckpt(expert_ckpt, tmp_path / "s10"), 10), step=10)
    before = len(fh.fetch.calls)
    accepted, verdicts = fetcher.fetch_job(EXPERT_JOB, [step10.candidate])
    assert accepted is None and "rollback" in verdicts[0].reason and verdicts[0].code == "rollback"
    assert len(fh.fetch.calls) == before  # rejected before downloading anything
    assert cache.read_info(fh.home, run.run_id, EXPERT_JOB)["manifest_cid"] == step20.manifest_cid

    accepted, verdicts = fetcher.fetch_job(EXPERT_JOB, [step10.candidate, step20.candidate])
    assert accepted is not None and accepted.ok and accepted.reason == "already held"
    assert accepted.code == "already-held" and accepted.manifest_cid == step20.manifest_cid
    assert [v.reason for v in verdicts if not v.ok] == [verdicts[0].reason] and "skipped" in verdicts[0].reason
    assert verdicts[0].code == "rollback" and verdicts[0].extra["skipped"]
    assert len(fh.fetch.calls) == before

    step30 = publish(run, HONEST, EXPERT_JOB, set_step(copy_ckpt(expert_ckpt, tmp_path / "s30"), 30), step=30)
    accepted, _ = fetcher.fetch_job(EXPERT_JOB, [step20.candidate, step30.candidate])
    assert accepted is not None and accepted.step == 30 and accepted.reason == "" and accepted.code == "accepted"
    assert cache.read_installed(fh.home, run.run_id, EXPERT_JOB).step == 30
    assert hidden_entries(fh, run) == []  # the replaced folder is gone, not left as .old


# ---------------------------------------------------------------------------------------------- policy


def test_a_listed_run_admits_only_its_publishers(make_tiny_run, expert_ckpt, tmp_path):
    run = make_tiny_run(publishers=(HONEST.node_id,))
    fh = fetcher_home_for(run, tmp_path / "fetcher")
    outsider = publish(run, MALLORY, EXPERT_JOB, expert_ckpt, step=50)
    listed = publish(run, HONEST, EXPERT_JOB, expert_ckpt, step=10)
    accepted, verdicts = fetcher_for(run, fh).fetch_job(EXPERT_JOB, [listed.candidate, outsider.candidate])
    assert "not an allowed publisher" in verdicts[0].reason and verdicts[0].code == "publisher"
    assert outsider.manifest_cid not in fh.fetch.fetched()  # not even downloaded
    assert accepted is not None and accepted.signer == HONEST.node_id, verdicts


# ---------------------------------------------------------------------------------------------- router


def test_a_router_checkpoint_verifies_against_router_score(tiny_run, fetcher_home, router_ckpt):
    run, fh = tiny_run, fetcher_home
    pub = publish(run, HONEST, ROUTER_JOB, router_ckpt, step=10)
    accepted, verdicts = fetcher_for(run, fh).fetch_job(ROUTER_JOB, [pub.candidate])
    assert accepted is not None and accepted.ok, verdicts[0].reason
    model, _ = load_model(router_ckpt)
    vals = [shard(run, k, "val") for k in range(run.manifest.experts)]
    want = router_score(model, vals, LatentCodec(codec_spec(run.manifest.latent_space)))
    assert accepted.val_loss == pytest.approx(want.loss) and accepted.extra["ratio"] == pytest.approx(want.ratio)
    assert (cache.job_dir(fh.home, run.run_id, ROUTER_JOB) / "model.safetensors").is_file()


def test_an_expert_checkpoint_is_not_a_router(tiny_run, fetcher_home, expert_ckpt):
    run, fh = tiny_run, fetcher_home
    pub = publish(run, MALLORY, ROUTER_JOB, expert_ckpt, step=10)
    accepted, verdicts = fetcher_for(run, fh).fetch_job(ROUTER_JOB, [pub.candidate])
    assert accepted is None and "config kind is 'expert'" in verdicts[0].reason
    assert verdicts[0].code == "config-mismatch"


# ---------------------------------------------------------------------------------------------- held-out scores


class _NoisyCodec:
    """Stands in for the SD-VAE codec, whose encode draws a posterior sample from the generator it is given."""

    def encode(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return images + torch.randn(images.shape, generator=generator)


class _Text:
    def encode(self, captions: list[str]):
        return torch.zeros(len(captions), 2, 4), torch.ones(len(captions), 2, dtype=torch.bool)


class _Scale(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(0.5))

    def forward(self, x, t, *cond):
        return self.w * x


class _Router(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([1.0, -1.0]))

    def forward(self, x, t):
        return x.mean(dim=(1, 2, 3))[:, None] * self.w


def test_held_out_scores_do_not_depend_on_the_global_rng():
    """Publisher and every fetcher must compute the same number, whatever else has drawn random numbers."""
    data = [(torch.full((3, 4, 4), i / 10), "a caption") for i in range(6)]
    scores = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        expert = expert_score(_Scale(), "rectified_flow", data, _Text(), _NoisyCodec())
        router = router_score(_Router(), [data[:3], data[3:]], _NoisyCodec())
        scores.append((expert, router))
    assert scores[0] == scores[1]


# ---------------------------------------------------------------------------------------------- selection (trust)


def zero_weights(ckpt):
    """Every tensor zero: the model predicts nothing, so its val-loss ratio is exactly the zero predictor's 1.0."""
    weights = load_file(str(ckpt / "model.safetensors"))
    save_file({k: torch.zeros_like(v) for k, v in weights.items()}, str(ckpt / "model.safetensors"))
    return ckpt


def test_a_signer_never_seen_holding_the_lease_costs_no_download(tiny_run, fetcher_home, expert_ckpt):
    run, fh = tiny_run, fetcher_home
    history = LeaseHistory()
    history.add(Tenure(EXPERT_JOB, HONEST.node_id, 0, 1 << 62))
    honest = publish(run, HONEST, EXPERT_JOB, expert_ckpt, step=10)
    takeover = publish(run, MALLORY, EXPERT_JOB, expert_ckpt, step=20)  # a good checkpoint, but no lease
    fetcher = CheckpointFetcher(fh.home, fh.store, run.manifest, fetch=fh.fetch, history=history)
    accepted, verdicts = fetcher.fetch_job(EXPERT_JOB, [takeover.candidate, honest.candidate])
    assert accepted is not None and accepted.manifest_cid == honest.manifest_cid
    assert "was not seen holding" in verdicts[0].reason and verdicts[0].extra["skipped"]
    assert verdicts[0].code == "not-eligible"
    assert takeover.manifest_cid not in fh.fetch.fetched()


def test_the_frozen_job_attack_is_refused_and_its_signer_penalised(tiny_run, fetcher_home, expert_ckpt, tmp_path):
    run, fh = tiny_run, fetcher_home
    frozen = publish(run, MALLORY, EXPERT_JOB, zero_weights(copy_ckpt(expert_ckpt, tmp_path / "zero")), step=20)
    honest = publish(run, HONEST, EXPERT_JOB, expert_ckpt, step=10)
    fetcher = fetcher_for(run, fh, step_budget=20)
    accepted, verdicts = fetcher.fetch_job(EXPERT_JOB, [frozen.candidate, honest.candidate])
    by_cid = {v.manifest_cid: v for v in verdicts}
    assert by_cid[frozen.manifest_cid].extra["ratio"] == pytest.approx(1.0)
    assert "does not beat the zero predictor" in by_cid[frozen.manifest_cid].reason
    assert by_cid[frozen.manifest_cid].code == "score-margin"
    assert accepted is not None and accepted.manifest_cid == honest.manifest_cid
    before = len(fh.fetch.calls)
    again = publish(run, MALLORY, EXPERT_JOB, expert_ckpt, step=20)  # its next candidate waits out the penalty
    _, verdicts = fetcher.fetch_job(EXPERT_JOB, [again.candidate])
    assert "penalised" in verdicts[0].reason and verdicts[0].code == "penalised" and len(fh.fetch.calls) == before
    # past the budget: refused before any download
    over = Candidate(sign_pointer(EVE, run.run_id, EXPERT_JOB, honest.manifest_cid, 1_000_002))
    _, verdicts = fetcher.fetch_job(EXPERT_JOB, [over])
    assert "step budget 20" in verdicts[0].reason and verdicts[0].code == "step-budget"
    assert len(fh.fetch.calls) == before


def test_pointer_spam_costs_at_most_the_budget_of_downloads(tiny_run, fetcher_home, expert_ckpt):
    run, fh = tiny_run, fetcher_home
    honest = publish(run, HONEST, EXPERT_JOB, expert_ckpt, step=10)
    sybils = [Identity.from_seed(bytes([200 + i]) * 32) for i in range(12)]
    history = LeaseHistory()
    history.add(Tenure(EXPERT_JOB, HONEST.node_id, 0, 1 << 62))  # the current owner
    for who in sybils:  # the worst case: every sybil somehow counts as a past owner
        history.add(Tenure(EXPERT_JOB, who.node_id, -1, 1))
    junk = [add_bytes(run.store, f"junk {i}".encode(), run.manifest.cid_profile) for i in range(12)]
    spam = [Candidate(sign_pointer(s, run.run_id, EXPERT_JOB, j, 19)) for s, j in zip(sybils, junk, strict=True)]
    fetcher = CheckpointFetcher(fh.home, fh.store, run.manifest, fetch=fh.fetch, history=history)
    fetcher.rules = dataclasses.replace(fetcher.rules, grace_ms=1 << 62)
    accepted, verdicts = fetcher.fetch_job(EXPERT_JOB, [*spam, honest.candidate])
    assert accepted is not None and accepted.manifest_cid == honest.manifest_cid  # the owner goes first
    downloaded = set(fh.fetch.fetched()) & set(junk)
    assert len(downloaded) == fetcher.rules.max_candidates - 1  # the rest of the budget, no more
    skipped = [v for v in verdicts if v.extra.get("skipped")]
    assert len(skipped) == len(spam) - len(downloaded) and all("budget of" in v.reason for v in skipped)
    assert {v.code for v in skipped} == {"skipped-budget"}
    # the sybils that failed are penalised: the next fetch downloads other ones, never more than the budget
    accepted, _ = fetcher.fetch_job(EXPERT_JOB, [*spam, honest.candidate])
    assert accepted is not None and accepted.reason == "already held" and accepted.code == "already-held"
    assert len(set(fh.fetch.fetched()) & set(junk)) == 2 * (fetcher.rules.max_candidates - 1)
