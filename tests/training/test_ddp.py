import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from paris_node.procs import stop_group

SCRIPT = """
import faulthandler, sys, torch
faulthandler.dump_traceback_later(200, exit=True)  # a hung rank prints where it hangs instead of timing out mute
sys.path[:0] = [{tests!r}, {helpers!r}]  # the folder's conftest imports a shared helper from tests/helpers
from conftest import Squares
from paris_node.models.presets import expert_preset
from paris_node.models.text import build_text_encoder
from paris_node.models.vae import LatentCodec
from paris_node.training.trainer import TrainConfig, train
torch.set_num_threads(1)
mc = expert_preset("tiny")
cfg = TrainConfig(steps=3, batch=2, lr=1e-3, checkpoint_every=3, progress=False, device="cpu")
train(cfg, mc, Squares(16), build_text_encoder(mc.text_encoder), LatentCodec("pixels"), {out!r})
"""


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_torchrun_two_cpu_ranks_train_one_expert(tmp_path):
    """DDP inside one node (gloo on CPU): ranks split each global batch; rank 0 alone writes the checkpoint."""
    script = tmp_path / "run.py"
    here = Path(__file__).parent
    script.write_text(SCRIPT.format(tests=str(here), helpers=str(here.parent / "helpers"), out=str(tmp_path / "out")))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)]
    # own process group, killed whole afterwards: a rank hung at exit must not outlive the test
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        _, err = proc.communicate(timeout=280)
    finally:
        stop_group(proc, grace=5)
    assert proc.returncode == 0, err[-3000:]
    ckpt = tmp_path / "out" / "step-00000003"
    assert load_file(str(ckpt / "model.safetensors"))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["latest", "step-00000003"]
    state = (ckpt / "training_state.json").read_text()
    assert '"samples_seen": 12' in state  # 3 steps x batch 2 x 2 ranks
