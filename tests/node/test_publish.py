"""CheckpointPublisher / store_checkpoint: stored, pinned, signed, announced, chained, pruned, never raising.

Publishing does not load the model, so these tests use small hand-made checkpoint folders (no training).
The announcer is `RecordingAnnouncer`, a test double for paris_node.swarm.announcer.Announcer (the DHT side)
that records each call; the real announcer is tested in tests/swarm.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from paris_node.canonical import real
from paris_node.checkpoint import CheckpointFormatError, manifest_entries
from paris_node.content.blockstore import Blockstore
from paris_node.content.dag import iter_file
from paris_node.identity import Identity
from paris_node.node.publish import CheckpointPublisher, published_manifest, store_checkpoint
from paris_node.records import decode_record

RUN = "bafkreirunidforpublishtests"
JOB = "expert/0"
PROFILE = "unixfs-v1-2025"
ME = Identity.from_seed(b"p" * 32)


class RecordingAnnouncer:
    """Test double for the DHT announcer: remembers every call, in order."""

    def __init__(self, fail: bool = False):
        self.calls: list[tuple[str, object]] = []
        self.fail = fail

    def provide(self, cids: list[str]) -> None:
        if self.fail:
            raise ConnectionError("DHT unreachable")
        self.calls.append(("provide", list(cids)))

    def unprovide(self, cids: list[str]) -> None:
        self.calls.append(("unprovide", list(cids)))

    def set_pointer(self, job: str, manifest_cid: str, step: int) -> None:
        self.calls.append(("set_pointer", (job, manifest_cid, step)))

    def set_status(self, **fields) -> None:
        self.calls.append(("set_status", fields))


def make_ckpt(root: Path, step: int, weights_seed: int = 0, sample: bool = False) -> Path:
    """A checkpoint folder as the trainer writes it (weights, config, training state), tiny and model-free."""
    d = root / f"step-{step:08d}"
    d.mkdir(parents=True)
    g = torch.Generator().manual_seed(weights_seed)
    save_file({"w": torch.randn(4, 4, generator=g)}, str(d / "model.safetensors"))
    (d / "config.json").write_text(json.dumps({"kind": "expert", "model": {"name": "tiny"}, "step": step}))
    save_file({"opt.m": torch.zeros(4, 4), "opt.v": torch.ones(4, 4)}, str(d / "training_state.safetensors"))
    (d / "training_state.json").write_text(json.dumps({"step": step}))
    (d / ".model.safetensors.tmp").write_text("a stray temp file is not published")
    (d / "notes.txt").write_text("not a file of the checkpoint format: stays local")
    if sample:
        (d / "sample.png").write_bytes(b"\x89PNG\r\n\x1a\n preview")
    return d


STATE = {"training_state.json", "training_state.safetensors"}


@pytest.fixture
def store(tmp_path) -> Blockstore:
    return Blockstore(tmp_path / "blocks")


def manifest_of(store: Blockstore, cid: str):
    return decode_record(b"".join(iter_file(store, cid)), kind="checkpoint", run=RUN)


def test_store_checkpoint_adds_pins_and_signs_every_file(store, tmp_path):
    ckpt = make_ckpt(tmp_path, 10)
    cid, record, file_cids = store_checkpoint(store, ME, RUN, JOB, ckpt, 10, {"loss": 0.5}, None, PROFILE)
    assert manifest_of(store, cid) == record and record.signer == ME.node_id
    body = record.body
    assert body.job == JOB and body.step == 10 and body.parent is None and body.cid_profile == PROFILE
    assert set(body.files) == {"config.json", "model.safetensors", *STATE}  # no hidden or foreign files
    assert body.format == 2
    assert {n: m["role"] for n, m in body.files.items()} == {
        "config.json": "config",
        "model.safetensors": "weights",
        "training_state.json": "state",
        "training_state.safetensors": "state",
    }
    for name, meta in body.files.items():
        assert b"".join(iter_file(store, meta["cid"])) == (ckpt / name).read_bytes()
        assert meta["size"] == (ckpt / name).stat().st_size
    assert body.config_sha256 == body.files["config.json"]["sha256"]
    assert body.metrics == {"loss": real(0.5)}
    assert sorted(file_cids) == sorted(m["cid"] for m in body.files.values())
    assert set(store.pins()) == {cid, *file_cids}


def test_publish_stores_and_announces_with_the_right_values(store, tmp_path):
    ann = RecordingAnnouncer()
    pub = CheckpointPublisher(store, ME, RUN, JOB, ann, PROFILE, score=lambda d: {"val_loss": 0.25, "val_ratio": 0.5})
    pub(make_ckpt(tmp_path, 10), 10, {"loss": 0.75, "samples_per_s": 123.4, "step": 10})
    assert len(pub.history) == 1
    manifest_cid, file_cids, step = pub.history[0]
    record = manifest_of(store, manifest_cid)
    assert record.body.step == 10 and step == 10
    assert record.body.metrics == {
        "train_loss": real(0.75),
        "samples_per_s": real(123.4),
        "val_loss": real(0.25),
        "val_ratio": real(0.5),
    }
    assert ann.calls == [
        ("provide", [manifest_cid]),  # one provider record per checkpoint: its files are asked of the same peers
        ("set_pointer", (JOB, manifest_cid, 10)),
        ("set_status", {"step": 10, "checkpoint": manifest_cid, "loss": real(0.75), "samples_per_s": real(123.4)}),
    ]
    assert {manifest_cid, *file_cids} <= set(store.pins())


def test_parents_chain_and_old_checkpoints_are_unpinned_beyond_keep(store, tmp_path):
    ann = RecordingAnnouncer()
    pub = CheckpointPublisher(store, ME, RUN, JOB, ann, PROFILE, parent="bafkreiresumedfrom", keep=2)
    # steps 10 and 20 hold identical weights: when step 10 goes, the shared weights file must stay pinned
    ckpts = [make_ckpt(tmp_path, 10, weights_seed=1), make_ckpt(tmp_path, 20, weights_seed=1)]
    ckpts.append(make_ckpt(tmp_path, 30, weights_seed=3))
    published = []
    for ckpt, step in zip(ckpts, (10, 20, 30), strict=True):
        pub(ckpt, step, {"loss": 1.0})
        published.append(pub.history[-1])
    records = [manifest_of(store, m) for m, _, _ in published]
    assert [r.body.parent for r in records] == ["bafkreiresumedfrom", published[0][0], published[1][0]]
    assert pub.parent == published[2][0]

    pins = set(store.pins())
    first = records[0].body.files
    assert published[0][0] not in pins  # the oldest manifest is unpinned
    assert first["config.json"]["cid"] not in pins and first["training_state.json"]["cid"] not in pins
    assert first["model.safetensors"]["cid"] == records[1].body.files["model.safetensors"]["cid"]
    assert first["model.safetensors"]["cid"] in pins  # shared with the kept step-20 checkpoint
    for manifest_cid, file_cids, _ in published[1:]:
        assert {manifest_cid, *file_cids} <= pins
    assert [s for _, _, s in pub.history] == [20, 30]
    provided = [c[1][0] for c in ann.calls if c[0] == "provide"]
    assert provided == [m for m, _, _ in published]
    assert [c[1] for c in ann.calls if c[0] == "unprovide"] == [[published[0][0]]]  # only the dropped one

    store.gc()  # what is kept can still be served whole
    for r in records[1:]:
        for meta in r.body.files.values():
            assert b"".join(iter_file(store, meta["cid"]))


def test_a_step_already_published_is_not_published_again(store, tmp_path):
    ann = RecordingAnnouncer()
    pub = CheckpointPublisher(store, ME, RUN, JOB, ann, PROFILE)
    pub(make_ckpt(tmp_path / "a", 10), 10, {"loss": 1.0})
    calls = list(ann.calls)
    pub(make_ckpt(tmp_path / "b", 10), 10, {"loss": 0.9})  # the final checkpoint at the periodic one's step
    pub(make_ckpt(tmp_path / "c", 5), 5, {"loss": 0.9})
    assert ann.calls == calls and len(pub.history) == 1


def test_a_failing_publish_is_logged_and_does_not_raise(store, tmp_path, caplog):
    def broken_score(ckpt: Path) -> dict[str, float]:
        raise RuntimeError("validation shard unreadable")

    ann = RecordingAnnouncer()
    pub = CheckpointPublisher(store, ME, RUN, JOB, ann, PROFILE, score=broken_score)
    with caplog.at_level(logging.WARNING, logger="paris_node.node.publish"):
        pub(make_ckpt(tmp_path, 10), 10, {"loss": 1.0})  # must not raise
    assert "step 10 failed" in caplog.text and "validation shard unreadable" in caplog.text
    assert ann.calls == [] and pub.history == [] and pub.parent is None

    pub.score = None  # the next checkpoint tries again and goes out
    pub(make_ckpt(tmp_path, 20), 20, {"loss": 1.0})
    assert [c[0] for c in ann.calls] == ["provide", "set_pointer", "set_status"] and pub.history[-1][2] == 20


def test_an_unreachable_dht_is_logged_and_does_not_raise(store, tmp_path, caplog):
    pub = CheckpointPublisher(store, ME, RUN, JOB, RecordingAnnouncer(fail=True), PROFILE)
    with caplog.at_level(logging.WARNING, logger="paris_node.node.publish"):
        pub(make_ckpt(tmp_path, 10), 10, {"loss": 1.0})
    assert "DHT unreachable" in caplog.text


def test_a_preview_png_is_published_with_the_sample_role(store, tmp_path):
    _, record, _ = store_checkpoint(store, ME, RUN, JOB, make_ckpt(tmp_path, 10, sample=True), 10, {}, None, PROFILE)
    assert record.body.files["sample.png"]["role"] == "sample"
    assert manifest_entries(record.body.files)["sample.png"].role == "sample"


def test_weights_that_are_not_safetensors_are_never_signed(store, tmp_path):
    ckpt = make_ckpt(tmp_path, 10)
    (ckpt / "model.safetensors").write_bytes(b"\x80\x04 a pickle, not safetensors")
    with pytest.raises(CheckpointFormatError, match="not a valid safetensors file"):
        store_checkpoint(store, ME, RUN, JOB, ckpt, 10, {}, None, PROFILE)
    assert store.pins() == []


def test_a_published_folder_remembers_its_manifest_for_the_next_resume(store, tmp_path):
    pub = CheckpointPublisher(store, ME, RUN, JOB, RecordingAnnouncer(), PROFILE)
    ckpt = make_ckpt(tmp_path, 10)
    assert published_manifest(ckpt) is None
    pub(ckpt, 10, {"loss": 1.0})
    assert published_manifest(ckpt) == pub.history[-1][0]
