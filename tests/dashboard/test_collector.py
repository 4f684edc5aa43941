"""The collector: verifies what the swarm names before showing it, keeps history across restarts, and survives
peers that lie (bad manifests, non-PNG samples, unreachable content)."""

from __future__ import annotations

import json

from dash_helpers import HOSTILE, FakeSource, lease, manifest, meta_of, png_bytes, pointer, status

from paris_node.dashboard.collector import Collector, dashboard_dir
from paris_node.data.prepare import shard_path
from paris_node.home import Home
from paris_node.identity import Identity
from paris_node.records import now_ms


def _swarm(tiny_run, sample: bytes, sample_meta_override: dict | None = None):
    """expert/0 owned and published by `a` with a sample; expert/1 published by `b` with a manifest for the
    wrong job; the router free. Returns (source, a, b)."""
    home, m = tiny_run
    t = now_ms()
    a, b = Identity.generate(), Identity.generate()
    src = FakeSource()
    src.leases_ = [lease(a, "expert/0", t), lease(b, "expert/1", t)]
    src.statuses_ = [status(a, "expert/0", 20, t, run=m.run_id, loss="0.61", samples_per_s="99")]
    meta = {**meta_of(sample, "bafksample"), "role": "sample", **(sample_meta_override or {})}
    good = manifest(a, "expert/0", 20, {"sample.png": meta}, t, run=m.run_id, train_loss="0.6", val_loss="0.7")
    wrong_job = manifest(b, "expert/0", 30, {}, t, run=m.run_id)
    src.blobs = {"bafkgood": good.to_bytes(), "bafkwrongjob": wrong_job.to_bytes(), "bafksample": sample}
    src.pointers_ = {
        "expert/0": [pointer(a, "expert/0", "bafkgood", 20, t, run=m.run_id)],
        "expert/1": [pointer(b, "expert/1", "bafkwrongjob", 30, t, run=m.run_id)],
    }
    src.provider_map = {"bafkgood": ["12D3KooWholder"]}
    for entry in m.shards:  # the validation shards, for the partition preview
        src.blobs[entry.val.cid] = shard_path(home, entry.val.cid).read_bytes()
    return src


def test_a_round_shows_verified_data_only(tiny_run, tmp_path):
    _, m = tiny_run
    src = _swarm(tiny_run, png_bytes(["a red circle", HOSTILE]))
    col = Collector(Home(tmp_path), m, src)
    snap = col.refresh()
    view = json.loads(snap.api)
    e0, e1, router = view["jobs"]
    assert e0["checkpoint"]["verified"] and e0["val_loss"] == 0.7 and e0["train_loss"] == 0.61
    assert e0["checkpoint"]["holders"] == ["12D3KooWholder"]
    assert e0["sample"]["prompts"] == ["a red circle", HOSTILE]
    assert snap.samples["expert-0"] == src.blobs["bafksample"]
    assert not e1["checkpoint"]["verified"] and e1["sample"] is None  # a manifest for another job: rejected
    assert any("expert/1" in n and "rejected" in n for n in view["notes"])
    assert router["owner"] is None
    assert view["partition"] is not None and snap.partition.startswith(b"\x89PNG")
    assert {p["step"] for p in e0["history"]} == {20}
    fetched = len(src.fetched)
    col.refresh()
    assert len(src.fetched) == fetched  # verified (and rejected) content is not fetched again


def test_a_sample_that_is_not_a_png_is_never_served(tiny_run, tmp_path):
    _, m = tiny_run
    html = b"<html><script>window.__pwned=1</script></html>"
    col = Collector(Home(tmp_path), m, _swarm(tiny_run, html), partition=False)
    snap = col.refresh()
    view = json.loads(snap.api)
    assert view["jobs"][0]["sample"] is None and snap.samples == {}
    assert any("not shown: not a PNG" in n for n in view["notes"])


def test_a_png_that_differs_from_its_manifest_entry_is_not_served(tiny_run, tmp_path):
    _, m = tiny_run
    col = Collector(Home(tmp_path), m, _swarm(tiny_run, png_bytes(), {"sha256": "f" * 64}), partition=False)
    snap = col.refresh()
    assert snap.samples == {} and any("sha256" in n for n in json.loads(snap.api)["notes"])


def test_unreachable_content_is_retried_and_the_history_survives_a_restart(tiny_run, tmp_path):
    _, m = tiny_run
    src = _swarm(tiny_run, png_bytes())
    held = src.blobs.pop("bafkgood")
    col = Collector(Home(tmp_path), m, src, partition=False)
    view = json.loads(col.refresh().api)
    assert not view["jobs"][0]["checkpoint"]["verified"] and view["jobs"][0]["step"] == 20
    src.blobs["bafkgood"] = held  # the provider came back
    view = json.loads(col.refresh().api)
    assert view["jobs"][0]["checkpoint"]["verified"]
    col.stop()
    assert (dashboard_dir(Home(tmp_path), m.run_id) / "history.json").is_file()
    again = Collector(Home(tmp_path), m, FakeSource(), partition=False)  # a restart, with the swarm silent
    history = json.loads(again.refresh().api)["jobs"][0]["history"]
    assert [(p["step"], p["train_loss"], p["val_loss"]) for p in history] == [(20, 0.61, 0.7)]


def test_a_dht_that_stops_answering_keeps_the_last_good_read_on_the_page(tiny_run, tmp_path):
    from paris_node.swarm.membership import SwarmUnavailable

    _, m = tiny_run
    src = _swarm(tiny_run, png_bytes())
    col = Collector(Home(tmp_path), m, src, partition=False)
    col.refresh()

    def down(*_):
        raise SwarmUnavailable("the DHT did not answer")

    src.leases = down
    view = json.loads(col.refresh().api)
    assert view["jobs"][0]["owner"] is not None and view["jobs"][0]["checkpoint"]["verified"]
    assert any("swarm read failed" in n for n in view["notes"])
