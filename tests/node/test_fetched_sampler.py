"""`sample` and `eval` build their sampler in one place (`cli.sample.fetched_sampler`): the router only with several
experts, `--caption-prior/--no-caption-prior` honoured (eval ignored it before), a damaged weights file a clear error.
"""

from __future__ import annotations

import shutil

import pytest

from paris_node.cli.sample import fetched_sampler
from paris_node.errors import ParisError


def test_caption_prior_flag_decides_whether_the_sampler_routes_by_captions(expert_ckpt, router_ckpt, tmp_path):
    experts = {0: expert_ckpt, 1: expert_ckpt}
    with_prior = fetched_sampler(experts, router_ckpt, tmp_path, "top2", 4.0, 2, "cpu", caption_prior=True)
    without = fetched_sampler(experts, router_ckpt, tmp_path, "top2", 4.0, 2, "cpu", caption_prior=False)
    assert with_prior.router is not None and with_prior.caption_prior is not None  # the tiny run's shards: captions
    assert without.router is not None and without.caption_prior is None


def test_one_expert_samples_without_the_router(expert_ckpt, router_ckpt, tmp_path):
    sampler = fetched_sampler({0: expert_ckpt}, router_ckpt, tmp_path, "top2", 4.0, 2, "cpu", caption_prior=True)
    assert sampler.router is None and sampler.caption_prior is None


def test_a_damaged_weights_file_is_a_clear_error_naming_it(expert_ckpt, tmp_path):
    broken = shutil.copytree(expert_ckpt, tmp_path / "expert-0")
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ParisError, match=r"expert-0/model.safetensors is not a valid safetensors file.*repair"):
        fetched_sampler({0: broken}, None, tmp_path, "top2", 4.0, 2, "cpu", caption_prior=True)
