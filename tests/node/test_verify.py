"""The pure checkpoint rules (node/verify.py, checkpoint/manifest_check.py, the codes of paris_node/verdicts.py),
on hand-built records (no store, no network, no model)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from paris_node.checkpoint.manifest_check import MAX_FILES, check_manifest
from paris_node.data.runspec import publisher_allowed
from paris_node.errors import ParisError
from paris_node.identity import Identity
from paris_node.node.selection import Held, SelectionRules, check_score, check_step
from paris_node.node.verify import check_config, check_file, check_publisher, check_rollback
from paris_node.records import CheckpointPayload, LeasePayload, PointerPayload, sign_record
from paris_node.verdicts import REASON_CODES, Rejected

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


def test_open_policy_admits_anyone_and_only_the_exact_word_open_is_that_policy():
    for signer in (ALICE.node_id, BOB.node_id):
        assert publisher_allowed("open", signer)  # the one rule check_publisher applies
        check_publisher("open", signer)
    for near in ("Open", "open ", "opened", "", "*"):  # a misspelt policy is a bare string: it admits nobody
        with pytest.raises(Rejected, match="not an allowed publisher") as e:
            check_publisher(near, ALICE.node_id)
        assert e.value.code == "publisher"


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


def test_a_rejection_is_a_paris_error_so_the_cli_prints_it_in_one_line():
    assert issubclass(Rejected, ParisError)
    with pytest.raises(ParisError, match="not an allowed publisher"):
        check_publisher((ALICE.node_id,), BOB.node_id)


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


CONFIG, WEIGHTS = files()["config.json"], files()["model.safetensors"]


@pytest.mark.parametrize(
    "man, ptr, reason, code",
    [
        (manifest(BOB), pointer(ALICE), "signer differs", "manifest-mismatch"),
        (manifest(run="bafkreiother"), pointer(), "another run", "manifest-mismatch"),
        (manifest(job="expert/1"), pointer(), "job", "manifest-mismatch"),
        (manifest(), pointer(job="expert/1"), "job", "manifest-mismatch"),
        (manifest(step=11), pointer(step=10), "step 11 differs", "manifest-mismatch"),
        (manifest(file_map={"config.json": CONFIG}), pointer(), "lacks model.safetensors", "manifest-files"),
        (manifest(file_map={"model.safetensors": WEIGHTS}), pointer(), "lacks config.json", "manifest-files"),
    ],
    ids=["signer", "run", "manifest-job", "pointer-job", "step", "no-weights", "no-config"],
)
def test_disagreement_between_manifest_and_pointer_is_rejected(man, ptr, reason, code):
    with pytest.raises(Rejected, match=reason) as e:
        check_manifest(ptr, man, RUN, JOB)
    assert e.value.code == code


def test_a_record_of_another_kind_is_not_a_manifest():
    payload = LeasePayload(job=JOB, peer=ALICE.peer_id, lease_start_ms=1, seq=1, ttl_ms=1000, state="active")
    lease = sign_record(ALICE, payload, run=RUN)
    with pytest.raises(Rejected, match="not a checkpoint") as e:
        check_manifest(pointer(), lease, RUN, JOB)
    assert e.value.code == "manifest-mismatch"


@pytest.mark.parametrize("name", ["../x", "a/b", "/etc/passwd", ".hidden", "..", "", "a\\b", "nul\x00byte", "n" * 300])
def test_unsafe_file_names_are_rejected(name):
    meta = {"cid": "bafkreix", "size": 1, "sha256": "2" * 64}
    with pytest.raises(Rejected, match="unsafe file") as e:
        check_manifest(pointer(), manifest(file_map=files(**{name: meta})), RUN, JOB)
    assert e.value.code == "manifest-files"


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


# ---------------------------------------------------------------------------------------------- reason codes


@pytest.mark.parametrize(
    "check, code",
    [
        (lambda: check_publisher((ALICE.node_id,), BOB.node_id), "publisher"),
        (lambda: check_rollback(19, 20), "rollback"),
        (lambda: check_file("w", "0" * 64, 2, {"size": 1, "sha256": "0" * 64}), "file-mismatch"),
        (lambda: check_file("w", "1" * 64, 1, {"size": 1, "sha256": "0" * 64}), "file-mismatch"),
        (lambda: check_config([], {}), "config-invalid"),
        (lambda: check_config({"kind": "router"}, {"kind": "expert"}), "config-mismatch"),
        (lambda: check_step(11, 0, SelectionRules(step_budget=10), None), "step-budget"),
        (lambda: check_step(9, 0, SelectionRules(), Held(step=10, issued_ms=0, ratio=None)), "rollback"),
        (lambda: check_step(10**6, 1000, SelectionRules(), Held(step=10, issued_ms=0, ratio=None)), "rate-bound"),
        (lambda: check_score(1.0, SelectionRules(), None), "score-margin"),  # the zero predictor's ratio
        (lambda: check_score(0.8, SelectionRules(), Held(step=10, issued_ms=0, ratio=0.1)), "regression"),
    ],
    ids=["publisher", "rollback", "size", "sha256", "config-not-object", "config-field", "budget", "held-rollback",
         "rate", "margin", "regression"],
)  # fmt: skip
def test_every_check_names_its_code(check, code):
    with pytest.raises(Rejected) as e:
        check()
    assert e.value.code == code and str(e.value)  # the code for scripts, the message for people


def test_a_rejection_needs_a_known_code():
    assert Rejected("why", "rollback").code == "rollback"
    with pytest.raises(ValueError, match="unknown rejection code 'rolback'"):
        Rejected("why", "rolback")


def test_the_documented_codes_are_the_codes():
    """protocol/selection.md's table of verdict codes is REASON_CODES, code for code and meaning for meaning."""
    doc = (Path(__file__).resolve().parents[2] / "protocol" / "selection.md").read_text()
    table = doc.split("## 6. Verdict codes", 1)[1]
    rows = dict(re.findall(r"^\| `([a-z-]+)` \| (.+?) \|$", table, flags=re.M))
    assert rows == REASON_CODES
