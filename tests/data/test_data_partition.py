"""k-means partition: deterministic, exact, recovers clear clusters, guards against bad K."""

from __future__ import annotations

import numpy as np
import pytest

from paris_node.data.partition import Partition, assign, kmeans, partition, quantize
from paris_node.errors import UsageError


def blobs(
    n_per: int = 40, centres=((0, 0), (50, 0), (0, 50), (50, 50)), seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.concatenate([np.asarray(c, float) + rng.normal(size=(n_per, 2)) for c in centres])
    return x.astype(np.float32), np.repeat(np.arange(len(centres)), n_per)


def test_recovers_separated_clusters_and_assign_reproduces_labels():
    x, truth = blobs()
    p = partition(x, 4, fine=16, seed=0)
    # each true blob lands in exactly one cluster, and the clusters are the blobs
    assert sorted(p.sizes) == [40, 40, 40, 40]
    for b in range(4):
        assert len(set(p.labels[truth == b].tolist())) == 1
    assert np.array_equal(assign(x, p), p.labels)
    near = np.array([[49.5, 50.2], [0.3, -0.1]], np.float32)
    assert assign(near, p).tolist() == [p.labels[truth == 3][0], p.labels[truth == 0][0]]


def test_deterministic_bytes_and_roundtrip():
    x, _ = blobs(seed=3)
    a, b = partition(x, 3, fine=12, seed=5), partition(x, 3, fine=12, seed=5)
    assert a.to_bytes() == b.to_bytes() and np.array_equal(a.labels, b.labels)
    back = Partition.from_bytes(a.to_bytes())
    assert back.scale == a.scale and np.array_equal(back.fine_to_coarse, a.fine_to_coarse)
    assert np.array_equal(assign(x, back), a.labels)


def test_distances_are_exact_integers():
    q, scale = quantize(np.array([[0.5, -1.0], [0.25, 0.125]], np.float32))
    assert scale == 4096.0 and q.tolist() == [[2048.0, -4096.0], [1024.0, 512.0]]
    qi, si = quantize(np.array([[255, 0]], np.uint8))
    assert si == 16.0 and qi.tolist() == [[4080.0, 0.0]]
    # integer embeddings: results independent of row order (no float summation-order effects)
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(300, 48)).astype(np.uint8)
    p = partition(x, 3, fine=20, seed=0)
    perm = rng.permutation(300)
    assert np.array_equal(assign(x[perm], p), p.labels[perm])


def test_guards():
    x, _ = blobs(n_per=3)
    with pytest.raises(UsageError, match="fewer experts"):
        partition(x, 7, seed=0)  # 12 samples cannot make 7 clusters of >= 2
    with pytest.raises(UsageError, match="distinct"):
        partition(np.zeros((10, 4), np.float32), 2)
    with pytest.raises(UsageError, match="at least 1"):
        partition(x, 0)


def test_tiny_clusters_are_reseeded():
    # one far outlier would be a cluster of one; min_size=3 forces every cluster to >= 3 samples
    x, _ = blobs(n_per=10, centres=((0, 0), (30, 0)))
    x = np.concatenate([x, np.array([[1000.0, 1000.0]], np.float32)])
    c, labels = kmeans(quantize(x)[0], 3, seed=0, min_size=3)
    assert np.bincount(labels, minlength=3).min() >= 3
    x2, _ = blobs(n_per=40, centres=((0, 0), (30, 0)))
    x2 = np.concatenate([x2, np.array([[1000.0, 1000.0]], np.float32)])
    p = partition(x2, 3, fine=8, seed=0, min_size=3)  # the outlier's fine cluster is merged with a neighbour
    assert min(p.sizes) >= 3 and sum(p.sizes) == len(x2)
    assert np.array_equal(assign(x2, p), p.labels)
