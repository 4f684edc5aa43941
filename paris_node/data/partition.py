"""Semantic partition of a dataset into K expert clusters (the Paris / DDM recipe). Pure: no disk.

1. k-means of the embeddings to F fine centroids (DDM: 1024);
2. weighted k-means of the fine centroids (weight = their sizes) to K coarse clusters;
3. a sample belongs to the coarse cluster its fine centroid was merged into; a new sample is
   assigned the same way (nearest fine centroid -> its coarse cluster), so `assign` reproduces
   the labels of the training data exactly.

Determinism: embeddings are quantised to integers (|q| <= 4096) and centroids are rounded to
integers after every update, so every distance is an exact integer in float64 (all partial sums
stay far below 2**53). BLAS summation order then cannot change a result, and the built-in demo
partitions identically on every machine. Ties go to the lowest index.

Guards: K larger than the number of (distinct) samples is a UsageError; empty or too-small
clusters are re-seeded with the point farthest from its centroid; a partition that still leaves a
cluster under `min_size` samples fails with a message naming the sizes and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from paris_node.data.tensorfile import load_numpy, safetensors_bytes
from paris_node.errors import UsageError

Q_MAX = 4096  # quantisation range for float embeddings
INT_SCALE = 16  # integer embeddings (pixels) are scaled up so rounded centroids keep 4 fraction bits
CHUNK = 4096
FORMAT = "paris-node/centroids/v1"


def quantize(x: np.ndarray, scale: float | None = None) -> tuple[np.ndarray, float]:
    """(integer-valued float64 array, scale) with q = rint(x * scale)."""
    x = np.asarray(x)
    if scale is None:
        if np.issubdtype(x.dtype, np.integer) and (x.size == 0 or int(np.abs(x).max()) * INT_SCALE <= 1 << 20):
            scale = float(INT_SCALE)
        else:
            top = float(np.abs(x.astype(np.float64)).max()) if x.size else 0.0
            scale = Q_MAX / top if top > 0 else 1.0
    return np.rint(x.astype(np.float64) * scale), scale


def _nearest(q: np.ndarray, centroids: np.ndarray, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(index of the nearest centroid, squared distance) per row; exact for integer-valued inputs."""
    c2 = (centroids * centroids).sum(axis=1)
    labels = np.empty(len(q), dtype=np.int64)
    dist = np.empty(len(q), dtype=np.float64)
    for start in tqdm(range(0, len(q), CHUNK), desc="assign", disable=not progress, leave=False):
        block = q[start : start + CHUNK]
        d = (block * block).sum(axis=1)[:, None] - 2.0 * (block @ centroids.T) + c2[None, :]
        labels[start : start + CHUNK] = np.argmin(d, axis=1)
        dist[start : start + CHUNK] = d[np.arange(len(block)), labels[start : start + CHUNK]]
    return labels, dist


def _kmeans_pp(q: np.ndarray, k: int, w: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding (D^2 sampling), kept exact: the sampling weights are integers whose running
    sum stays below 2**52, so the cumulative sum and the search are the same on every machine."""
    n = len(q)
    chosen = [int(rng.integers(n))]
    best = _nearest(q, q[chosen])[1]
    for _ in range(1, k):
        d = best * w
        top = float(d.sum())
        if top == 0:
            raise UsageError(f"only {len(chosen)} distinct samples for {k} clusters: use fewer experts or more data")
        shift = max(0, int(np.ceil(np.log2(top))) - 52)
        d = np.floor(d / 2.0**shift)
        cum = np.cumsum(d)
        i = int(np.searchsorted(cum, rng.random() * cum[-1], side="right"))
        i = min(i, n - 1)
        while d[i] == 0:  # never a point that is already a centroid
            i = (i + 1) % n
        chosen.append(i)
        best = np.minimum(best, _nearest(q, q[[i]])[1])
    return q[chosen].copy()


def kmeans(
    q: np.ndarray,
    k: int,
    *,
    seed: int = 0,
    weights: np.ndarray | None = None,
    min_size: int = 1,
    iters: int = 30,
    desc: str = "k-means",
) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means on integer-valued rows; returns (integer-valued centroids [k, D], labels [N]).

    `weights` (integers) make a row count that many times; `min_size` is in weight units.
    """
    n = len(q)
    w = np.ones(n, dtype=np.float64) if weights is None else np.asarray(weights, dtype=np.float64)
    centroids = _kmeans_pp(q, k, w, np.random.Generator(np.random.PCG64(seed)))
    labels = np.full(n, -1, dtype=np.int64)
    progress = n * k > 50_000_000
    for _ in tqdm(range(iters), desc=desc, disable=not progress, leave=False):
        new_labels, dist = _nearest(q, centroids)
        sizes = np.bincount(new_labels, weights=w, minlength=k)
        empty = np.flatnonzero(sizes == 0)
        if len(empty):  # re-seed empty clusters with the points worst served by their centroid
            worst = np.lexsort((np.arange(n), -dist))[: len(empty)]
            centroids[empty] = q[worst]
            new_labels, _ = _nearest(q, centroids)
        if np.array_equal(new_labels, labels):
            break
        labels = new_labels
        centroids = _means(q, labels, w, centroids)
    labels, _ = _nearest(q, centroids)
    labels = _repair(q, centroids, labels, w, min_size)
    return _means(q, labels, w, centroids), labels


def _means(q: np.ndarray, labels: np.ndarray, w: np.ndarray, old: np.ndarray) -> np.ndarray:
    """Weighted cluster means rounded to integers (empty clusters keep their old centroid)."""
    sums = np.zeros_like(old)
    np.add.at(sums, labels, q * w[:, None])
    sizes = np.bincount(labels, weights=w, minlength=len(old))
    out = old.copy()
    filled = sizes > 0
    out[filled] = np.rint(sums[filled] / sizes[filled, None])
    return out


def _repair(q: np.ndarray, centroids: np.ndarray, labels: np.ndarray, w: np.ndarray, min_size: int) -> np.ndarray:
    """Grow clusters under `min_size` with the rows nearest their centroid that other clusters can spare.

    An outlier alone in its cluster would otherwise give an expert one sample. Labels stop being pure
    nearest-centroid here; `assign` goes through the fine centroids, so it stays consistent.
    """
    labels = labels.copy()
    sizes = np.bincount(labels, weights=w, minlength=len(centroids))
    for c in np.flatnonzero(sizes < min_size):
        d = _nearest(q, centroids[[c]])[1]
        for i in np.lexsort((np.arange(len(q)), d)):
            if sizes[c] >= min_size:
                break
            j = labels[i]
            if j != c and sizes[j] - w[i] >= min_size:
                sizes[j] -= w[i]
                sizes[c] += w[i]
                labels[i] = c
    if sizes.min() < min_size:
        raise UsageError(
            f"k-means left clusters of sizes {sizes.astype(int).tolist()} (need at least {min_size} each): "
            "use fewer experts or more samples"
        )
    return labels


@dataclass(frozen=True)
class Partition:
    """Fine and coarse centroids (integer-valued, in quantised units) and the sample labels."""

    fine: np.ndarray  # [F, D]
    fine_to_coarse: np.ndarray  # [F] int64
    coarse: np.ndarray  # [K, D]
    scale: float  # q = rint(embedding * scale)
    labels: np.ndarray  # [N] coarse cluster of each partitioned sample

    @property
    def k(self) -> int:
        return len(self.coarse)

    @property
    def sizes(self) -> list[int]:
        return np.bincount(self.labels, minlength=self.k).tolist()

    def to_bytes(self, meta: dict[str, str] | None = None) -> bytes:
        """The centroids file (deterministic safetensors). Sample labels are not stored: the shards are."""
        tensors = {
            "fine": self.fine.astype(np.int32),
            "fine_to_coarse": self.fine_to_coarse.astype(np.int32),
            "coarse": self.coarse.astype(np.int32),
        }
        return safetensors_bytes(tensors, {"format": FORMAT, "scale": repr(self.scale), **(meta or {})})

    @classmethod
    def from_bytes(cls, data: bytes) -> Partition:
        try:
            tensors, meta = load_numpy(data)
            if meta.get("format") != FORMAT:
                raise ValueError(f"format is {meta.get('format')!r}, expected {FORMAT}")
            return cls(
                fine=tensors["fine"].astype(np.float64),
                fine_to_coarse=tensors["fine_to_coarse"].astype(np.int64),
                coarse=tensors["coarse"].astype(np.float64),
                scale=float(meta["scale"]),
                labels=np.zeros(0, dtype=np.int64),
            )
        except (KeyError, ValueError) as e:
            raise UsageError(f"not a centroids file: {e}") from None


def partition(embeddings: np.ndarray, k: int, *, fine: int = 1024, seed: int = 0, min_size: int = 2) -> Partition:
    """Split `embeddings` [N, D] into `k` clusters of at least `min_size` samples each."""
    n = len(embeddings)
    if k < 1:
        raise UsageError(f"the number of experts must be at least 1, got {k}")
    if n < k * min_size:
        raise UsageError(
            f"{n} samples cannot make {k} clusters of at least {min_size} (train + validation): "
            "use fewer experts (--experts) or more samples (--samples)"
        )
    q, scale = quantize(embeddings)
    f = max(k, min(fine, n // 8))
    fine_c, fine_labels = kmeans(q, f, seed=seed, desc="k-means (fine)")
    weights = np.bincount(fine_labels, minlength=f)
    used = weights > 0
    fine_c, weights = fine_c[used], weights[used]
    fine_labels = np.cumsum(used)[fine_labels] - 1  # renumber after dropping empty fine clusters
    if len(fine_c) < k:
        raise UsageError(f"the data has only {len(fine_c)} distinct groups for {k} experts: use fewer experts")
    coarse_c, f2c = kmeans(fine_c, k, seed=seed + 1, weights=weights, min_size=min_size, desc="k-means (coarse)")
    labels = f2c[fine_labels]
    sizes = np.bincount(labels, minlength=k)
    if sizes.min() < min_size:
        raise UsageError(
            f"partition left clusters of sizes {sizes.tolist()} (need at least {min_size} each): "
            "use fewer experts or more samples"
        )
    return Partition(fine=fine_c, fine_to_coarse=f2c, coarse=coarse_c, scale=scale, labels=labels)


def assign(embeddings: np.ndarray, centroids: Partition | np.ndarray) -> np.ndarray:
    """Cluster of each new sample: via the fine centroids for a Partition, else the nearest row of
    `centroids` ([K, D], in embedding units)."""
    if isinstance(centroids, Partition):
        q, _ = quantize(embeddings, centroids.scale)
        nearest, _ = _nearest(q, centroids.fine, progress=len(q) > 50_000)
        return centroids.fine_to_coarse[nearest]
    x = np.asarray(embeddings, dtype=np.float64)
    return _nearest(x, np.asarray(centroids, dtype=np.float64), progress=len(x) > 50_000)[0]
