"""The bounded loss history: merging by step, caps, and the file surviving restarts (or failing safe)."""

from __future__ import annotations

import json

from paris_node.dashboard.history import FORMAT, History


def test_points_merge_by_step_and_stay_ordered():
    h = History("run")
    assert h.add("expert/0", 20, 2000, train_loss=0.5)
    assert h.add("expert/0", 10, 1000, train_loss=0.7, samples_per_s=12.0)
    assert h.add("expert/0", 20, 2500, val_loss=0.6)  # the manifest of step 20 adds its validation loss
    assert not h.add("expert/0", 20, 3000, train_loss=0.5)  # nothing new
    pts = h.points("expert/0")
    assert [p.step for p in pts] == [10, 20]
    assert (pts[1].train_loss, pts[1].val_loss, pts[1].t_ms) == (0.5, 0.6, 2000)


def test_bad_values_are_not_recorded():
    h = History("run")
    assert not h.add("expert/0", -1, 0, train_loss=0.5)
    assert not h.add("expert/0", True, 0, train_loss=0.5)
    assert not h.add("expert/0", 5, 0, train_loss=float("nan"), val_loss="0.3", other=1.0)
    assert h.points("expert/0") == []


def test_caps_thin_old_points_and_limit_jobs():
    h = History("run", max_points=50, max_jobs=3)
    for step in range(1, 1001):
        h.add("expert/0", step, step, train_loss=1.0 / step)
    pts = h.points("expert/0")
    assert len(pts) <= 50
    assert pts[0].step < 50 and pts[-1].step == 1000  # the whole run's shape, coarser where it is old
    assert [p.step for p in pts] == sorted(p.step for p in pts)
    for k in range(1, 5):
        h.add(f"expert/{k}", 1, 1, train_loss=1.0)
    assert sorted(h.jobs) == ["expert/0", "expert/1", "expert/2"]


def test_survives_a_restart_and_ignores_foreign_or_corrupt_files(tmp_path):
    path = tmp_path / "dashboard" / "history.json"
    h = History("run-a")
    h.add("router", 10, 1000, train_loss=0.4, val_loss=0.45)
    h.save(path)
    again = History.load(path, "run-a")
    assert [(p.step, p.train_loss, p.val_loss) for p in again.points("router")] == [(10, 0.4, 0.45)]
    assert History.load(path, "run-b").jobs == {}  # another run's history is not this run's
    path.write_text("{not json")
    assert History.load(path, "run-a").jobs == {}
    path.write_text(json.dumps({"format": FORMAT, "run": "run-a", "jobs": {"router": [{"step": "x"}, 5, None]}}))
    assert History.load(path, "run-a").jobs == {}
    assert History.load(tmp_path / "missing.json", "run-a").jobs == {}
