"""Run manifests: the demo run id is machine-independent, signatures and CIDs verify through the store."""

from __future__ import annotations

import dataclasses

import pytest

from paris_node.content.blockstore import Blockstore
from paris_node.content.cid import file_cid
from paris_node.content.dag import iter_file
from paris_node.data.manifest import DEMO_IDENTITY, DEMO_RUN, RunSpec, build_run, load_run, spec_from_manifest
from paris_node.data.prepare import shard_path
from paris_node.data.shards import ShardDataset
from paris_node.errors import BadSignature, RecordError, UsageError
from paris_node.home import Home
from paris_node.identity import Identity

SMALL = RunSpec(
    name="t", dataset="shapes:96", samples=96, experts=2, expert_preset="tiny", router_preset="tiny", fine_clusters=8
)


# Pinned: the demo's shards depend only on the data layer (shapes, partition, shard format, CIDs). If this
# changes, nodes on this version and the previous one compute different demo runs: say so in the changelog.
GOLDEN_DEMO_EXPERT0_TRAIN = "bafkreiac4fz6cy6todonkekuixfxiocgxmshkhsyotbvhchmadamjx6utu"


@pytest.mark.slow
def test_demo_run_id_is_the_same_on_two_machines(tmp_path):
    a, b = Home(tmp_path / "a"), Home(tmp_path / "b")
    id_a, rec_a = build_run(DEMO_RUN, a, Identity.generate())
    id_b, rec_b = build_run(DEMO_RUN, b, Identity.generate())
    assert id_a == id_b and rec_a.to_bytes() == rec_b.to_bytes()
    assert rec_a.signer == DEMO_IDENTITY.node_id
    m = load_run(b, id_a)
    assert m.is_demo and m.experts == 4 and m.resolution == 16 and m.dataset == "shapes" and m.samples == 2048
    assert m.expert_preset == m.router_preset == "small" and m.publishers == "open" and m.latent_space == "pixels"
    assert m.text_encoder.startswith("hash:") and m.val_loss_threshold == 0.9
    assert sum(s.train.samples + s.val.samples for s in m.shards) == 2048
    assert m.shards[0].train.cid == GOLDEN_DEMO_EXPERT0_TRAIN


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    home = Home(tmp_path_factory.mktemp("home"))
    ident = Identity.generate()
    run_id, record = build_run(SMALL, home, ident, issued_ms=1_700_000_000_000)
    return home, ident, run_id, record


def test_manifest_signed_by_the_node_and_cids_resolve(small_run):
    home, ident, run_id, record = small_run
    m = load_run(home, run_id)
    assert m.signer == ident.node_id and not m.is_demo
    assert m.training["batch"] == SMALL.batch and m.training["lr"] == SMALL.lr
    store = Blockstore(home.blocks_dir)
    assert set(m.cids()) <= set(store.pins()) and run_id in store.pins()
    for entry in m.shards:
        for ref, split in ((entry.train, "train"), (entry.val, "val")):
            data = b"".join(iter_file(store, ref.cid))
            assert len(data) == ref.size and file_cid(data, m.cid_profile) == ref.cid
            ds = ShardDataset(shard_path(home, ref.cid))
            assert len(ds) == ref.samples >= 1 and ds.expert == entry.expert and ds.meta["split"] == split
    assert sum(s.train.samples + s.val.samples for s in m.shards) == 96
    # same spec, same key, same time: same bytes, same run id (shards are deterministic)
    again, _ = build_run(SMALL, Home(home.root / "again"), ident, issued_ms=1_700_000_000_000)
    assert again == run_id
    assert spec_from_manifest(m) == dataclasses.replace(SMALL, text_encoder=m.text_encoder, resolution=16)


def test_tampered_manifest_is_rejected(small_run, tmp_path):
    home, ident, run_id, record = small_run
    other = Home(tmp_path / "other")  # a home with only the local copy of the manifest, edited
    local = other.runs_dir / run_id / "manifest.json"
    local.parent.mkdir(parents=True)
    local.write_bytes(record.to_bytes().replace(b'"name":"t"', b'"name":"x"'))
    with pytest.raises(RecordError, match="does not hash"):
        load_run(other, run_id)
    # right bytes under a forged signature: the CID matches what was stored, the signature does not verify
    forged = record.to_bytes().replace(record.sig.encode(), b"00" * 64)
    forged_id = file_cid(forged, "unixfs-v1-2025")
    (other.runs_dir / forged_id).mkdir()
    (other.runs_dir / forged_id / "manifest.json").write_bytes(forged)
    with pytest.raises(BadSignature):
        load_run(other, forged_id)
    with pytest.raises(UsageError, match="not in"):
        load_run(Home(tmp_path / "empty"), run_id)
    with pytest.raises(UsageError, match="not a run id"):
        load_run(home, "hello")


def test_bad_specs_fail_before_writing(tmp_path):
    home = Home(tmp_path)
    ident = Identity.generate()
    bad = [
        (dataclasses.replace(SMALL, samples=3, experts=2), "too few"),
        (dataclasses.replace(SMALL, dataset="shapes:3", samples=None), "too few"),
        (dataclasses.replace(SMALL, resolution=64), "trains on 16 px"),
        (dataclasses.replace(SMALL, publishers=("not-a-key",)), "publishers"),
        (dataclasses.replace(SMALL, dataset=f"imagefolder:{tmp_path}/nope"), "does not exist"),
        (dataclasses.replace(SMALL, expert_preset="huge"), "unknown expert preset"),
    ]
    for spec, message in bad:
        with pytest.raises(UsageError, match=message):
            build_run(spec, home, ident)
    with pytest.raises(UsageError, match="signing identity"):
        build_run(SMALL, home, None)
    assert not home.runs_dir.exists() or not any(home.runs_dir.iterdir())
    assert not home.work_dir.exists() or not any(home.work_dir.iterdir())


def test_publisher_list(tmp_path):
    ident, other = Identity.generate(), Identity.generate()
    spec = dataclasses.replace(SMALL, publishers=(other.node_id, ident.node_id), val_loss_threshold=None)
    run_id, _ = build_run(spec, Home(tmp_path), ident)
    m = load_run(Home(tmp_path), run_id)
    assert m.publishers == tuple(sorted((other.node_id, ident.node_id))) and m.val_loss_threshold is None
    assert m.allows_publisher(other.node_id) and not m.allows_publisher(Identity.generate().node_id)


def test_preview_rows_show_each_experts_images(small_run, tmp_path):
    from PIL import Image

    from paris_node.data.preview import LABEL_WIDTH, PAD, write_preview

    home, _, run_id, _ = small_run
    m = load_run(home, run_id)
    shards = [ShardDataset(shard_path(home, s.train.cid)) for s in m.shards]
    out = write_preview(m, shards, tmp_path / "p.png", per_row=3)
    with Image.open(out) as img:
        cell = 64  # 16 px images are upscaled x4
        assert img.size == (LABEL_WIDTH + 3 * (cell + PAD) + PAD, PAD + 2 * (cell + PAD))
        for k, shard in enumerate(shards):  # the first tile of row k is expert k's first image
            top = PAD + k * (cell + PAD)
            assert img.getpixel((LABEL_WIDTH + 1, top + 1)) == tuple(int(v) for v in shard.images[0][:, 0, 0])


def test_failure_mid_build_leaves_no_pins(tmp_path, monkeypatch):
    import paris_node.data.prepare as prepare

    real_write, calls = prepare.write_shard, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(prepare, "write_shard", flaky)
    home = Home(tmp_path)
    with pytest.raises(OSError, match="disk full"):
        build_run(SMALL, home, Identity.generate())
    assert Blockstore(home.blocks_dir).pins() == []
    assert not any(home.work_dir.iterdir()) and not home.runs_dir.exists()
