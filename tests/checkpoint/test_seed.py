"""`paris-node init --init-from DIR`: seed folders written by diffusers' own `save_pretrained` (tiny shape), the seed
CIDs in the signed manifest, a job's step-0 start equal to the seed to the bit, and every bad input refused with
one line and nothing written."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file
from tiny_pixart import save_tiny_pixart, tensors

from paris_node.checkpoint import save_checkpoint
from paris_node.checkpoint.diffusers_io import export_diffusers
from paris_node.cli import main
from paris_node.content.blockstore import Blockstore
from paris_node.content.dag import export_file, missing_blocks
from paris_node.data.manifest import RUN_FORMAT, load_run
from paris_node.home import Home
from paris_node.models.factory import build_expert, build_router
from paris_node.models.presets import expert_preset, router_preset
from paris_node.training.devices import setup_device
from paris_node.training.state import setup_training

TINY = expert_preset("tiny")
RUN = ["init", "--dataset", "shapes:64", "--steps", "2", "--batch", "4", "--publish-every-steps", "1"]


def diffusers_folder(path: Path, seed: int = 0, **overrides) -> dict[str, torch.Tensor]:
    """A PixArt transformer at the tiny preset's shape, random weights, saved by diffusers itself; its tensors."""
    return tensors(save_tiny_pixart(path, seed, **overrides))


def release_folder(path: Path, experts: int, router_experts: int | None = None) -> list[dict[str, torch.Tensor]]:
    """The Paris release layout: expert_k/ by diffusers' save_pretrained, router/ as our export writes it."""
    nets = [diffusers_folder(path / f"expert_{k}", seed=k) for k in range(experts)]
    if router_experts is not None:
        torch.manual_seed(99)
        cfg = router_preset("tiny", num_experts=router_experts)
        ckpt = save_checkpoint(
            path.parent / "router-ckpt", build_router(cfg), {"kind": "router", "model": cfg.to_dict()}
        )
        export_diffusers(ckpt, path / "router")
    return nets


def init(home: Path, *args: str):
    return CliRunner().invoke(main, ["--home", str(home), *RUN, *args])


def run_of(res) -> str:
    assert res.exit_code == 0, res.output
    return res.stdout.strip().splitlines()[-1]


def stored_tensors(home: Path, cid: str, tmp: Path) -> dict[str, torch.Tensor]:
    export_file(Blockstore(Home(home).blocks_dir), cid, tmp / f"{cid}.safetensors")
    return load_file(str(tmp / f"{cid}.safetensors"))


def net_of(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An expert's `net.` tensors, named as diffusers names them."""
    return {k.removeprefix("net."): v for k, v in tensors.items() if k.startswith("net.")}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def nothing_written(home: Path) -> bool:
    return not home.exists()  # refused before the home (key, store, runs) is even created


# ------------------------------------------------------------------------------------------- a diffusers seed


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """A 2-expert run seeded from one diffusers folder (no --preset: the seed's shape picks `tiny`)."""
    tmp = tmp_path_factory.mktemp("seeded")
    net = diffusers_folder(tmp / "hf")
    home = tmp / "home"
    run_id = run_of(init(home, "--experts", "2", "--init-from", str(tmp / "hf"), "--lr", "0"))
    return tmp, home, run_id, net


def test_init_from_diffusers_puts_the_seed_cid_in_the_signed_manifest(seeded, tmp_path):
    tmp, home, run_id, net = seeded
    m = load_run(Home(home), run_id)  # verified: bytes hash to the run id, signature, schema
    assert m.record.body.spec["format"] == "paris-node/run/v2"
    assert (m.expert_preset, m.router_preset) == ("tiny", "tiny")  # taken from the seed's shape
    assert m.init is not None and m.init.router is None  # a single transformer: the router starts from scratch
    assert m.init.experts[0] == m.init.experts[1]  # one transformer seeds every expert, stored once
    cid = m.init.experts[0].cid
    assert cid in m.cids() and not missing_blocks(Blockstore(Home(home).blocks_dir), cid)
    assert cid in Blockstore(Home(home).blocks_dir).pins()
    assert same(net_of(stored_tensors(home, cid, tmp_path)), net)  # the seed is the diffusers weights, bit-exact
    assert m.seed_of("expert/1") == m.init.experts[1] and m.seed_of("router") is None


def test_the_seed_changes_the_run_id_and_unseeded_runs_stay_v1(seeded, tmp_path):
    _, home, run_id, _ = seeded
    plain = run_of(init(tmp_path / "plain", "--experts", "2", "--preset", "tiny", "--lr", "0"))
    m = load_run(Home(tmp_path / "plain"), plain)
    assert plain != run_id and m.init is None and m.record.body.spec["format"] == RUN_FORMAT


class _Announcer:
    """Test double for the DHT announcer (the publisher and the job only call these)."""

    def __init__(self):
        self.provided: list[str] = []

    def provide(self, cids, vouch: bool = False) -> None:
        self.provided += list(cids)

    def set_status(self, **fields) -> None:
        pass

    def set_pointer(self, job: str, cid: str, step: int) -> None:
        pass


class _Session:
    def __init__(self, home: Home):
        from paris_node.identity import load_or_create

        self.announcer = _Announcer()
        self.identity = load_or_create(home.identity_path)
        self.dht = None  # reading checkpoint pointers fails: the job has no checkpoint to resume from


def test_a_job_with_no_checkpoint_starts_from_the_seed_to_the_bit(seeded):
    from paris_node.node.job import JobRunner, TrainOptions

    _, home_path, run_id, net = seeded
    home = Home(home_path)
    m = load_run(home, run_id)
    runner = JobRunner(home, Blockstore(home.blocks_dir), m, None, TrainOptions(device="cpu", progress=False))
    cfg = runner.train_config("expert/0")
    out = home.work_dir / run_id / "expert-0"
    start = runner.seed_point(_Session(home), "expert/0", out, cfg, threading.Event())
    assert start is not None and start.parent is None

    # what the trainer builds from it before step 1: model and EMA are the seed, the optimizer is a fresh AdamW
    model = build_expert(TINY)
    state = setup_training(model, setup_device("cpu"), cfg.lr, cfg.weight_decay, start.path)
    fresh = setup_training(build_expert(TINY), setup_device("cpu"), cfg.lr, cfg.weight_decay)
    assert state.step == 0 and state.samples_seen == 0 and not state.opt.state
    as_json = lambda groups: json.loads(json.dumps(groups))  # noqa: E731  (a resumed optimizer's betas are a list)
    assert as_json(state.opt.state_dict()["param_groups"]) == as_json(fresh.opt.state_dict()["param_groups"])
    assert same(net_of(state.model.state_dict()), net) and same(net_of(state.ema.state_dict()), net)


def test_the_job_trains_from_the_seed_end_to_end(seeded):
    """The whole job (shards, resume -> seed, real training steps, publishing): at lr 0 the published weights stay
    the seed's to the bit, which a random start could not give."""
    from paris_node.node.job import JobRunner, TrainOptions

    _, home_path, run_id, net = seeded
    home = Home(home_path)
    m = load_run(home, run_id)
    runner = JobRunner(home, Blockstore(home.blocks_dir), m, None, TrainOptions(device="cpu", progress=False))
    stop, session = threading.Event(), _Session(home)
    worker = threading.Thread(target=runner, args=("expert/1", stop, session), daemon=True)
    worker.start()
    out = home.work_dir / run_id / "expert-1"
    final = out / "step-00000002" / "model.safetensors"
    deadline = time.monotonic() + 60
    while not final.is_file() and worker.is_alive() and time.monotonic() < deadline:  # the run's budget: 2 steps
        worker.join(0.1)
    stop.set()
    worker.join(30)
    assert not worker.is_alive()
    assert final.is_file(), sorted(p.name for p in out.iterdir())
    assert same(net_of(load_file(str(final))), net)
    assert m.init.experts[1].cid in session.announcer.provided  # it serves the seed to the next node


class _PeerExchange:
    """Test double for the block exchange: copies a DAG from the run creator's store, each block through `put`
    (which refuses bytes that do not hash to their CID); the first `lies` fetches serve flipped bytes."""

    def __init__(self, remote: Blockstore, local: Blockstore, lies: int = 0):
        self.remote, self.local, self.lies, self.asked = remote, local, lies, []

    def fetch(self, cid: str, peers, deadline_s: float = 0) -> None:
        from paris_node.content.cid import DAG_PB, block_links, parse_cid

        self.asked.append(cid)
        stack = [cid]
        while stack:
            c = stack.pop()
            data = self.remote.get(c)
            if self.lies:
                self.lies -= 1
                data = bytes([data[0] ^ 1]) + bytes(data[1:])
            if not self.local.has(c):
                self.local.put(c, data)  # BlockMismatch for a lying peer's block
            if parse_cid(c).codec == DAG_PB:
                stack.extend(block_links(c, self.local.get(c)))
        self.local.sync()


def test_a_joining_node_fetches_the_seed_by_cid_and_refuses_a_lying_peer(seeded, tmp_path):
    from paris_node.node.job import JobRunner, TrainOptions

    _, creator, run_id, net = seeded
    joiner = Home(tmp_path / "joiner").ensure()
    store = Blockstore(joiner.blocks_dir)
    exchange = _PeerExchange(Blockstore(Home(creator).blocks_dir), store)
    exchange.fetch(run_id, [])  # the manifest, by its CID
    m = load_run(joiner, run_id)
    exchange.lies = 1  # the first answer for the seed is a flipped block: refused, then fetched again
    cid = m.init.experts[0].cid
    assert missing_blocks(store, cid)  # the joiner holds no seed yet
    runner = JobRunner(joiner, store, m, exchange, TrainOptions(device="cpu", progress=False))
    cfg = runner.train_config("expert/0")
    start = runner.seed_point(
        _Session(joiner), "expert/0", joiner.work_dir / run_id / "expert-0", cfg, threading.Event()
    )
    assert exchange.asked.count(cid) == 2 and start is not None
    state = setup_training(build_expert(TINY), setup_device("cpu"), cfg.lr, cfg.weight_decay, start.path)
    assert same(net_of(state.model.state_dict()), net)


# ------------------------------------------------------------------------------------------- the release layout


def test_release_layout_seeds_expert_k_from_expert_k_and_the_router(tmp_path):
    nets = release_folder(tmp_path / "release", 3, router_experts=3)
    home = tmp_path / "home"
    run_id = run_of(init(home, "--experts", "3", "--init-from", str(tmp_path / "release")))
    m = load_run(Home(home), run_id)
    assert len({r.cid for r in m.init.experts}) == 3
    for k in range(3):
        assert same(net_of(stored_tensors(home, m.init.experts[k].cid, tmp_path)), nets[k])
    router = load_file(str(tmp_path / "release" / "router" / "pytorch_model.safetensors"))
    assert m.init.router is not None and same(stored_tensors(home, m.init.router.cid, tmp_path), router)

    from paris_node.node.job import JobRunner, TrainOptions

    h = Home(home)
    runner = JobRunner(h, Blockstore(h.blocks_dir), m, None, TrainOptions(device="cpu", progress=False))
    cfg = runner.train_config("router")
    start = runner.seed_point(_Session(h), "router", h.work_dir / run_id / "router", cfg, threading.Event())
    state = setup_training(
        build_router(router_preset("tiny", num_experts=3)), setup_device("cpu"), cfg.lr, cfg.weight_decay, start.path
    )
    assert state.step == 0 and same(state.model.state_dict(), router) and same(state.ema.state_dict(), router)


def test_a_release_with_more_folders_than_experts_seeds_the_first_ones(tmp_path):
    nets = release_folder(tmp_path / "release", 3)
    home = tmp_path / "home"
    m = load_run(Home(home), run_of(init(home, "--experts", "2", "--init-from", str(tmp_path / "release"))))
    assert len(m.init.experts) == 2
    for k in range(2):
        assert same(net_of(stored_tensors(home, m.init.experts[k].cid, tmp_path)), nets[k])


def test_our_own_checkpoint_seeds_a_run(tmp_path):
    torch.manual_seed(5)
    expert = build_expert(TINY)
    save_checkpoint(tmp_path / "ckpt", expert, {"kind": "expert", "model": TINY.to_dict()})
    home = tmp_path / "home"
    m = load_run(Home(home), run_of(init(home, "--experts", "2", "--init-from", str(tmp_path / "ckpt"))))
    assert same(stored_tensors(home, m.init.experts[0].cid, tmp_path), expert.state_dict())


# ------------------------------------------------------------------------------------------- bad input


def _refused(home: Path, res, *words: str) -> None:
    assert res.exit_code == 2, res.output  # a UsageError
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "error:" in lines[0], res.output
    for w in words:
        assert w in lines[0], lines[0]
    assert nothing_written(home)


def test_a_missing_or_unrecognised_folder_is_refused(tmp_path):
    _refused(tmp_path / "a", init(tmp_path / "a", "--init-from", str(tmp_path / "nope")), "no such folder")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "weights.bin").write_bytes(b"\0" * 16)
    _refused(tmp_path / "b", init(tmp_path / "b", "--init-from", str(tmp_path / "junk")), "not a recognised layout")


def _edit_weights(folder: Path, edit) -> None:
    path = folder / "diffusion_pytorch_model.safetensors"
    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(path))


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda t: t.pop("proj_out.weight"), ["missing proj_out.weight"]),
        (lambda t: t.update(extra=torch.zeros(2)), ["unexpected extra"]),
        (lambda t: t.update({"proj_out.bias": torch.zeros(5)}), ["mis-shaped proj_out.bias [5]"]),
    ],
    ids=["missing", "extra", "mis-shaped"],
)
def test_tensors_that_do_not_fit_the_run_are_listed(tmp_path, edit, words):
    diffusers_folder(tmp_path / "hf")
    _edit_weights(tmp_path / "hf", edit)
    res = init(tmp_path / "home", "--experts", "2", "--preset", "tiny", "--init-from", str(tmp_path / "hf"))
    _refused(tmp_path / "home", res, *words)


def test_a_seed_of_another_shape_than_the_preset_lists_every_field(tmp_path):
    diffusers_folder(tmp_path / "hf")
    res = init(tmp_path / "home", "--experts", "2", "--preset", "small", "--init-from", str(tmp_path / "hf"))
    _refused(tmp_path / "home", res, "hidden is 64, the run's has 128", "depth is 2, the run's has 4")


def test_a_seed_of_a_preset_shape_that_states_another_text_encoder_says_so(tmp_path):
    diffusers_folder(tmp_path / "hf")
    (tmp_path / "hf" / "paris.json").write_text('{"kind": "expert", "model": {"text_encoder": "hash:64x8"}}')
    res = init(tmp_path / "home", "--experts", "2", "--init-from", str(tmp_path / "hf"))
    _refused(tmp_path / "home", res, "tiny preset's network", "text_encoder is 'hash:64x8'")


def test_a_seed_that_is_no_preset_is_refused_without_preset(tmp_path):
    diffusers_folder(tmp_path / "hf", num_layers=3)
    res = init(tmp_path / "home", "--experts", "2", "--init-from", str(tmp_path / "hf"))
    _refused(tmp_path / "home", res, "depth 3", "no expert preset")


def test_a_release_expert_without_weights_is_refused(tmp_path):
    release_folder(tmp_path / "release", 2)
    (tmp_path / "release" / "expert_1" / "diffusion_pytorch_model.safetensors").unlink()
    res = init(tmp_path / "home", "--experts", "2", "--init-from", str(tmp_path / "release"))
    _refused(tmp_path / "home", res, "expert_1", "no diffusion_pytorch_model.safetensors")


def test_more_experts_than_release_folders_is_refused(tmp_path):
    release_folder(tmp_path / "release", 2)
    res = init(tmp_path / "home", "--experts", "3", "--init-from", str(tmp_path / "release"))
    _refused(tmp_path / "home", res, "2 expert folders", "--experts 2 or fewer", "one transformer folder")


def test_a_release_router_for_another_expert_count_is_refused(tmp_path):
    release_folder(tmp_path / "release", 3, router_experts=3)
    res = init(tmp_path / "home", "--experts", "2", "--init-from", str(tmp_path / "release"))
    _refused(tmp_path / "home", res, "classifies 3 experts", "the run has 2")
