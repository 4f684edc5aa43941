"""`scripts/bench_quality.py --quick` runs end to end: real training of tiny models, every strategy scored."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_bench_quality_quick_runs_and_reports_every_strategy(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, str(ROOT / "scripts" / "bench_quality.py"), "--quick", "--out", str(out)]
    res = subprocess.run(cmd + ["--cache", str(tmp_path / "cache")], capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    table = (out / "quality.md").read_text()
    for strategy in ("monolith", "top1", "top2", "full", "oracle", "top2+prior"):
        assert f"| {strategy} |" in table
    doc = json.loads((out / "quality.json").read_text())
    assert len(doc["results"]) == 2  # two seeds: a mean and a spread
    acc = doc["results"][0]["accounting"]
    # equal compute: K experts + router together spend what the monolith spends (within one step's rounding)
    spent = acc["steps_per_expert"] * (2 * acc["expert_flops_per_sample"] + acc["router_flops_per_sample"])
    assert spent == pytest.approx(acc["monolith_steps"] * acc["expert_flops_per_sample"], rel=0.05)
    assert 0.0 < acc["router_share"] < 1.0
    assert (out / "quality.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
