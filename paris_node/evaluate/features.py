"""Distribution distance without downloaded weights: FID in the feature space of a small classifier trained on
the dataset's own labels.

Why not Inception: its weights are a download, and at 16-32 px its features say little about these images.
The classifier here is a 4-layer CNN trained for a few epochs on real images of the dataset, with labels the data
already has (for `shapes`: shape, colour and background, three heads; otherwise one head over the distinct
captions). Training is seeded and single-threaded, and the weights are cached under a key that hashes the
training images, labels, the recipe and this module's version, so a machine computes them once and two machines
with the same torch build get the same numbers. FID itself is the usual Frechet distance between Gaussians
fitted to the two feature sets (Heusel et al. 2017), in float64.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from paris_node.data.shapes import COLOURS, SHAPES, parse_caption
from paris_node.fsutil import atomic_write

log = logging.getLogger(__name__)

_TRAINED: dict[str, FeatureNet] = {}  # this process's nets by cache key (a test session trains each once)
RECIPE = {"version": 2, "widths": [16, 32, 64, 64], "epochs": 4, "batch": 32, "lr": 2e-3, "seed": 0}


class FeatureNet(nn.Module):
    """Four 3x3 conv-GELU layers (stride 1, 2, 2, 2) -> flatten -> a `feature_dim` embedding -> one head per label.

    Flattening the last 4x4 (at 32 px) map instead of pooling it keeps where things are, which shapes need.
    """

    def __init__(self, heads: list[int], widths: list[int], resolution: int, feature_dim: int = 128):
        super().__init__()
        layers, c, side = [], 3, resolution
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            layers += [nn.Conv2d(c, w, 3, stride=stride, padding=1), nn.GELU()]
            c, side = w, (side + stride - 1) // stride
        self.body = nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * side * side, feature_dim), nn.GELU())
        self.heads = nn.ModuleList(nn.Linear(feature_dim, n) for n in heads)
        self.feature_dim = feature_dim

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f = self.body(x)
        return [h(f) for h in self.heads]


@dataclass(frozen=True)
class Labels:
    """Integer labels [N, H] and the number of classes of each of the H heads."""

    values: np.ndarray
    classes: list[int]


def labels_of(captions: list[str]) -> Labels:
    """Three attribute heads when every caption is a `shapes` caption, else one head over distinct captions."""
    parsed = [parse_caption(c) for c in captions]
    if all(p is not None for p in parsed):
        colours, shapes = list(COLOURS), list(SHAPES)
        rows = [(shapes.index(s), colours.index(c), colours.index(b)) for s, c, b in parsed]
        return Labels(np.array(rows, dtype=np.int64), [len(shapes), len(colours), len(colours)])
    vocab = sorted(set(captions))
    index = {c: i for i, c in enumerate(vocab)}
    return Labels(np.array([[index[c]] for c in captions], dtype=np.int64), [len(vocab)])


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 [N, R, R, 3] -> float [N, 3, R, R] in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def cache_key(images: np.ndarray, labels: Labels) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"recipe": RECIPE, "shape": list(images.shape), "classes": labels.classes}).encode())
    h.update(np.ascontiguousarray(images).tobytes())
    h.update(np.ascontiguousarray(labels.values).tobytes())
    return h.hexdigest()[:32]


def train_feature_net(images: np.ndarray, captions: list[str], cache_dir: Path | None = None) -> FeatureNet:
    """Train (or load from `cache_dir`) the feature classifier on real images uint8 [N, R, R, 3] and captions."""
    labels = labels_of(captions)
    key = cache_key(images, labels)
    if key in _TRAINED:
        return _TRAINED[key]
    net = FeatureNet(labels.classes, RECIPE["widths"], images.shape[1])
    path = None if cache_dir is None else Path(cache_dir) / f"featnet-{key}.safetensors"
    if path is not None and path.is_file():
        try:
            net.load_state_dict(load_file(path), strict=True)
            _TRAINED[key] = net.eval()
            return net
        except Exception as e:  # a damaged cache file is rebuilt, never trusted
            log.warning("feature cache %s unreadable (%s); retraining", path, e)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: the same float reduction order on every machine
    try:
        g = torch.Generator().manual_seed(RECIPE["seed"])
        torch.manual_seed(RECIPE["seed"])
        net = FeatureNet(labels.classes, RECIPE["widths"], images.shape[1])
        x, y = _to_tensor(images), torch.from_numpy(labels.values)
        opt = torch.optim.AdamW(net.parameters(), lr=RECIPE["lr"])
        for _ in range(RECIPE["epochs"]):
            order = torch.randperm(len(x), generator=g)
            for start in range(0, len(x), RECIPE["batch"]):
                idx = order[start : start + RECIPE["batch"]]
                outs = net(x[idx])
                loss = sum(nn.functional.cross_entropy(o, y[idx, j]) for j, o in enumerate(outs))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    finally:
        torch.set_num_threads(threads)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: save_file(net.state_dict(), str(tmp)))
    _TRAINED[key] = net.eval()
    return net


@torch.no_grad()
def features(net: FeatureNet, images: np.ndarray, batch: int = 256) -> np.ndarray:
    x = _to_tensor(images)
    return torch.cat([net.features(x[i : i + batch]) for i in range(0, len(x), batch)]).double().numpy()


@torch.no_grad()
def label_accuracy(net: FeatureNet, images: np.ndarray, captions: list[str]) -> list[float]:
    """Per-head accuracy of the classifier on labelled images (how much its features know about the data)."""
    labels = labels_of(captions)
    outs = net(_to_tensor(images))
    return [float((o.argmax(1).numpy() == labels.values[:, j]).mean()) for j, o in enumerate(outs)]


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """FID between feature sets a [N, D] and b [M, D]: |mu_a - mu_b|^2 + tr(Ca + Cb - 2 (Ca^1/2 Cb Ca^1/2)^1/2)."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError("FID needs at least two samples on each side")
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(ca)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    cross = np.linalg.eigvalsh(root_a @ cb @ root_a)
    trace_root = float(np.sqrt(np.clip(cross, 0, None)).sum())
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(ca) + np.trace(cb) - 2.0 * trace_root)


def inception_unavailable() -> str | None:
    """Why FID-Inception cannot run here (torch-fidelity or its weights missing locally), or None if it can."""
    try:
        import torch_fidelity  # noqa: F401
    except ImportError:
        return "FID-Inception skipped: torch-fidelity is not installed (pip install torch-fidelity)"
    weights = Path(torch.hub.get_dir()) / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth"
    if not weights.is_file():
        return f"FID-Inception skipped: its Inception weights are not present locally ({weights})"
    return None


def inception_fid(real: np.ndarray, fake: np.ndarray) -> float:
    """FID-Inception (torch-fidelity) between uint8 image sets [N, R, R, 3]; call only when available."""
    import tempfile

    import torch_fidelity
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        dirs = []
        for name, images in (("real", real), ("fake", fake)):
            d = Path(tmp) / name
            d.mkdir()
            for i, img in enumerate(images):
                Image.fromarray(img).save(d / f"{i:05d}.png")
            dirs.append(str(d))
        m = torch_fidelity.calculate_metrics(input1=dirs[1], input2=dirs[0], fid=True, verbose=False)
    return float(m["frechet_inception_distance"])
