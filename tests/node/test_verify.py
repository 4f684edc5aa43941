"""The pure checkpoint rules of node/verify.py, on hand-built records (no store, no network, no model)."""

from __future__ import annotations

import hashlib
import math

import pytest

from paris_node.identity import Identity
from paris_node.node.verify import (
    MAX_FILES,
    Rejected,
    check_config,
    check_file,
    check_manifest,
    check_publisher,
    check_rollback,
    check_val_loss,
)
from paris_node.records import CheckpointPayload, LeasePayload, PointerPayload, sign_record

RUN = "bafkreirun"
JOB = "expert/0"
ALICE = Identity.from_seed(b"a" * 32)
BOB = Identity.from_seed(b"b" * 32)


def sha256_hex_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def files(**extra: dict) -> dict:
    base = {
        "config.json": {"cid": "bafkreiconfig", "size": 10, "sha256": "0" * 64},
        "model.safetensors": {"cid": "bafkreiweights", "size": 1000, "sha256": "1" * 64},
    }
    return {**base, **extra}


def manifest(signer=ALICE, *, run=RUN, job=JOB, step=10, file_map=None):
    payload = CheckpointPayload(
        job=job, step=step, files=files() if file_map is None else file_map, config_sha256="0" * 64, cid_profile="x"
    )
    return sign_record(signer, payload, run=run)


def pointer(signer=ALICE, *, run=RUN, job=JOB, step=10, seq=1, cid="bafkreimanifest", issued_ms=None):
    payload = PointerPayload(job=job, manifest_cid=cid, step=step, seq=seq)
    return sign_record(signer, payload, run=run, issued_ms=issued_ms)


# ---------------------------------------------------------------------------------------------- publisher policy


def test_open_policy_admits_anyone():
    check_publisher("open", ALICE.node_id)
    check_publisher("open", BOB.node_id)


@pytest.mark.parametrize("as_type", [list, tuple])  # RunManifest.publishers is a tuple; a JSON document a list
def test_listed_policy_admits_only_listed_signers(as_type):
    policy = as_type([ALICE.node_id])
    check_publisher(policy, ALICE.node_id)
    with pytest.raises(Rejected, match="not an allowed publisher"):
        check_publisher(policy, BOB.node_id)


def test_an_empty_list_admits_nobody_and_a_bare_string_is_not_a_list():
    with pytest.raises(Rejected):
        check_publisher([], ALICE.node_id)
    with pytest.raises(Rejected):  # a single id as a string must not be matched as a substring
        check_publisher(ALICE.node_id + BOB.node_id, ALICE.node_id)


# ---------------------------------------------------------------------------------------------- rollback


def test_rollback_rejects_a_lower_step_only():
    check_rollback(5, None)  # nothing held
    check_rollback(20, 20)  # same step (another publisher's, or a re-verify) is not a rollback
    check_rollback(21, 20)
    with pytest.raises(Rejected, match="rollback"):
        check_rollback(19, 20)


# ---------------------------------------------------------------------------------------------- manifest vs pointer


def test_agreeing_manifest_and_pointer_pass_and_return_the_body():
    body = check_manifest(pointer(), manifest(), RUN, JOB)
    assert body.step == 10 and set(body.files) == {"config.json", "model.safetensors"}


@pytest.mark.parametrize(
    "man, ptr, reason",
    [
        (manifest(BOB), pointer(ALICE), "signer differs"),
        (manifest(run="bafkreiother"), pointer(), "another run"),
        (manifest(job="expert/1"), pointer(), "job"),
        (manifest(), pointer(job="expert/1"), "job"),
        (manifest(step=11), pointer(step=10), "step 11 differs"),
        (manifest(file_map={"config.json": files()["config.json"]}), pointer(), "lacks model.safetensors"),
        (manifest(file_map={"model.safetensors": files()["model.safetensors"]}), pointer(), "lacks config.json"),
    ],
    ids=["signer", "run", "manifest-job", "pointer-job", "step", "no-weights", "no-config"],
)
def test_disagreement_between_manifest_and_pointer_is_rejected(man, ptr, reason):
    with pytest.raises(Rejected, match=reason):
        check_manifest(ptr, man, RUN, JOB)


def test_a_record_of_another_kind_is_not_a_manifest():
    payload = LeasePayload(job=JOB, peer=ALICE.peer_id, lease_start_ms=1, seq=1, ttl_ms=1000, state="active")
    lease = sign_record(ALICE, payload, run=RUN)
    with pytest.raises(Rejected, match="not a checkpoint"):
        check_manifest(pointer(), lease, RUN, JOB)


@pytest.mark.parametrize("name", ["../x", "a/b", "/etc/passwd", ".hidden", "..", "", "a\\b", "nul\x00byte", "n" * 300])
def test_unsafe_file_names_are_rejected(name):
    meta = {"cid": "bafkreix", "size": 1, "sha256": "2" * 64}
    with pytest.raises(Rejected, match="unsafe file"):
        check_manifest(pointer(), manifest(file_map=files(**{name: meta})), RUN, JOB)


def test_a_manifest_listing_too_many_files_is_rejected():
    meta = {"cid": "bafkreix", "size": 1, "sha256": "2" * 64}
    many = files(**{f"f{i}.bin": meta for i in range(MAX_FILES)})
    with pytest.raises(Rejected, match="more than"):
        check_manifest(pointer(), manifest(file_map=many), RUN, JOB)


def test_extra_plain_file_names_are_fine():
    meta = {"cid": "bafkreix", "size": 1, "sha256": "2" * 64}
    extra = {"training_state.json": meta, "training_state.safetensors": meta}
    body = check_manifest(pointer(), manifest(file_map=files(**extra)), RUN, JOB)
    assert "training_state.json" in body.files


# ---------------------------------------------------------------------------------------------- files and config


def test_file_size_and_sha256_must_match_the_manifest():
    data = b"weights"
    meta = {"cid": "bafkreix", "size": len(data), "sha256": sha256_hex_of(data)}
    check_file("model.safetensors", sha256_hex_of(data), len(data), meta)
    with pytest.raises(Rejected, match="bytes, manifest says"):
        check_file("model.safetensors", sha256_hex_of(data), len(data) + 1, meta)
    with pytest.raises(Rejected, match="sha256 differs"):
        check_file("model.safetensors", sha256_hex_of(b"weightz"), len(data), meta)


def test_config_must_equal_every_expected_field():
    expected = {"kind": "expert", "model": {"name": "tiny", "depth": 2}}
    check_config({"kind": "expert", "model": {"name": "tiny", "depth": 2}, "step": 7, "train": {}}, expected)
    with pytest.raises(Rejected, match="config model"):
        check_config({"kind": "expert", "model": {"name": "tiny", "depth": 3}}, expected)
    with pytest.raises(Rejected, match="config kind"):
        check_config({"kind": "router", "model": {"name": "tiny", "depth": 2}}, expected)
    with pytest.raises(Rejected, match="config kind is None"):
        check_config({"model": {"name": "tiny", "depth": 2}}, expected)


@pytest.mark.parametrize("config", [[1, 2], "expert", 3, None])
def test_a_config_that_is_not_an_object_is_rejected_not_a_crash(config):
    with pytest.raises(Rejected, match="not a JSON object"):
        check_config(config, {"kind": "expert"})


# ---------------------------------------------------------------------------------------------- validation loss


def test_val_loss_threshold():
    check_val_loss(0.5, 1.0)
    check_val_loss(1.0, 1.0)  # boundary: exactly as good as the zero predictor passes
    check_val_loss(123.0, None)  # no threshold set: not checked
    for bad in (1.0001, math.inf, math.nan):
        with pytest.raises(Rejected, match="worse than the run's threshold"):
            check_val_loss(bad, 1.0)
