"""The caption prior: which cluster's training captions look like this prompt, to route where the image cannot.

Paris's router sees only (x_t, t). At t = 1 the sample is pure noise, so p(k | x_t, t) is just the cluster sizes,
and the first Euler steps go to experts picked blind; on data whose clusters split the caption vocabulary (the
built-in `shapes` clusters are background colours), an expert that never saw "a blue background" then draws its
own backgrounds and the router, seeing them, confirms the choice. Measured on the demo run: top-2 gets the
background right in 50% of held-out prompts; routing by the prompt's true cluster gets it in far more (see
docs/sampling.md).

The prior fixes the blind start with counts the router's trainer already has (it reads every cluster): a naive
Bayes model of each cluster's captions over words and adjacent word pairs, p(c | k) = prod_f p(f | k), with
add-one smoothing. Assuming the prompt and the noisy image are independent given the cluster,

    p(k | x_t, c)  proportional to  p(k | x_t, t) * p(c | k)

so the sampler adds log p(c | k) to the router's logits: at t = 1 routing follows the prompt, near t = 0 the
image evidence dominates. This goes beyond the Paris paper (whose router takes no text) and is on by default
only when the router checkpoint carries a prior; `--no-caption-prior` gives Paris's routing exactly.

Pure: counts in, log-likelihoods out. The prior travels in the router's config.json (`caption_prior`), bounded
in size (`MAX_FEATURES`).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from paris_node.errors import UsageError

VERSION = 1
MAX_FEATURES = 4096
_WORD = re.compile(r"[a-z0-9]+")


def features(caption: str) -> list[str]:
    """Lower-cased words and adjacent word pairs ("blue background") of a caption."""
    words = _WORD.findall(caption.lower())
    return words + [f"{a} {b}" for a, b in zip(words[:-1], words[1:], strict=True)]


@dataclass(frozen=True)
class CaptionPrior:
    """Per-cluster feature counts over a shared vocabulary; `log_likelihood` scores prompts."""

    vocab: tuple[str, ...]
    counts: tuple[tuple[int, ...], ...]  # [K][len(vocab)]
    totals: tuple[int, ...]  # all feature occurrences of cluster k (including features cut from the vocab)

    @classmethod
    def from_captions(cls, clusters: Sequence[Iterable[str]], max_features: int = MAX_FEATURES) -> CaptionPrior:
        per = [Counter(f for c in caps for f in features(c)) for caps in clusters]
        overall = Counter()
        for c in per:
            overall.update(c)
        vocab = tuple(sorted(f for f, _ in sorted(overall.items(), key=lambda kv: (-kv[1], kv[0]))[:max_features]))
        counts = tuple(tuple(c[f] for f in vocab) for c in per)
        return cls(vocab, counts, tuple(sum(c.values()) for c in per))

    @property
    def k(self) -> int:
        return len(self.counts)

    def log_likelihood(self, prompts: Sequence[str]) -> torch.Tensor:
        """log p(c | k) for each prompt and cluster, [len(prompts), K]; features outside the vocab are skipped."""
        index = {f: i for i, f in enumerate(self.vocab)}
        v = len(self.vocab)
        out = torch.zeros(len(prompts), self.k, dtype=torch.float64)
        for row, prompt in enumerate(prompts):
            for f in features(prompt):
                i = index.get(f)
                if i is None:
                    continue
                for k in range(self.k):
                    out[row, k] += math.log((self.counts[k][i] + 1) / (self.totals[k] + v))
        return out.float()

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "vocab": list(self.vocab),
            "counts": [list(c) for c in self.counts],
            "totals": list(self.totals),
        }

    @classmethod
    def from_dict(cls, d: Any, experts: int) -> CaptionPrior:
        """Parse and check a router config's `caption_prior`; UsageError naming what is wrong."""
        try:
            if d.get("version") != VERSION:
                raise ValueError(f"version {d.get('version')!r}, expected {VERSION}")
            vocab = tuple(str(f) for f in d["vocab"])
            counts = tuple(tuple(int(x) for x in row) for row in d["counts"])
            totals = tuple(int(x) for x in d["totals"])
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            raise UsageError(f"the router's caption_prior is malformed ({e}); fetch the router again") from None
        if len(vocab) > MAX_FEATURES or len(counts) != experts or len(totals) != experts:
            raise UsageError(f"the router's caption_prior does not fit {experts} experts; fetch the router again")
        if any(len(row) != len(vocab) or min(row, default=0) < 0 for row in counts) or min(totals) < 0:
            raise UsageError("the router's caption_prior has counts of the wrong shape; fetch the router again")
        return cls(vocab, counts, totals)
